"""Each pytest-xdist worker on CPUs of its own (a pytest plugin, loaded by `-p` before conftest.py).

Without it two workers on a 2-core machine each run TensorFlow, OpenVINO and ONNX Runtime with
one thread per core, and the four threads fight over two cores: the suite took 12 minutes with
two workers against 15 with one. Pinned, each worker's runtimes see the cores they may use (the
product sizes its thread pools by the affinity mask, embedding/backend.py `usable_cores`) and the
processes a test starts inherit the share. Loaded before conftest.py so that NumPy's BLAS, which
counts the CPUs once on import, counts the share too. Outside xdist it does nothing.
"""

from __future__ import annotations

import os


def share_of_cpus(worker: str, workers: int, cpus: list[int]) -> list[int]:
    """The CPUs of worker `gwN` of `workers`: every workers-th CPU from the (N mod workers)-th; where
    there are more workers than CPUs, the (N mod CPUs)-th CPU alone, shared with the workers given it too."""
    index = int(worker.removeprefix("gw")) % workers  # xdist numbers a crashed worker's replacement on (gw2 of 2)
    return cpus[index::workers] if len(cpus) >= workers else [cpus[index % len(cpus)]]


STARTED_ON = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []  # the CPUs pytest was given
WORKER, WORKERS = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKER and STARTED_ON:
    os.sched_setaffinity(0, share_of_cpus(WORKER, WORKERS, STARTED_ON))
