"""docker-compose.yml: no Docker engine runs here, so check the file itself."""

import re

import yaml

from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
NODES = ["qdrant-node1", "qdrant-node2", "qdrant-node3"]


def test_every_service_is_pinned_with_its_own_volume_a_working_healthcheck_and_no_telemetry():
    mounts = []
    for name, service in SERVICES.items():
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
    pinned = re.search(r"qdrant-client==1\.(\d+)", (ROOT / "requirements.txt").read_text())
    for service in SERVICES.values():
        server_minor = int(service["image"].split(":v")[1].split(".")[1])
        assert abs(int(pinned.group(1)) - server_minor) <= 1
