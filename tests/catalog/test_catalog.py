"""Every typed catalog method, on a real SQLite file (no mocks)."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.catalog import (
    SCHEMA_VERSION,
    AudioRecord,
    Catalog,
    Clip,
    Expression,
    Fingerprint,
    Frame,
    MaskVersion,
    ObjectRecord,
    Source,
    StageState,
)
from avsbench_tools.errors import UsageError
from tests.helpers.catalog_rows import put_expressions, put_objects, put_stage, stage_of


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path / "catalog.sqlite")
    c.create_schema({"recipe": "avss"})
    yield c
    c.close()


def _clips(cat, n=3, source="s1"):
    cat.add_source_if_new(Source(source_id=source, kind="url", url=f"https://example.org/{source}.mp4"))
    for i in range(n):
        cat.add_clip(Clip(clip_id=f"{source}_{i}", source_id=source, start=5.0 * i, seconds=5,
                          path=f"clips/{source}_{i}.mp4", category="dog_barking"))


def _tables(path) -> dict[str, set[str]]:
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        return {n: {r[1] for r in con.execute(f"PRAGMA table_info({n})")} for n in names}
    finally:
        con.close()


# -- plumbing ---------------------------------------------------------------------------------------
def test_schema_has_every_table_and_version(cat, tmp_path):
    meta = cat.meta()
    assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["recipe"] == "avss" and meta["initialised"]
    assert cat.schema_version() == SCHEMA_VERSION
    tables = _tables(tmp_path / "catalog.sqlite")
    assert set(tables) == {"meta", "sources", "clips", "stage_status", "failures", "frames", "audio", "objects",
                           "expressions", "mask_versions", "mask_sets", "fingerprints",
                           # version 3: the Label Studio round trip
                           "studio_tasks", "studio_predictions", "studio_reviews", "studio_objects",
                           "studio_cursor", "frame_flags",
                           # version 4: set-category's history (a pull never restores an old category)
                           "category_changes"}
    assert "permanent" in tables["failures"]
    assert tables["mask_sets"] == {"clip_id", "kind", "settings_hash", "seconds_json", "created_at"}
    assert tables["fingerprints"] == {"clip_id", "frames", "audio", "n_audio"}
    assert cat.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cat.set_meta("split_seed", 7)
    assert cat.meta()["split_seed"] == "7"
    assert cat.migrate() == {"columns": 0, "mask_sets": 0, "paths": 0, "projects": 0, "duplicates": 0}  # idempotent on a current catalog


def test_a_new_file_has_no_meta_and_root_defaults_to_its_folder(tmp_path):
    c = Catalog(tmp_path / "new.sqlite")
    assert c.meta() == {} and c.schema_version() is None and c.migrate() == {}
    assert c.root == tmp_path
    c.close()
    c = Catalog(tmp_path / "new.sqlite", root=tmp_path / "elsewhere")
    assert c.root == tmp_path / "elsewhere"
    c.close()


def test_a_newer_schema_is_refused_in_one_line(cat, tmp_path):
    cat.set_meta("schema_version", SCHEMA_VERSION + 1)
    cat.close()
    with pytest.raises(UsageError) as exc:
        Catalog(tmp_path / "catalog.sqlite")
    msg = str(exc.value)
    assert "\n" not in msg and f"schema version {SCHEMA_VERSION + 1}" in msg and "newer" in msg and "catalog.sqlite" in msg


# -- sources ----------------------------------------------------------------------------------------
def test_sources(cat):
    a = Source(source_id="a", kind="url", url="https://example.org/a.mp4", title="A")
    assert cat.add_source_if_new(a) is True
    assert cat.add_source_if_new(Source(source_id="a", kind="url", title="other")) is False
    assert cat.source("a").title == "A" and cat.source("missing") is None
    cat.set_source_status("a", "downloaded")
    cat.add_source_if_new(Source(source_id="b", kind="local", path="/videos/b.mp4"))
    assert [s.source_id for s in cat.sources()] == ["a", "b"]
    assert [s.source_id for s in cat.sources("pending")] == ["b"]
    cat.set_source_status("b", "failed", "HTTP 404", fetched_at="2024-01-01T00:00:00Z")
    b = cat.source("b")
    assert (b.status, b.reason, b.fetched_at, b.path) == ("failed", "HTTP 404", "2024-01-01T00:00:00Z", "/videos/b.mp4")
    cat.update_source("b", title="B", duration=12.5)
    b = cat.source("b")
    assert (b.title, b.duration, b.status) == ("B", 12.5, "failed")
    cat.update_source("b")  # nothing to change
    with pytest.raises(ValueError, match="no column bogus"):
        cat.update_source("b", bogus=1)
    with pytest.raises(ValueError):
        cat.set_source_status("b", "done", None, **{"title=NULL, status": "x"})


# -- clips ------------------------------------------------------------------------------------------
def test_clips(cat):
    _clips(cat, 3)
    _clips(cat, 1, source="s2")
    assert cat.count_clips() == 4
    assert [c.clip_id for c in cat.clips()] == ["s1_0", "s1_1", "s1_2", "s2_0"]
    assert [c.clip_id for c in cat.clips(["s2_0", "s1_1", "nope"])] == ["s1_1", "s2_0"]
    assert cat.clips([]) == []
    c = cat.clip("s1_1")
    assert (c.start, c.seconds, c.path, c.category) == (5.0, 5, "clips/s1_1.mp4", "dog_barking") and c.created_at
    assert cat.clip("nope") is None
    assert cat.clip_ids_for_source("s1") == ["s1_0", "s1_1", "s1_2"]
    assert stage_of(cat, "s1_0", "collect").status == "done"  # add_clip records collect done


# -- stages and ledger ------------------------------------------------------------------------------
def test_stage_status_and_counts(cat):
    _clips(cat, 4)
    assert stage_of(cat, "s1_0", "sample") is None
    put_stage(cat, "s1_0", "sample", "done", settings={"fps": 1})
    put_stage(cat, "s1_1", "sample", "failed", reason="corrupt")
    put_stage(cat, "s1_1", "sample", "failed", reason="still corrupt")
    st = stage_of(cat, "s1_0", "sample")
    assert isinstance(st, StageState) and st.settings == {"fps": 1} and st.attempts == 1 and st.reason is None
    st1 = stage_of(cat, "s1_1", "sample")
    assert (st1.status, st1.attempts, st1.reason, st1.settings) == ("failed", 2, "still corrupt", None)
    cat.finish("sample", "s1_3", {"fps": 1})
    assert cat.clip_ids_done("sample") == ["s1_0", "s1_3"]
    assert [s.clip_id for s in cat.stage_states("sample")] == ["s1_0", "s1_1", "s1_3"]
    assert {(s.clip_id, s.stage) for s in cat.stage_states()} >= {("s1_0", "collect"), ("s1_1", "sample")}
    counts = cat.stage_counts()
    assert counts["sample"] == {"done": 2, "failed": 1, "pending": 1}
    assert counts["collect"] == {"done": 4, "failed": 0, "pending": 1}  # the source is still 'pending'
    assert counts["export"] == {"done": 0, "failed": 0, "pending": 4}
    cat.finish_many("export", ["s1_0", "s1_3"], {"fmt": "avss", "out": "/tmp/r"})
    assert cat.clip_ids_done("export") == ["s1_0", "s1_3"]
    assert stage_of(cat, "s1_3", "export").settings == {"fmt": "avss", "out": "/tmp/r"}
    cat.finish_many("export", ["s1_0"])
    assert stage_of(cat, "s1_0", "export").attempts == 2


def test_fail_finish_and_ledger(cat):
    _clips(cat, 2)
    cat.fail("sample", "s1_0", "no audio stream", detail="clips/s1_0.mp4", permanent=True, settings={"fps": 1})
    st = stage_of(cat, "s1_0", "sample")
    assert (st.status, st.reason, st.settings) == ("failed", "no audio stream", {"fps": 1})
    [f] = cat.failures("sample")
    assert (f.item, f.reason, f.detail, f.permanent, f.attempts, f.resolved) == (
        "s1_0", "no audio stream", "clips/s1_0.mp4", 1, 1, 0)
    cat.fail("collect", "https://example.org/x.mp4", "HTTP 404", payload={"kind": "error"})
    assert stage_of(cat, "https://example.org/x.mp4", "collect") is None  # not a clip: the ledger row only
    cat.record_failure("collect", "https://example.org/x.mp4", "HTTP 500")
    fx = cat.failures("collect")[0]
    assert (fx.attempts, fx.reason, fx.payload, fx.permanent) == (2, "HTTP 500", '{"kind": "error"}', 0)
    cat.record_failure("preannotate", "s1_1", "CUDA out of memory")
    assert stage_of(cat, "s1_1", "preannotate") is None  # record_failure writes the ledger row only
    assert {f.item for f in cat.failures()} == {"s1_0", "s1_1", "https://example.org/x.mp4"}
    cat.finish("sample", "s1_0", {"fps": 1})
    assert stage_of(cat, "s1_0", "sample").status == "done" and cat.failures("sample") == []
    assert [f.resolved for f in cat.failures("sample", include_resolved=True)] == [1]
    cat.resolve_failure("collect", "https://example.org/x.mp4")
    assert [f.item for f in cat.failures()] == ["s1_1"]


def test_writes_from_threads(cat):
    _clips(cat, 8)

    def work(i):
        cid = f"s1_{i}"
        cat.fail("sample", cid, "first try")
        cat.finish("sample", cid, {"i": i})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cat.clip_ids_done("sample") == [f"s1_{i}" for i in range(8)] and cat.failures() == []
    assert {s.attempts for s in cat.stage_states("sample")} == {2}


# -- sample -----------------------------------------------------------------------------------------
def _frames(cid, n, tag=""):
    return [Frame(cid, s, 25 * s + 12, s + 0.5, f"frames/{cid}/{s}{tag}.jpg", 160, 120) for s in range(n)]


def test_save_sample_frames_audio_and_embedding(cat):
    _clips(cat, 2)
    cat.record_failure("sample", "s1_0", "was broken")
    act = {"level_db": [-20.0] * 5, "active": [True, False, True, True, True], "info": {"fps": 25.0}}
    audio = AudioRecord("s1_0", "audio/s1_0.wav", "audio/s1_0.logmel.npy", 16000, 1, 5, act)
    cat.save_sample("s1_0", list(reversed(_frames("s1_0", 5))), audio, {"fps": 1})
    assert [f.second for f in cat.frames("s1_0")] == [0, 1, 2, 3, 4]
    assert cat.frames("s1_0")[2] == Frame("s1_0", 2, 62, 2.5, "frames/s1_0/2.jpg", 160, 120)
    assert cat.frames("s1_1") == [] and cat.audio("s1_1") is None
    a = cat.audio("s1_0")
    assert a == AudioRecord("s1_0", "audio/s1_0.wav", "audio/s1_0.logmel.npy", 16000, 1, 5, act, None)
    assert cat.clip_ids_done("sample") == ["s1_0"] and cat.failures() == []
    assert stage_of(cat, "s1_0", "sample").settings == {"fps": 1}
    cat.set_embedding("s1_0", "audio/s1_0.vggish.npy#abc")
    # a re-sample replaces frames and audio, keeps the embedding marker
    cat.save_sample("s1_0", _frames("s1_0", 3, "b"), AudioRecord("s1_0", "audio/w2.wav", "audio/l2.npy", 16000, 2, 3,
                                                                  None), {"fps": 2})
    assert [f.path for f in cat.frames("s1_0")] == [f"frames/s1_0/{s}b.jpg" for s in range(3)]
    a = cat.audio("s1_0")
    assert (a.wav_path, a.channels, a.activity, a.embedding_path) == ("audio/w2.wav", 2, None,
                                                                      "audio/s1_0.vggish.npy#abc")
    assert stage_of(cat, "s1_0", "sample").attempts == 2
    cat.set_embedding("s1_0", None)
    assert cat.audio("s1_0").embedding_path is None
    cat.save_sample("s1_1", _frames("s1_1", 1), AudioRecord("s1_1", "w", "l"), {})
    assert [a.clip_id for a in cat.audios()] == ["s1_0", "s1_1"] and [a.clip_id for a in cat.audios(["s1_1"])] == ["s1_1"]


def test_save_sample_is_one_transaction(cat):
    _clips(cat, 1)
    cat.save_sample("s1_0", _frames("s1_0", 2), AudioRecord("s1_0", "w", "l"), {"v": 1})
    bad = _frames("s1_0", 3, "new") + [Frame("s1_0", 1, 0, 0.0, "dup.jpg")]  # a duplicate second: the insert fails
    with pytest.raises(sqlite3.IntegrityError):
        cat.save_sample("s1_0", bad, AudioRecord("s1_0", "w2", "l2"), {"v": 2})
    assert [f.path for f in cat.frames("s1_0")] == ["frames/s1_0/0.jpg", "frames/s1_0/1.jpg"]
    assert cat.audio("s1_0").wav_path == "w" and stage_of(cat, "s1_0", "sample").settings == {"v": 1}


# -- masks ------------------------------------------------------------------------------------------
def _object_masks():
    from avsbench_tools.masks import ObjectMask

    m1 = np.zeros((12, 16), bool)
    m1[2:6, 3:9] = True
    m2 = np.zeros((12, 16), bool)
    m2[7:11, 1:4] = True
    return [ObjectMask(0, 1, "dog_barking", m1, (3.0, 2.0, 9.0, 6.0), np.float32(0.875), True,
                       {"phrase": "dog", "sam_iou": 0.9}),
            ObjectMask(1, 1, "dog_barking", m1, (3.0, 2.0, 9.0, 6.0), 0.5, None, {}, tracked=True),
            ObjectMask(1, 2, None, m2, None, 0.25, False, {"activity_db": -30.5}, tracked=True, lost=True)]


def _save_set(cat, root, clip_id, objs, kind="proposal", h="h1", backend="grounded-sam", seconds=None, author=None):
    versions = []
    for o in objs:
        rel = f"masks/{clip_id}/{kind}-{h}/{o.second}_{o.fid}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(o.mask.astype(np.uint8) * 255).save(root / rel)
        versions.append(MaskVersion.from_object_mask(o, clip_id, kind, backend, h, {"box_threshold": 0.3}, rel,
                                                     author=author))
    return cat.save_mask_set(clip_id, kind, h, versions, seconds if seconds is not None else [o.second for o in objs])


def test_mask_versions_round_trip_to_object_mask(cat, tmp_path):
    _clips(cat, 2)
    objs = _object_masks()
    assert not cat.mask_set_done("s1_0", "proposal", "h1")
    assert _save_set(cat, tmp_path, "s1_0", objs, seconds=[0, 1, 2, 3, 4]) == 3
    assert cat.mask_set_done("s1_0", "proposal", "h1") and not cat.mask_set_done("s1_0", "review", "h1")
    assert cat.mask_set_seconds("s1_0", "proposal", "h1") == [0, 1, 2, 3, 4]
    assert cat.mask_set_seconds("s1_1", "proposal", "h1") is None
    vs = cat.mask_versions("s1_0")
    assert [v.version_id for v in vs] == sorted(v.version_id for v in vs) and len(vs) == 3
    v = vs[0]
    assert (v.clip_id, v.second, v.fid, v.kind, v.category, v.score, v.sounding, v.backend, v.settings_hash) == (
        "s1_0", 0, 1, "proposal", "dog_barking", 0.875, True, "grounded-sam", "h1")
    assert v.settings == {"box_threshold": 0.3} and v.created_at and v.author is None
    assert v.evidence == {"phrase": "dog", "sam_iou": 0.9, "tracked": False, "lost": False, "box": [3.0, 2.0, 9.0, 6.0]}
    assert vs[1].sounding is None and vs[2].sounding is False
    for o, v in zip(objs, vs, strict=True):
        assert np.array_equal(v.load(tmp_path), o.mask)
        back = v.to_object_mask(tmp_path)
        assert np.array_equal(back.mask, o.mask) and back.mask.dtype == bool
        assert (back.second, back.fid, back.category, back.box, back.score, back.sounding, back.evidence,
                back.tracked, back.lost) == (o.second, o.fid, o.category, o.box, float(o.score), o.sounding,
                                             o.evidence, o.tracked, o.lost)
    assert cat.mask_paths("s1_0", "h1") == {v.path for v in vs} and cat.mask_paths("s1_0", "h2") == set()


def test_mask_sets_replace_only_their_own_rows(cat, tmp_path):
    _clips(cat, 2)
    objs = _object_masks()
    _save_set(cat, tmp_path, "s1_0", objs)
    first_ids = [v.version_id for v in cat.mask_versions("s1_0")]
    _save_set(cat, tmp_path, "s1_0", objs[:1], h="h2", backend="motion")
    _save_set(cat, tmp_path, "s1_0", objs[1:], kind="review", h="h1", backend="label-studio", author="ann")
    assert _save_set(cat, tmp_path, "s1_0", objs[:2]) == 2  # the same set again: replaced as a whole
    vs = cat.mask_versions("s1_0")
    assert len(vs) == 1 + 2 + 2 and not set(first_ids) & {v.version_id for v in vs if v.settings_hash == "h1"
                                                          and v.kind == "proposal"}
    assert [v.kind for v in cat.mask_versions("s1_0", kinds=["review"])] == ["review", "review"]
    assert cat.mask_versions("s1_0", "review") == cat.mask_versions("s1_0", ["review"])  # one kind as a str
    assert {v.author for v in cat.mask_versions("s1_0", kinds=("review",))} == {"ann"}
    assert cat.backend_counts() == {"grounded-sam": 2, "label-studio": 2, "motion": 1}
    assert cat.clip_ids_with_masks("review") == {"s1_0"} and cat.clip_ids_with_masks("proposal") == {"s1_0"}
    assert cat.clip_ids_with_masks("nothing") == set()
    # an empty set is still a finished set (no object in any second)
    assert cat.save_mask_set("s1_1", "proposal", "h1", [], [0, 1, 2]) == 0
    assert cat.mask_set_done("s1_1", "proposal", "h1") and cat.mask_versions("s1_1") == []
    # a version of another set is refused before anything is written
    other = cat.mask_versions("s1_0", ["review"])[0]
    with pytest.raises(ValueError, match="does not belong"):
        cat.save_mask_set("s1_1", "review", "h1", [other], [0])
    assert not cat.mask_set_done("s1_1", "review", "h1")


# -- objects, expressions, fingerprints, splits -----------------------------------------------------
def test_objects_and_expressions(cat):
    _clips(cat, 2)
    assert cat.objects("s1_0") == [] and cat.expressions("s1_0") == []
    put_objects(cat, "s1_0", [ObjectRecord("s1_0", 2, "male_speech", "the man"),
                              ObjectRecord("s1_0", 1, "dog_barking", "the dog barking")])
    assert [o.fid for o in cat.objects("s1_0")] == [1, 2] and cat.objects("s1_0")[1].label == "the man"
    ex = [Expression("s1_0", 1, 1, "the dog on the left"), Expression("s1_0", 0, 1, "the dog barking"),
          Expression("s1_0", 2, None, "the piano", is_null=True)]
    put_expressions(cat, "s1_0", ex)
    got = cat.expressions("s1_0")
    assert [e.n for e in got] == [0, 1, 2] and got[2] == Expression("s1_0", 2, None, "the piano", True)
    assert got[0].is_null is False
    put_expressions(cat, "s1_0", ex[:1])
    put_objects(cat, "s1_0", [])
    assert [e.text for e in cat.expressions("s1_0")] == ["the dog on the left"] and cat.objects("s1_0") == []


def test_fingerprints(cat):
    assert cat.fingerprints() == {}
    bits = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    big = (1 << 63) - 1  # 64-bit dHashes keep every bit
    fp = Fingerprint("a", [big, 0, 12345], np.packbits(bits).tobytes(), bits.size)
    cat.save_fingerprints([fp, Fingerprint("b", [], b"", 0)])
    cat.save_fingerprints([])
    got = cat.fingerprints()
    assert got["a"] == fp and got["b"] == Fingerprint("b", [], b"", 0)
    assert np.array_equal(np.unpackbits(np.frombuffer(got["a"].audio, np.uint8))[: got["a"].n_audio].astype(bool), bits)
    cat.save_fingerprints([Fingerprint("a", [1], b"\x80", 1)])
    assert cat.fingerprints()["a"].frames == [1]


def test_splits(cat):
    _clips(cat, 4)
    assert cat.split_counts() == {"none": 4}
    assert cat.set_splits({"s1_0": "train", "s1_1": "train", "s1_2": "test"}, seed=5) == 3
    assert cat.meta()["split_seed"] == "5"
    assert cat.set_splits({"s1_0": "test", "s1_3": "val"}) == 1  # a drawn split is kept
    assert {c.clip_id: c.split for c in cat.clips()} == {"s1_0": "train", "s1_1": "train", "s1_2": "test", "s1_3": "val"}
    assert cat.split_counts() == {"test": 1, "train": 2, "val": 1}


def test_recategorise(cat, tmp_path):
    _clips(cat, 2)
    _save_set(cat, tmp_path, "s1_0", _object_masks())  # two dog_barking versions, one without category
    put_objects(cat, "s1_0", [ObjectRecord("s1_0", 1, "dog_barking", "the dog barking")])
    put_expressions(cat, "s1_0", [Expression("s1_0", 0, 1, "The dog barking"),
                                  Expression("s1_0", 1, 1, "the dog barking near the door")])
    cat.finish("export", "s1_0")
    ch = cat.recategorise("s1_0", "cat_meowing")
    assert ch == {"old": "dog_barking", "new": "cat_meowing", "mask_versions": 3, "objects": 1, "expressions": 1,
                  "kept_expressions": 1, "prompted": 3, "exported": True}
    assert cat.clip("s1_0").category == "cat_meowing" and cat.source("s1").category is None  # s1_1 still a dog
    assert cat.objects("s1_0")[0].label == "the cat meowing"
    assert [e.text for e in cat.expressions("s1_0")] == ["the cat meowing", "the dog barking near the door"]
    assert {v.category for v in cat.mask_versions("s1_0")} == {"cat_meowing"}
    res = cat.recategorise_many({"s1_1": "cat_meowing", "s1_0": "cat_meowing"})
    assert [r["old"] for r in res] == ["dog_barking", "cat_meowing"] and res[1]["mask_versions"] == 0
    assert cat.source("s1").category == "cat_meowing"  # every clip of the source now has it
    with pytest.raises(KeyError):
        cat.recategorise_many({"s1_0": "dog_barking", "nope": "x"})
    assert cat.clip("s1_0").category == "cat_meowing"  # one transaction: nothing changed
