"""publish -> unpublish gives the official tree back byte for byte, in every format; the CLI's guards."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsbench_tools.publish import publish, unpublish
from avsbench_tools.release_reader import read_release
from tests.helpers import cli_here


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["avsbench-s4", "avsbench-ms3", "avss", "ref-avs"])
def test_round_trip_is_byte_identical(fmt, gold_releases, published, tmp_path):
    rel = gold_releases[fmt]
    res = unpublish(published[fmt], tmp_path / "back")
    before, after = _tree(rel), _tree(tmp_path / "back")
    assert sorted(after) == sorted(before)
    assert [k for k in before if before[k] != after[k]] == []
    assert res.files == len(before)
    # the rebuilt tree reads as the same release
    a, b = read_release(rel, fmt), read_release(tmp_path / "back", fmt)
    assert [(i.name, i.split) for i in a.items] == [(i.name, i.split) for i in b.items]


def test_every_file_is_in_exactly_one_table(gold_releases, published):
    """Frames and masks in the frames table, audio and log-mel in the clips table, the rest in files."""
    import pyarrow.parquet as pq

    fmt = "avsbench-s4"
    folder = published[fmt]
    frames = pq.read_table(sorted((folder / "data" / "frames").glob("*.parquet"))).to_pylist()
    clips = pq.read_table(sorted((folder / "data" / "clips").glob("*.parquet"))).to_pylist()
    files = pq.read_table(sorted((folder / "data" / "files").glob("*.parquet"))).to_pylist()
    held = [r["frame"]["path"] for r in frames] + [r["mask"]["path"] for r in frames if r["mask"]]
    held += [r["audio"]["path"] for r in clips] + [r["logmel_path"] for r in clips] + [r["path"] for r in files]
    assert sorted(held) == sorted(_tree(gold_releases[fmt]))
    assert {r["path"] for r in files} == {"Single-source/s4_meta_data.csv", ".avs-gold.json"}
    # S4 train: only the first second is annotated; val/test: all five
    for r in frames:
        assert r["annotated"] == (r["split"] != "train" or r["second"] == 0)
        assert (r["mask"] is not None) == r["annotated"]
    assert {r["clip"] for r in clips} == {r["clip"] for r in frames}
    assert all(len(r["logmel"]) == 5 and len(r["logmel"][0]) == 96 and len(r["logmel"][0][0]) == 64 for r in clips)


def test_unpublish_checks_the_release_checksums(gold_releases, tmp_path):
    """A release with SHA256SUMS is checked file by file when it comes back; a damaged shard is one line."""
    import shutil

    from avsbench_tools.export.output import manifest

    rel = tmp_path / "rel"
    shutil.copytree(gold_releases["avsbench-ms3"], rel)
    (rel / "SHA256SUMS").write_text(manifest(rel))
    publish(rel, "avsbench-ms3", tmp_path / "pub")
    res = unpublish(tmp_path / "pub", tmp_path / "back")
    assert res.checked == len(_tree(rel)) - 1
    # swap the bytes of one frame in the Parquet: the check names the file and nothing is written
    import pyarrow.parquet as pq

    shard = sorted((tmp_path / "pub" / "data" / "frames").glob("*.parquet"))[0]
    t = pq.read_table(shard)
    rows = t.to_pylist()
    rows[0]["frame"]["bytes"] = rows[1]["frame"]["bytes"]
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), shard)
    p = cli_here("unpublish", tmp_path / "pub", "--out", tmp_path / "back2", "-q")
    assert p.returncode == 1 and "does not match the release's SHA256SUMS" in p.stderr
    assert rows[0]["frame"]["path"] in p.stderr and not (tmp_path / "back2").exists()


def test_cli_publish_unpublish_and_guards(gold_releases, tmp_path):
    rel = gold_releases["avss"]
    p = cli_here("publish", rel, "--format", "avss", "--out", tmp_path / "hf", "-q")
    assert p.returncode == 0, p.stderr
    assert "publish: 3 clips" in p.stdout and (tmp_path / "hf" / "croissant.json").is_file()
    again = cli_here("publish", rel, "--format", "avss", "--out", tmp_path / "hf", "-q")
    assert again.returncode == 2 and "pass --force" in again.stderr
    assert cli_here("publish", rel, "--format", "avss", "--out", tmp_path / "hf", "--force", "-q").returncode == 0
    inside = cli_here("publish", rel, "--format", "avss", "--out", rel / "hf", "-q")
    assert inside.returncode == 2 and "inside the release" in inside.stderr and not (rel / "hf").exists()
    wrong = cli_here("publish", rel, "--format", "ref-avs", "--out", tmp_path / "x", "-q")
    assert wrong.returncode == 2 and "metadata.csv" not in wrong.stdout and "Traceback" not in wrong.stderr
    notpub = cli_here("unpublish", rel, "--out", tmp_path / "y", "-q")
    assert notpub.returncode == 2 and "not a folder avs-tools publish wrote" in notpub.stderr
    back = cli_here("unpublish", tmp_path / "hf", "--out", tmp_path / "back", "-q")
    assert back.returncode == 0 and "unpublish:" in back.stdout
    assert _tree(tmp_path / "back") == _tree(rel)


def test_publish_with_workspace_carries_provenance(s4_workspace, tmp_path):
    """--workspace: per-frame provenance (proposal, backend), licences and sources from the catalog, in the
    Parquet rows and the Croissant RAI fields; the tree still comes back byte for byte."""
    import json

    import pyarrow.parquet as pq

    cli_here("export", s4_workspace, tmp_path / "rel", "--include-unreviewed", "-q", check=True)
    # no --format: the release's marker names it
    p = cli_here("publish", tmp_path / "rel", "--out", tmp_path / "hf", "--workspace", s4_workspace, "-q")
    assert p.returncode == 0, p.stderr
    frames = pq.read_table(sorted((tmp_path / "hf" / "data" / "frames").glob("*.parquet"))).to_pylist()
    annotated = [r for r in frames if r["annotated"]]
    assert annotated and all(r["mask_source"] == "proposal" and r["backend"] == "motion" for r in annotated)
    clips = pq.read_table(sorted((tmp_path / "hf" / "data" / "clips").glob("*.parquet"))).to_pylist()
    assert all(r["licence"] and r["source_url"] for r in clips)
    doc = json.loads((tmp_path / "hf" / "croissant.json").read_text())
    assert any(t.startswith("motion") for t in doc["rai:machineAnnotationTools"])
    assert "Sources by kind" in doc["rai:dataCollection"] and "0 of" in doc["rai:dataAnnotationProtocol"]
    assert cli_here("unpublish", tmp_path / "hf", "--out", tmp_path / "back", "-q").returncode == 0
    assert _tree(tmp_path / "back") == _tree(tmp_path / "rel")


def test_provenance_finds_avss_uids():
    """An AVSS v1s/v2 clip is released as <video>_<start_ms>_<end_ms> (masks_to_clip), a v1m clip under the
    name export gives it: publish --workspace matches a release clip to its catalog clip by either."""
    from avsbench_tools.catalog import Clip, Source
    from avsbench_tools.publish.provenance import _candidates

    c = Clip("c1", "s1", 12.5, 5, "clips/c1.mp4")
    assert _candidates(c, "vid_0", Source("s1", "url", video_id="vid")) == ["vid_0", "vid_12500_17500"]
    assert _candidates(c, None, Source("s1", "local")) == ["s1_12500_17500"]


def test_small_shards_round_trip(gold_releases, tmp_path):
    """A shard is cut once it holds shard_bytes: many shards per split, each about that size at most (one row
    group over), and the tree still comes back byte for byte."""
    res = publish(gold_releases["ref-avs"], "ref-avs", tmp_path / "hf", shard_bytes=10_000)
    frames = sorted((tmp_path / "hf" / "data" / "frames").glob("train-*.parquet"))
    assert len(frames) >= 2
    assert all(p.stat().st_size < 40_000 for p in frames)  # 10 kB and at most one row group beyond
    assert len(res.shards) == sum(1 for _ in (tmp_path / "hf" / "data").rglob("*.parquet"))
    unpublish(tmp_path / "hf", tmp_path / "back")
    assert _tree(tmp_path / "back") == _tree(gold_releases["ref-avs"])
