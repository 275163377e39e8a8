"""A workspace pushed once per test run to the run's Label Studio server (`pushed_media`), and the file a
served task URL names (`served_file`): shared by the serving, browser and task-view tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from avsbench_tools.workspace import open_workspace
from tests.helpers.cli import cli_here

WS_NAME = "a-media"  # the workspace under the server's document root


@dataclass
class Media:
    """The pushed workspace: its path, its project on the server and the project's tasks (dicts)."""

    ws: Path
    project_id: int
    tasks: list[dict]


def pushed_media(server) -> Media:
    """One clip (5 s, 320x240) with motion proposals, pushed with `avs-tools push`; built once per run
    (a second caller finds the marker and only lists the tasks). The commands run in the test's process
    (`cli_here`: the same commands without a Python start each)."""
    ws = server.ws / WS_NAME
    marker = server.ws.parent / f"{WS_NAME}.pushed"
    if not marker.exists():
        world = server.ws.parent / f"{WS_NAME}-world"  # outside the document root: only the workspace is served
        cli_here("synth", world, "--clips", "1", "--seconds", "5", "--size", "320x240", "--seed", "11", "-q", check=True)
        cli_here("init", ws, "--recipe", world / "recipe.toml", check=True)
        cli_here("collect", ws, "--world", world, "-q", check=True)
        cli_here("sample", ws, "-q", check=True)
        cli_here("preannotate", ws, "--backend", "motion", "-q", check=True)
        cli_here("push", ws, "--url", server.url, "-q", env={"LABEL_STUDIO_API_KEY": server.api_key}, check=True)
        marker.write_text("pushed\n")
    w = open_workspace(ws)
    try:
        pid = w.catalog.studio_project(server.url)
    finally:
        w.close()
    assert pid, "push recorded no project"
    tasks = [t.dict() if hasattr(t, "dict") else t
             for t in server.client().tasks.list(project=pid, fields="all", page_size=100)]
    assert len(tasks) == 5, f"expected one task per sampled second, got {len(tasks)}"
    return Media(ws=ws, project_id=pid, tasks=tasks)


def served_file(server, url: str) -> Path:
    """The file a task URL (/data/local-files/?d=REL) names: REL under the server's document root."""
    (rel,) = parse_qs(urlsplit(url).query)["d"]
    return server.ws / rel
