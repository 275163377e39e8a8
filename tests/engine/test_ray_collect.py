"""collect --engine ray: downloads spread over the loopback cluster's nodes give the local engine's workspace."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from tests.helpers import run_cli
from tests.helpers.httpserver import MediaServer
from tests.helpers.ray_cluster import HEAD_IP, SECOND_IP, digest

pytestmark = pytest.mark.xdist_group("ray")  # the one loopback cluster: every Ray test on one worker


def test_ray_collect_equals_local_and_ledger_names_the_node(ray_cluster, world_ms3, tmp_path):
    www = tmp_path / "www"
    shutil.copytree(world_ms3 / "videos", www / "videos")
    srv = MediaServer(www)
    try:
        names = (world_ms3 / "urls.txt").read_text().split()
        srv.modes[names[0]] = "404"  # one source fails for good: its ledger row must say where
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(srv.url(n) + "\n" for n in names))
        local, on_ray = tmp_path / "local", tmp_path / "ray"
        for ws in (local, on_ray):
            run_cli("init", ws, "--recipe", world_ms3 / "recipe.toml", check=True)
        run_cli("collect", local, "--urls", urls, "--world", world_ms3, "--any-license", "-j", "2", "-q", check=True)
        proc = run_cli("collect", on_ray, "--urls", urls, "--world", world_ms3, "--any-license", "--engine", "ray",
                       "--ray-address", ray_cluster.address, "--retries", "0", "-q", timeout=300)
    finally:
        srv.close()
    assert proc.returncode == 0, proc.stderr
    assert f"collect: {len(names) - 1} new clips" in proc.stdout and "1 rejected (permanent)" in proc.stdout
    assert "ray: " in proc.stdout and " sources" in proc.stdout, proc.stdout
    assert digest(on_ray) == digest(local)  # source files, clips and rows (the node in the ledger left out)
    db = sqlite3.connect(on_ray / "catalog.sqlite")
    (payload,) = db.execute("SELECT payload FROM failures WHERE stage='collect'").fetchone()
    db.close()
    assert json.loads(payload)["node"] in (HEAD_IP, SECOND_IP)
    nodes = json.loads(run_cli("status", on_ray, "--json", check=True).stdout)["nodes"]["collect"]["nodes"]
    assert sum(nodes.values()) == len(names)
