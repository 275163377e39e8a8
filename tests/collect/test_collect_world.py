"""A synthetic world scored end to end (issue #12, point 10): `collect --world` keeps the world's video
ids, splits and categories, so collect -> sample -> preannotate -> export -> evaluate against the
world's gold release finds a prediction at the exact path of every gold mask, in every split."""

from __future__ import annotations

import json
import shutil

import pytest

from avsbench_tools.release_reader import read_release
from avsbench_tools.synth import SynthParams, synthesize
from tests.helpers import cli_here
from tests.helpers.httpserver import MediaServer


@pytest.fixture(scope="module")
def world_s4(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "s4"
    synthesize(out, SynthParams(clips=4, seconds=5, width=160, height=120, seed=5, gold="avsbench-s4"))
    return out


def _clips(ws) -> list[dict]:
    return json.loads(cli_here("clips", ws, "--json", check=True).stdout)


@pytest.fixture(scope="module")
def world_avss(tmp_path_factory):
    """3 clips of 5 s with the AVSS gold release: multi-source (v1m) clips named <ytid>_<n>, vid = uid."""
    out = tmp_path_factory.mktemp("world") / "avss"
    synthesize(out, SynthParams(clips=3, seconds=5, width=96, height=64, seed=5, gold="avss"))
    return out


@pytest.mark.parametrize("fmt", ["avsbench-ms3", "avsbench-s4", "avss", "ref-avs"])
def test_world_round_trip_scores_every_gold_frame(fmt, tmp_path, request):
    """The README's world -> init -> collect --world -> sample -> preannotate -> export -> evaluate path, per format."""
    world = request.getfixturevalue({"avsbench-ms3": "world_ms3", "avsbench-s4": "world_s4", "avss": "world_avss",
                                     "ref-avs": "world_10s"}[fmt])
    gold = read_release(world / "gold", fmt)
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", world / "recipe.toml", check=True)
    proc = cli_here("collect", ws, "--world", world)  # no --category: the world gives each clip its own
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"next: avs-tools sample {ws}"
    clips = _clips(ws)
    if fmt == "avsbench-ms3":  # MS3 names are the clip ids, <video id>_<n>
        assert sorted(c["clip"] for c in clips) == sorted(it.name for it in gold.items)
    assert sorted({c["clip"].split("_")[0] for c in clips}) == \
        sorted({it.row.get("vid", it.name).split("_")[0] for it in gold.items if not it.null})
    cli_here("sample", ws, "-q", check=True)
    cli_here("preannotate", ws, "-q", check=True)
    rel = tmp_path / "rel"
    cli_here("export", ws, rel, "--include-unreviewed", "-q", check=True)
    exported = read_release(rel, fmt)
    if fmt == "avss":  # the names as released: v1m <ytid>_<n> with vid = uid, v1s/v2 <ytid>_<start_ms>_<end_ms>
        assert any(it.row["label"] == "v1m" for it in gold.items)
        key = ("vid", "uid", "s_min", "s_sec", "split", "label")  # a_obj: what the proposals hold
        assert sorted(tuple(it.row[k] for k in key) for it in exported.items) == \
            sorted(tuple(it.row[k] for k in key) for it in gold.items)
        for it in exported.items:
            assert (it.row["vid"] == it.name) == (it.row["label"] == "v1m")
    elif fmt == "ref-avs":  # one row per object and expression; the clips and splits agree
        assert sorted({(it.row["vid"], it.split) for it in exported.items if not it.null}) == \
            sorted({(it.row["vid"], it.split) for it in gold.items if not it.null})
    else:
        assert sorted((it.name, it.split, it.category) for it in exported.items) == \
            sorted((it.name, it.split, it.category) for it in gold.items)
    # every split of the gold release the export has (Ref-AVS test_n: null expressions come from the studio only)
    for split in sorted({it.split for it in gold.items} & {it.split for it in exported.items}):
        want = sum(len(it.masks) for it in gold.items if it.split == split)
        # Ref-AVS masks are per referred object: the gold's objects the proposals did not find have no mask, and
        # --allow-missing scores them as empty, saying how many on the result line
        extra = ("--allow-missing",) if fmt == "ref-avs" else ()
        proc = cli_here("evaluate", "--format", fmt, "--gt", world / "gold", "--pred", rel, "--split", split, "--json",
                       *extra)
        assert proc.returncode == 0, proc.stderr
        res = json.loads(proc.stdout)
        assert res["frames"] == want > 0, (split, res)
        if fmt == "ref-avs":
            assert res[split]["missing"] == res["missing"] < want and 0 <= res[split]["J"] <= 1, (split, res)
            text = cli_here("evaluate", "--format", fmt, "--gt", world / "gold", "--pred", rel, "--split", split,
                           *extra, "-q").stdout
            line = next(x for x in text.splitlines() if x.strip().startswith(split))
            assert f"({want} frames, {res['missing']} of them without a prediction, scored as empty)" in line \
                or (res["missing"] == 0 and f"({want} frames)" in line), text
        else:
            assert not res.get("missing") and 0 < res["miou"] <= 1, (split, res)


def test_world_through_urls_keeps_the_same_ids(tmp_path, world_ms3):
    """--urls serving the world, with --world: the same clip ids, splits and categories as --local."""
    www = tmp_path / "www"
    shutil.copytree(world_ms3 / "videos", www / "videos")
    srv = MediaServer(www)
    try:
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(srv.url(line) + "\n" for line in (world_ms3 / "urls.txt").read_text().split()))
        by_url, by_file = tmp_path / "ws-url", tmp_path / "ws-local"
        for ws in (by_url, by_file):
            cli_here("init", ws, "--recipe", world_ms3 / "recipe.toml", check=True)
        cli_here("collect", by_url, "--urls", urls, "--world", world_ms3, "--any-license", "-q", check=True)
        cli_here("collect", by_file, "--local", world_ms3 / "videos", "--world", world_ms3, "-q", check=True)
        key = [(c["clip"], c["split"], c["category"]) for c in _clips(by_url)]
        assert key == [(c["clip"], c["split"], c["category"]) for c in _clips(by_file)] and len(key) == 4
        # a URL that is not one of the world's videos is refused before anything is queued
        other = tmp_path / "other.txt"
        other.write_text(srv.url("videos/holiday.mp4") + "\n")
        ws = tmp_path / "ws-other"
        cli_here("init", ws, "--recipe", world_ms3 / "recipe.toml", check=True)
        proc = cli_here("collect", ws, "--urls", other, "--world", world_ms3, "--any-license", "-q")
        assert proc.returncode == 2 and "holiday.mp4" in proc.stderr and "is not one of its videos" in proc.stderr
    finally:
        srv.close()


def test_world_needs_the_worlds_recipe(tmp_path, world_ms3):
    ws = tmp_path / "ws"
    cli_here("init", ws, "--recipe", "avsbench-s4", check=True)
    proc = cli_here("collect", ws, "--world", world_ms3, "-q")
    assert proc.returncode == 2 and f"--recipe {world_ms3}/recipe.toml" in proc.stderr
    cli_here("init", tmp_path / "ws2", "--recipe", "avsbench-ms3", check=True)
    proc = cli_here("collect", tmp_path / "ws2", "--world", world_ms3, "-q")  # same format, other categories
    assert proc.returncode == 2 and "is not in recipe avsbench-ms3" in proc.stderr
    proc = cli_here("collect", tmp_path / "ws2", "--world", tmp_path, "-q")
    assert proc.returncode == 2 and "not a synthetic world" in proc.stderr
