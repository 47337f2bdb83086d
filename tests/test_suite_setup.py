"""The suite's own set-up: pytest-xdist workers each on cores of their own (tests/worker_cpus.py),
and a worker that crashes ends the run at once, naming its test."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib

import pytest

from tests import worker_cpus
from tests.conftest import ROOT
from tests.worker_cpus import share_of_cpus


def test_workers_split_the_cpus_between_them_and_each_gets_at_least_one():
    assert [share_of_cpus(f"gw{i}", 2, [0, 1, 2, 3, 4]) for i in range(2)] == [[0, 2, 4], [1, 3]]
    assert [share_of_cpus(f"gw{i}", 4, [2, 5]) for i in range(4)] == [[2], [5], [2], [5]]  # more workers than CPUs: one each, shared
    assert share_of_cpus("gw0", 1, [0, 1]) == [0, 1]
    # a crashed worker's replacement is numbered on (gw2 of 2): it takes a share, not none (which failed to start)
    assert share_of_cpus("gw2", 2, [0, 1]) == [0] and share_of_cpus("gw3", 2, [0, 1, 2]) == [1]


@pytest.mark.skipif(not worker_cpus.WORKER, reason="the suite runs in one process here (-n0): nothing is pinned")
def test_this_worker_runs_on_its_share_and_the_processes_it_starts_inherit_it():
    assert worker_cpus.WORKER is not None
    share = share_of_cpus(worker_cpus.WORKER, worker_cpus.WORKERS, worker_cpus.STARTED_ON)
    assert sorted(os.sched_getaffinity(0)) == share
    if worker_cpus.WORKERS > 1 and len(worker_cpus.STARTED_ON) > 1:
        assert len(share) < len(worker_cpus.STARTED_ON)  # not every CPU: the point of pinning
    child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"], capture_output=True, text=True)
    assert child.stdout.strip() == str(share)


def test_a_crashed_worker_fails_the_run_at_once_and_names_its_test(tmp_path):
    """With the suite's options (pyproject.toml's addopts). xdist replaces a crashed worker, but
    under --dist loadfile the replacement can be left waiting for work that never comes: a CI run
    hung for its whole 90 minutes that way. A crash is a bug to fix, not to retry past."""
    options = shlex.split(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"])
    plugin = options.index("tests.worker_cpus")  # this suite's plugin, not the made-up one's
    del options[plugin - 1 : plugin + 1]
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for i in range(4):
        (tmp_path / f"test_{i}.py").write_text("import time\ndef test_a(): time.sleep(0.3)\ndef test_b(): time.sleep(0.3)\n")
    (tmp_path / "test_crash.py").write_text(
        "import os, signal\ndef test_before(): pass\ndef test_crash(): os.kill(os.getpid(), signal.SIGSEGV)\ndef test_after(): pass\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider"], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the run did not end after a worker crashed: {str(e.stdout)[-800:]}")
    assert done.returncode != 0
    assert "crashed while running 'test_crash.py::test_crash'" in done.stdout, done.stdout[-2000:]
