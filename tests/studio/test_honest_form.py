"""Unverified classes never decide an AVSS clip's single/multi-source form (issue 22 item 4).

A backend that cannot name classes (motion) labels every object with the clip's category, so its proposals
say nothing of how many classes sound. completeness.clip_form is the one rule push, pull, status and export
use: such a clip's form is unknown (every frame needed), export --include-unreviewed leaves it out with a note
and a card line instead of filing it under v1s or v1m, and validate and stats warn from the release's marker.
"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from avsbench_tools.catalog import MaskVersion
from avsbench_tools.completeness import clip_form, needed_seconds
from avsbench_tools.errors import UsageError
from avsbench_tools.export import CARD, ExportOptions, export
from avsbench_tools.fsutil import read_marker
from avsbench_tools.recipe import load_recipe
from avsbench_tools.stats.compute import compute_stats
from avsbench_tools.studio.pull import store_tasks
from avsbench_tools.validate import validate_release
from avsbench_tools.workspace import open_workspace
from tests.helpers.studio_tasks import brush, build_workspace, cli, rect

KEY = "http://127.0.0.1:5#1"


def _v(second: int, cat: str | None, kind: str = "proposal", backend: str | None = "motion",
       sounding: bool | None = True) -> MaskVersion:
    return MaskVersion(second + 1, "c", second, 0, kind, cat, 0.9, sounding, {}, backend, "h", {}, "m.png", "")


@pytest.fixture(scope="module")
def avss():
    return load_recipe("avss")


def _clip(split: str = "train", category: str = "guitar"):
    return SimpleNamespace(clip_id="c", split=split, category=category)


def test_the_form_rule(avss):
    train = _clip()
    motion = [_v(s, "guitar") for s in range(5)]
    f = clip_form(avss, train, 5, motion)
    assert f.unknown and f.label is None and f.needed == set(range(5))
    assert needed_seconds(avss, train, 5, motion) == set(range(5))  # push sends every frame of such a clip
    # a class-naming backend's proposals decide it; so do reviews
    assert clip_form(avss, train, 5, [_v(s, "guitar", backend="grounded-sam") for s in range(5)]).label == "v1s"
    two = [_v(0, "guitar", "review", None), _v(1, "dog", "review", None)] + [_v(s, "guitar") for s in (2, 3, 4)]
    f = clip_form(avss, train, 5, two)
    assert (f.label, f.unknown, f.needed) == ("v1m", False, set(range(5)))  # more classes cannot undo v1m
    # a motion object believed silent says nothing of what sounds
    assert clip_form(avss, train, 5, [_v(0, "guitar", "review", None), _v(1, "guitar", sounding=False)]).label == "v1s"
    # the source's stated subset, and a 10 s clip's length, decide it whatever the proposals
    src = SimpleNamespace(info_json=json.dumps({"avss_label": "v1m"}))
    assert clip_form(avss, train, 5, motion, src).label == "v1m"
    assert clip_form(avss, train, 10, [_v(s, "guitar") for s in range(10)]).label == "v2"
    # reviews that complete the verified form: the v1s train clip reviewed on frame 0 stays v1s, motion dropped
    mixed = [_v(0, "guitar", "review", None)] + [_v(s, "guitar") for s in (1, 2, 3, 4)]
    f = clip_form(avss, train, 5, mixed, reviewed={0})
    assert (f.label, f.needed, f.unknown, [m.kind for m in f.masks]) == ("v1s", {0}, False, ["review"])
    # ... not so in val/test (every frame supervised): the unreviewed seconds could hold a second class
    assert clip_form(avss, _clip("val"), 5, mixed, reviewed={0}).unknown
    # S4/MS3: the recipe's rule, classes play no part
    ms3 = load_recipe("avsbench-ms3")
    assert not clip_form(ms3, train, 5, motion).unknown


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two AVSS clips (5 s, motion proposals only: every object is 'guitar'): `bare` as pre-annotated, and `path`
    where clip A is reviewed in seconds 0 (guitar) and 3 (dog): two verified classes make it v1m, its other seconds
    filled with proposals under --include-unreviewed; B not reviewed."""
    root = tmp_path_factory.mktemp("honest")
    bare = build_workspace(root, clips=2, recipe="avss")
    path = root / "reviewed"
    shutil.copytree(bare, path, ignore=shutil.ignore_patterns(".lock"))
    ws = open_workspace(path)
    try:
        a, b = (c.clip_id for c in ws.catalog.clips())
        tasks = [{"id": s + 1, "data": {"clip_id": a, "second": s, "ws_id": ws.catalog.studio_ws_id()},
                  "updated_at": "2026-03-01T00:00:00.000000Z",
                  "annotations": [{"id": s + 1, "completed_by": 1, "lead_time": 3.0,
                                   "updated_at": "2026-03-01T00:00:01.000000Z",
                                   "result": [brush("o0", rect(10, 10, 60, 60), "guitar" if s == 0 else "dog")]}]}
                 for s in (0, 3)]
        store_tasks(ws, KEY, tasks, users={1: "ann@example.com"})
    finally:
        ws.close()
    return bare, path, a, b


UNVERIFIED = "1 of 1 clips hold unreviewed proposals whose classes no model named"
WARN = "1 clip left out because its single/multi-source form (v1s or v1m) would rest on classes no model named"


def test_export_leaves_out_a_clip_whose_form_only_unverified_classes_decide(world, tmp_path):
    _, path, a, b = world
    ws = open_workspace(path)
    try:
        res = export(ws, tmp_path / "rel", ExportOptions(include_unreviewed=True))
    finally:
        ws.close()
    assert res.clips == 1 and res.form_unknown == [b] and res.unverified_classes == [a] and res.filled_seconds == 3
    assert len(list((tmp_path / "rel").glob("v1m/*/frames"))) == 1 and not (tmp_path / "rel" / "v1s").exists()
    assert any("1 clips left out because their single/multi-source form" in n and b in n for n in res.notes)
    card = (tmp_path / "rel" / CARD).read_text()
    assert f"open: 1 ({b})" in card and WARN in card
    assert read_marker(tmp_path / "rel")["form_unknown"] == [b] and "proposals of unverified classes: 1" in card
    assert read_marker(tmp_path / "rel")["unverified_classes"] == [a]
    rep = validate_release(tmp_path / "rel", "avss")
    assert rep.ok and any(w.startswith(WARN) and b in w for w in rep.warnings), rep.warnings
    assert any(w.startswith(UNVERIFIED) and a in w for w in rep.warnings), rep.warnings
    stats = compute_stats(tmp_path / "rel", "avss")["warnings"]
    assert any(w.startswith(WARN) for w in stats) and any(w.startswith(UNVERIFIED) for w in stats)
    r = cli("validate", tmp_path / "rel")  # the CLI prints it
    assert r.returncode == 0 and WARN in r.stdout + r.stderr, r.stdout + r.stderr


def test_a_workspace_of_unknown_forms_exports_nothing_and_says_why(world, tmp_path):
    bare, *_ = world
    ws = open_workspace(bare)
    try:
        with pytest.raises(UsageError, match="2 clips left out because their single/multi-source form"):
            export(ws, tmp_path / "none", ExportOptions(include_unreviewed=True))
    finally:
        ws.close()
    assert not (tmp_path / "none").exists()
