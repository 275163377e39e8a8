"""The one mask type: ObjectMask in memory, MaskVersion in the catalog, and back, through a real workspace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avsbench_tools.catalog import MaskVersion
from avsbench_tools.mask_store import (
    KINDS,
    latest_masks,
    save_versions,
    settings_hash,
    shown_masks,
    versions_done,
)
from avsbench_tools.masks import ObjectMask, box_of
from avsbench_tools.workspace import init_workspace, open_workspace

SETTINGS = {"backend": "motion", "version": 1, "span_s": 0.4}


@pytest.fixture
def ws(tmp_path: Path):
    w, _ = init_workspace(tmp_path / "ws", "avss")
    yield w
    w.close()


def _mask(x0: int, y0: int, x1: int, y1: int, shape=(24, 32)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def _obj(second: int, fid: int, x0: int = 2, sounding: bool | None = True, **kw) -> ObjectMask:
    m = _mask(x0, 3, x0 + 6, 11)
    return ObjectMask(second, fid, kw.pop("category", "dog"), m, box_of(m), kw.pop("score", 0.75), sounding,
                      evidence=kw.pop("evidence", {"phrase": "a dog", "sam_iou": 0.9}), **kw)


def test_object_masks_round_trip_through_the_catalog(ws):
    objs = [_obj(0, 0, tracked=False), _obj(1, 0, x0=4, sounding=False, tracked=True, lost=True),
            _obj(1, 1, x0=20, sounding=None, category=None, evidence={"motion_score": 0.25, "nested": {"a": [1, 2]}})]
    assert save_versions(ws, "c1", objs, "proposal", "motion", SETTINGS, seconds=[0, 1, 2]) == 3
    ws.close()
    ws2 = open_workspace(ws.root)  # a fresh connection: nothing is served from memory
    versions = ws2.catalog.mask_versions("c1")
    assert [type(v) for v in versions] == [MaskVersion] * 3
    assert {(v.kind, v.backend, v.settings_hash) for v in versions} == {("proposal", "motion", settings_hash(SETTINGS))}
    assert all(v.settings == SETTINGS and (ws2.root / v.path).is_file() and not Path(v.path).is_absolute()
               for v in versions)
    back = sorted((v.to_object_mask(ws2.root) for v in versions), key=lambda o: (o.second, o.fid))
    for a, b in zip(objs, back, strict=True):
        assert (b.second, b.fid, b.category, b.score, b.sounding, b.tracked, b.lost) == (
            a.second, a.fid, a.category, a.score, a.sounding, a.tracked, a.lost)
        assert b.box == a.box and b.evidence == a.evidence
        assert b.mask.dtype == bool and np.array_equal(b.mask, a.mask)
    # and stored again from what was loaded: the same rows
    again = MaskVersion.from_object_mask(back[1], "c1", "proposal", "motion", versions[1].settings_hash, SETTINGS,
                                         versions[1].path)
    assert (again.sounding, again.evidence, again.score) == (versions[1].sounding, versions[1].evidence,
                                                             versions[1].score)
    ws2.close()


def test_a_set_is_done_even_without_objects_and_no_meta_key_is_written(ws):
    assert not versions_done(ws, "c1", "proposal", SETTINGS)
    assert save_versions(ws, "c1", [], "proposal", "motion", SETTINGS, seconds=[0, 1]) == 0
    assert versions_done(ws, "c1", "proposal", SETTINGS)
    assert not versions_done(ws, "c1", "proposal", {**SETTINGS, "span_s": 0.5})
    assert not versions_done(ws, "c1", "review", SETTINGS) and not versions_done(ws, "c2", "proposal", SETTINGS)
    assert ws.catalog.mask_set_seconds("c1", "proposal", settings_hash(SETTINGS)) == [0, 1]
    assert not [k for k in ws.catalog.meta() if k.startswith("masks-done")]
    # a box-only detection has no mask to store
    box_only = ObjectMask(0, 0, "dog", None, (1.0, 1.0, 5.0, 5.0), 0.5)
    assert save_versions(ws, "c1", [box_only], "proposal", "motion", SETTINGS) == 0


def test_saving_the_same_settings_replaces_the_set_and_keeps_other_settings(ws):
    other = {**SETTINGS, "span_s": 0.8}
    save_versions(ws, "c1", [_obj(0, 0), _obj(1, 0), _obj(2, 0)], "proposal", "motion", SETTINGS)
    save_versions(ws, "c1", [_obj(0, 5)], "proposal", "motion", other)
    save_versions(ws, "c2", [_obj(0, 0)], "proposal", "motion", SETTINGS)
    save_versions(ws, "c1", [_obj(0, 0, x0=10), _obj(3, 1)], "proposal", "motion", SETTINGS)  # re-run: replaces
    h, h_other = settings_hash(SETTINGS), settings_hash(other)
    rows = ws.catalog.mask_versions("c1")
    assert sorted((v.settings_hash, v.second, v.fid) for v in rows) == sorted(
        [(h, 0, 0), (h, 3, 1), (h_other, 0, 5)])
    new = next(v for v in rows if v.settings_hash == h and v.second == 0)
    assert np.array_equal(new.load(ws.root), _mask(10, 3, 16, 11))  # the file of the new set, not the old one
    assert len(ws.catalog.mask_versions("c2")) == 1


def test_a_failed_save_commits_nothing_and_removes_only_its_own_new_files(ws):
    save_versions(ws, "c1", [_obj(0, 0)], "proposal", "motion", SETTINGS)
    kept = ws.path(ws.catalog.mask_versions("c1")[0].path)
    bad = _obj(1, 0, evidence={"not json": object()})  # rows are written after the files: this fails there
    with pytest.raises(TypeError):
        save_versions(ws, "c1", [_obj(0, 0, x0=12), bad], "proposal", "motion", SETTINGS)
    # the committed set is unchanged (its rows, and its file is still there); the new file of (1, 0) is gone
    assert kept.is_file() and not (kept.parent / "1_0.png").exists()
    assert [(v.second, v.fid, v.evidence.get("not json")) for v in ws.catalog.mask_versions("c1")] == [(0, 0, None)]


def test_latest_masks_prefers_reviews_then_the_newest_set(ws):
    save_versions(ws, "c1", [_obj(0, 0), _obj(1, 0), _obj(1, 1, x0=20)], "proposal", "motion", SETTINGS)
    newer = {**SETTINGS, "span_s": 0.6}
    save_versions(ws, "c1", [_obj(0, 0, x0=5), _obj(2, 0)], "proposal", "motion", newer)
    save_versions(ws, "c1", [_obj(1, 0, x0=14, sounding=False)], "review", "studio", {"review": 1}, author="ann")
    got = latest_masks(ws, "c1")
    assert all(isinstance(v, MaskVersion) for v in got)
    # the review wins its object; the proposals come from the newest proposal set only (not (1, 1) of the old one)
    assert [(v.second, v.fid, v.kind) for v in got] == [(0, 0, "proposal"), (1, 0, "review"), (2, 0, "proposal")]
    assert {v.settings_hash for v in got if v.kind == "proposal"} == {settings_hash(newer)}
    review = got[1]
    assert review.author == "ann" and review.sounding is False
    assert np.array_equal(review.to_object_mask(ws.root).mask, _mask(14, 3, 20, 11))
    # proposals only (export --include-unreviewed off is the reverse: reviews only)
    assert [v.kind for v in latest_masks(ws, "c1", ("proposal",))] == ["proposal"] * 2
    assert [(v.second, v.fid) for v in latest_masks(ws, "c1", ("review",))] == [(1, 0)]
    assert latest_masks(ws, "nope") == []
    # the clip's versions read once (every kind: push's plan) give the same answers as reading them per call
    every = ws.catalog.mask_versions("c1")
    for kinds in (KINDS, ("proposal",), ("review",)):
        assert latest_masks(ws, "c1", kinds, every) == latest_masks(ws, "c1", kinds)
    for unreviewed in (True, False):
        assert shown_masks(ws, "c1", unreviewed, every) == shown_masks(ws, "c1", unreviewed)
    assert [(v.second, v.kind) for v in shown_masks(ws, "c1", True, every)] == [(0, "proposal"), (1, "review"),
                                                                                 (2, "proposal")]
