"""docker-compose.yml: no Docker engine runs here, so check the file itself."""

import re

import yaml

from tests.conftest import ROOT


def test_compose_runs_one_pinned_qdrant_with_storage_and_a_working_healthcheck():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    qdrant = compose["services"]["qdrant"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", qdrant["image"])  # pinned, not :latest
    assert {"6333:6333", "6334:6334"} <= set(qdrant["ports"])
    volume, target = qdrant["volumes"][0].split(":")
    assert target == "/qdrant/storage" and volume in compose["volumes"]
    test = " ".join(qdrant["healthcheck"]["test"])
    assert "curl" not in test and "wget" not in test  # neither exists in the image
    assert "/dev/tcp/127.0.0.1/6333" in test and "/readyz" in test


def test_compose_server_minor_version_is_within_one_of_the_client():
    image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["qdrant"]["image"]
    server_minor = int(image.split(":v")[1].split(".")[1])
    pinned = re.search(r"qdrant-client==1\.(\d+)", (ROOT / "requirements.txt").read_text())
    assert abs(int(pinned.group(1)) - server_minor) <= 1
