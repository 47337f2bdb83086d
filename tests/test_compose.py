"""docker-compose.yml: no Docker engine runs here, so check the file itself."""

import re

import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
NODES = ["qdrant-node1", "qdrant-node2", "qdrant-node3"]
QDRANT = {name: s for name, s in SERVICES.items() if name != "web"}  # the web page's service is checked below


def test_every_service_is_pinned_with_its_own_volume_a_working_healthcheck_and_no_telemetry():
    mounts = []
    for name, service in QDRANT.items():
        assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", service["image"]), name  # pinned, not :latest
        [mount] = service["volumes"]
        volume, target = mount.split(":")
        assert target == "/qdrant/storage" and volume in COMPOSE["volumes"], name
        mounts.append(volume)
        test = " ".join(service["healthcheck"]["test"])
        assert "curl" not in test and "wget" not in test, name  # neither exists in the image
        assert "/dev/tcp/127.0.0.1/6333" in test and "/readyz" in test, name
        assert service["environment"]["QDRANT__TELEMETRY_DISABLED"] == "true", name
    assert len(set(mounts)) == len(mounts) == 4  # no two nodes share storage


def test_single_node_is_the_default_on_the_standard_ports():
    single = SERVICES["qdrant"]
    assert "profiles" not in single  # started by a plain `docker compose up`
    assert {"6333:6333", "6334:6334"} <= set(single["ports"])


def test_cluster_profile_follows_qdrant_distributed_deployment():
    for node in NODES:
        service = SERVICES[node]
        assert service["profiles"] == ["cluster"]
        assert service["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert service["environment"]["QDRANT__CLUSTER__P2P__PORT"] == "6335"
        assert service["command"][-2:] == ["--uri", f"http://{node}:6335"]
    assert "--bootstrap" not in SERVICES["qdrant-node1"]["command"]
    for follower in NODES[1:]:
        command = SERVICES[follower]["command"]
        assert command[command.index("--bootstrap") + 1] == "http://qdrant-node1:6335"
        assert SERVICES[follower]["depends_on"]["qdrant-node1"]["condition"] == "service_healthy"
    host_ports = [p.split(":")[0] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))  # single node and cluster can run side by side


def test_compose_server_minor_version_is_within_one_of_the_client():
    pinned = re.search(r"qdrant-client==1\.(\d+)", (ROOT / "constraints.txt").read_text())
    for service in QDRANT.values():
        server_minor = int(service["image"].split(":v")[1].split(".")[1])
        assert abs(int(pinned.group(1)) - server_minor) <= 1


# --- the web page: an optional service built from the project's CPU-only Dockerfile -------------

DOCKERFILE = (ROOT / "Dockerfile").read_text()
WEB = SERVICES["web"]


def test_web_service_is_optional_and_serves_the_page_from_the_qdrant_server():
    assert WEB["profiles"] == ["web"]  # a plain `docker compose up` starts only Qdrant
    assert WEB["build"] == "." and (ROOT / "Dockerfile").is_file()
    command = WEB["command"]
    assert command[0] == "serve" and command[command.index("--host") + 1] == "0.0.0.0"  # inside the container
    port = command[command.index("--port") + 1]
    assert WEB["ports"] == [f"127.0.0.1:{port}:{port}"]  # on the host: localhost only
    assert WEB["environment"]["QDRANT_URL"] == "http://qdrant:6333" and "qdrant" in SERVICES
    assert WEB["depends_on"]["qdrant"]["condition"] == "service_healthy"
    data, models = WEB["volumes"]
    assert data.endswith(":/data:ro")  # posters and weights, read-only
    # train-year run in the service writes ./year_model onto the volume; serve reads it there, else the shipped model
    assert models.split(":")[0] in COMPOSE["volumes"] and WEB["working_dir"] == models.split(":")[1] and "--model-dir" not in command


def test_web_healthcheck_asks_the_api_with_python_not_curl():
    test = WEB["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]  # the slim image has no curl or wget
    port = WEB["command"][WEB["command"].index("--port") + 1]
    assert f"http://127.0.0.1:{port}/api/collections" in test[3]
    compile(test[3], "healthcheck", "exec")  # valid Python


def test_dockerfile_is_cpu_only_pinned_without_tensorflow_and_runs_the_cli():
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-\w+", base)  # the Python the project requires, not :latest
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()
    assert "pip install -c constraints.txt -r dependencies.txt" in DOCKERFILE and "pip install --no-deps ." in DOCKERFILE
    assert "[train]" not in DOCKERFILE  # the page needs no TensorFlow
    assert re.search(r"^tensorflow[-_]cpu==", (ROOT / "constraints.txt").read_text(), re.M)  # where it is installed: no CUDA wheels
    instructions = "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"cuda|nvidia|--gpus", instructions, re.I)
    assert 'ENTRYPOINT ["poster-search"]' in DOCKERFILE and re.search(r"^USER (?!root)\w+", DOCKERFILE, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "qdrant_data", "*.h5", "results"} <= set(ignored)  # no environment, store, weights or results in the image
