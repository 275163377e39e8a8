"""A workspace moved to another folder keeps working: the catalog stores paths relative to it.

Built for real with the CLI (synth world -> init -> collect from a loopback server, so downloads land
in WS/sources -> sample -> preannotate), moved with shutil.move (the old folder is gone), then a new
clip is collected, sampled and pre-annotated there, and every clip is exported and validated. Every
command runs from an unrelated working directory, so no path can lean on the current directory.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path

from avsbench_tools.catalog import Catalog
from avsbench_tools.recipe import load_recipe
from avsbench_tools.synth import SynthParams, synthesize
from tests.helpers import REPO, cli_here


def _text_values(catalog: Path) -> list[str]:
    con = sqlite3.connect(catalog)
    try:
        out = []
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"):
            for row in con.execute(f"SELECT * FROM {table}"):
                out += [v for v in row if isinstance(v, str)]
        return out
    finally:
        con.close()


def _sample_states(ws: Path) -> dict[str, tuple]:
    cat = Catalog(ws / "catalog.sqlite")
    try:
        return {s.clip_id: (s.status, s.attempts, s.updated_at, [f.path for f in cat.frames(s.clip_id)])
                for s in cat.stage_states("sample")}
    finally:
        cat.close()


def test_a_moved_workspace_samples_and_exports(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    from serve import start

    world = tmp_path / "world"
    synthesize(world, SynthParams(clips=3, seconds=5, width=160, height=120, seed=11, gold="avsbench-s4"))
    videos = sorted((world / "videos").glob("*.mp4"))
    cwd = tmp_path / "somewhere-else"
    cwd.mkdir()
    old = tmp_path / "old" / "ws"
    old.parent.mkdir()
    category = next(iter(load_recipe(world / "recipe.toml").categories))
    httpd, base = start(str(world))
    try:
        (tmp_path / "urls.txt").write_text("".join(f"{base}videos/{v.name}\n" for v in videos[:2]))
        cli_here("init", old, "--recipe", world / "recipe.toml", check=True, cwd=cwd)
        cli_here("collect", old, "--urls", tmp_path / "urls.txt", "--any-license", "--category", category,
                "-q", check=True, cwd=cwd)
    finally:
        httpd.shutdown()
    assert sorted(p.suffix for p in (old / "sources").iterdir()) == [".mp4", ".mp4"]  # downloads inside WS
    cli_here("sample", old, "-q", check=True, cwd=cwd)
    cli_here("preannotate", old, "--backend", "motion", "-q", check=True, cwd=cwd)
    before = json.loads(cli_here("clips", old, "--json", check=True, cwd=cwd).stdout)
    assert len(before) == 2
    sampled = _sample_states(old)

    new = tmp_path / "disk2" / "moved"
    new.parent.mkdir()
    shutil.move(old, new)
    assert not old.exists()
    values = _text_values(new / "catalog.sqlite")
    assert not [v for v in values if str(tmp_path / "old") in v], "the catalog names the old location"

    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(videos[2], more / videos[2].name)
    cli_here("collect", new, "--local", more, "--any-license", "--category", category, "-q", check=True, cwd=cwd)
    cli_here("sample", new, "-q", check=True, cwd=cwd)
    after = _sample_states(new)
    assert len(after) == 3 and {k: after[k] for k in sampled} == sampled  # only the new clip was sampled
    cli_here("preannotate", new, "--backend", "motion", "-q", check=True, cwd=cwd)
    st = json.loads(cli_here("status", new, "--json", check=True, cwd=cwd).stdout)
    assert st["clips"] == 3 and st["failures"] == []
    for stage in ("collect", "sample", "preannotate"):
        assert st["stages"][stage] == {"done": 3, "failed": 0, "pending": 0}, stage
    clips = {c["clip"]: c for c in json.loads(cli_here("clips", new, "--json", check=True, cwd=cwd).stdout)}
    assert {c["clip"]: c["source"] for c in before} == {k: clips[k]["source"] for k in (c["clip"] for c in before)}

    rel = tmp_path / "release"
    cli_here("export", new, rel, "--format", "avsbench-s4", "--include-unreviewed", "-q", check=True, cwd=cwd)
    cli_here("validate", rel, "--format", "avsbench-s4", "-q", check=True, cwd=cwd)
    st = json.loads(cli_here("status", new, "--json", check=True, cwd=cwd).stdout)
    assert st["stages"]["export"] == {"done": 3, "failed": 0, "pending": 0}
    # a preview reads frames, audio and masks through the stored paths too
    cli_here("preview", new, "--clip", sorted(clips)[0], "--out", tmp_path / "p.png", "--masks", check=True, cwd=cwd)
    assert (tmp_path / "p.png").stat().st_size > 0
