"""export / validate / stats / evaluate / splits, against the official layouts and the real metadata."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools import metrics
from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.media import ffmpeg_exe
from avsbench_tools.preannotate import PreannotateOptions, preannotate
from avsbench_tools.release_reader import read_release
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.splits import assign_splits
from avsbench_tools.synth import SynthParams, synthesize
from avsbench_tools.validate import validate_release
from avsbench_tools.workspace import init_workspace
from tests.helpers import REAL_METADATA, REPO, cli_here

FORMATS = {"avsbench-s4": 5, "avsbench-ms3": 5, "avss": 5, "ref-avs": 10}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Each format: synth world -> init -> collect (yt-dlp from loopback; AVSS with --world, which
    states each clip's subset) -> sample -> preannotate -> export."""
    import sys

    sys.path.insert(0, str(REPO / "tools"))
    from serve import start

    out = {}
    for fmt, seconds in FORMATS.items():
        d = tmp_path_factory.mktemp(fmt)
        synthesize(d / "world", SynthParams(clips=4, seconds=seconds, width=160, height=120, seed=5, gold=fmt))
        httpd, base = start(str(d / "world"))
        (d / "urls.txt").write_text("".join(base + u + "\n" for u in (d / "world" / "urls.txt").read_text().split()))
        ws, _ = init_workspace(d / "ws", str(d / "world" / "recipe.toml"))
        # AVSS: --world also states each clip's subset (v1s/v1m/v2), as AVSS's metadata does; the weight-free
        # motion proposals never decide it (completeness.py), so without it nothing unreviewed exports
        world = d / "world" if fmt == "avss" else None
        collect(ws, CollectOptions(urls=d / "urls.txt", world=world, any_license=True))
        httpd.shutdown()
        sample(ws, SampleOptions(jobs=2))
        preannotate(ws, PreannotateOptions())
        ws.close()
        cli_here("export", d / "ws", d / "release", "--format", fmt, "--include-unreviewed", "-q", check=True)
        out[fmt] = d
    return out


def _torch_pkl(path: Path):
    import torch  # noqa: F401 - the official loaders unpickle torch tensors

    with open(path, "rb") as fh:
        return pickle.load(fh)


def _official_loader_reads(root: Path, fmt: str) -> int:
    """Follow the official loaders' path logic and read calls; returns the number of samples read."""
    n = 0
    if fmt == "avsbench-s4":
        base = root / "Single-source"
        with open(base / "s4_meta_data.csv") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            name, cat, split = r["name"], r["category"], r["split"]
            for k in range(1, 6):
                img = Image.open(base / "s4_data" / "visual_frames" / split / cat / name / f"{name}_{k}.png").convert("RGB")
                assert img.size == (224, 224)
            for k in ([1] if split == "train" else range(1, 6)):
                m = np.asarray(Image.open(base / "s4_data" / "gt_masks" / split / cat / name / f"{name}_{k}.png").convert("1"))
                assert m.shape == (224, 224)
            assert tuple(_torch_pkl(base / "s4_data" / "audio_log_mel" / split / cat / f"{name}.pkl").shape) == (5, 1, 96, 64)
            n += 1
    elif fmt == "avsbench-ms3":
        base = root / "Multi-sources"
        with open(base / "ms3_meta_data.csv") as fh:
            rows = list(csv.reader(fh))[1:]
        for r in rows:
            name, split = r[0], r[1]
            for k in range(1, 6):
                Image.open(base / "ms3_data" / "visual_frames" / name / f"{name}.mp4_{k}.png").convert("RGB")
                Image.open(base / "ms3_data" / "gt_masks" / split / name / f"{name}_{k}.png").convert("1")
            assert tuple(_torch_pkl(base / "ms3_data" / "audio_log_mel" / split / f"{name}.pkl").shape) == (5, 1, 96, 64)
            n += 1
    elif fmt == "avss":
        with open(root / "metadata.csv") as fh:
            rows = list(csv.DictReader(fh))
        classes = json.loads((root / "label2idx.json").read_text())
        assert list(classes)[0] == "background" and list(classes.values())[0] == 1
        for r in rows:
            d = root / r["label"] / r["uid"]
            n_frames = 10 if r["label"] == "v2" else 5
            for i in range(n_frames):
                Image.open(d / "frames" / f"{i}.jpg").convert("RGB")
            for i in ([0] if (r["label"] == "v1s" and r["split"] == "train") else range(n_frames)):
                sem = np.asarray(Image.open(d / "labels_semantic" / f"{i}.png"))
                assert sem.max() < len(classes)
                Image.open(d / "labels_rgb" / f"{i}.png").convert("RGB")
            assert (d / "audio.wav").is_file()
            n += 1
    else:
        with open(root / "metadata.csv") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            vid = r["uid"].rsplit("_", 2)[0] if r["uid"].startswith("null") else r["vid"]
            for i in range(10):
                Image.open(root / "media" / vid / "frames" / f"{i}.jpg").convert("RGB")
                Image.open(root / "gt_mask" / vid / f"fid_{r['fid']}" / f"0000{i}.png").convert("L")
            assert (root / "media" / vid / "audio.wav").is_file()
            n += 1
    return n


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_export_passes_validate_and_official_loaders(exports, fmt):
    d = exports[fmt]
    rep = validate_release(d / "release", fmt)
    assert rep.ok, rep.problems[:5]
    assert _official_loader_reads(d / "release", fmt) == rep.items > 0
    card = (d / "release" / "DATASET_CARD.md").read_text()
    assert "--include-unreviewed" in card and "motion" in card and "http://127.0.0.1" in card
    sums = (d / "release" / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == sum(1 for p in (d / "release").rglob("*") if p.is_file()) - 1
    r = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=d / "release", capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-500:]
    # the gold release of the same world validates, and scores the maximum against itself
    assert validate_release(d / "world" / "gold", fmt).ok
    r = cli_here("evaluate", "--format", fmt, "--gt", d / "world" / "gold", "--pred", d / "world" / "gold", "--json",
                check=True)
    res = json.loads(r.stdout)
    if fmt == "ref-avs":
        for s in res["splits"]:
            if "J" in res[s]:
                assert res[s]["J"] == pytest.approx(1.0) and res[s]["F"] == pytest.approx(1.0)
            else:
                assert res[s]["S"] == 0.0
    elif fmt == "avss":
        assert res["miou_present_classes"] == pytest.approx(1.0)
        assert res["miou"] == pytest.approx(res["classes_present"] / res["classes"])
    else:
        assert res["miou"] == pytest.approx(1.0) and res["fscore"] == 1.0 and res["fscore_batch_free"] == 1.0


def test_export_refuses_existing_out_and_needs_reviews(exports, tmp_path):
    d = exports["avsbench-ms3"]
    r = cli_here("export", d / "ws", d / "release", "--format", "avsbench-ms3", "-q")
    assert r.returncode == 2 and "--force" in r.stderr
    r = cli_here("export", d / "ws", tmp_path / "x", "--format", "avsbench-ms3", "-q")  # no reviews, no flag
    assert r.returncode == 2 and "--include-unreviewed" in r.stderr and not (tmp_path / "x").exists()
    r = cli_here("export", d / "ws", tmp_path / "t", "--split", "test", "--include-unreviewed", "-q", check=True)
    rows = list(csv.reader(open(tmp_path / "t" / "Multi-sources" / "ms3_meta_data.csv")))[1:]
    assert rows and {r[1] for r in rows} == {"test"}


def test_evaluate_gold_against_altered_copy_and_export(exports, tmp_path):
    """An export's splits are its own (collect does not keep the world's), so gold is scored against a copy
    of gold with one mask altered, checked by hand; the export itself is refused for what is missing.
    Once `collect --world WORLD` keeps the world's clip ids and splits, score the export against gold."""
    d = exports["avsbench-s4"]
    gold = d / "world" / "gold"
    pred = _release_copy(gold, tmp_path / "pred")
    rel = read_release(gold, "avsbench-s4")
    masks = [p for it in rel.items if it.split == "train" for p in it.masks.values()]
    gts = [np.asarray(Image.open(p)) > 0 for p in masks]
    k = next(i for i, g in enumerate(gts) if g.any())
    g = gts[k]
    wrong = g.copy()
    ys, xs = np.nonzero(g)
    wrong[ys[: len(ys) // 2], xs[: len(xs) // 2]] = False  # drop half of the object's pixels
    wrong[:4, :4] = True  # and add a 16-pixel false positive in a corner the object does not touch
    assert not g[:4, :4].any()
    Image.fromarray(wrong.astype(np.uint8) * 255).save(pred / masks[k].relative_to(gold))
    r = cli_here("evaluate", "--format", "avsbench-s4", "--gt", gold, "--pred", pred, "--split", "train", "--json",
                check=True)
    res = json.loads(r.stdout)
    assert {"miou", "fscore", "fscore_batch_free", "frames"} <= set(res)
    inter = (wrong & g).sum()
    iou = inter / (wrong | g).sum()
    assert res["frames"] == len(masks)
    assert res["miou"] == pytest.approx((len(masks) - 1 + iou) / len(masks))
    p, rc = inter / wrong.sum(), inter / g.sum()
    f = 1.3 * p * rc / (0.3 * p + rc)
    n_full = sum(1 for x in gts if x.any())
    assert res["fscore_batch_free"] == pytest.approx((n_full - 1 + f) / n_full)
    # the export's splits differ from gold's: its masks are not at gold's paths, and that is an error, not a score
    r = cli_here("evaluate", "--format", "avsbench-s4", "--gt", gold, "--pred", d / "release", "--split", "train")
    assert r.returncode == 2 and "predicted masks missing" in r.stderr
    r = cli_here("evaluate", "--format", "avsbench-s4", "--gt", gold, "--pred", d / "ws")
    assert r.returncode == 2 and "missing" in r.stderr


def test_metrics_hand_computed():
    gt = np.zeros((2, 4, 4), bool)
    gt[1, :2, :2] = True  # frame 1: 4 pixels
    pred = np.zeros((2, 4, 4))
    pred[0, :2, :] = 1.0  # frame 0: empty GT, half the pixels predicted -> IoU 0.5 (pixels left empty)
    pred[1, :2, :3] = 1.0  # frame 1: 4 of 6 predicted pixels right -> IoU 4/6
    assert metrics.frame_iou(pred > 0.5, gt) == pytest.approx([0.5, 4 / 6])
    assert metrics.mask_iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4), bool)) == 1.0  # empty and empty
    assert metrics.mask_iou(np.zeros((1, 4, 4)), gt[1:]) == 0.0  # empty prediction of an object
    # F: the empty-GT frame is skipped; frame 1 has P = 4/6, R = 1
    p, r = 4 / 6, 1.0
    assert metrics.fscore_batch_free(pred, gt) == pytest.approx(1.3 * p * r / (0.3 * p + r))
    # batch dependence: two batches of one frame vs one batch of both
    gt2 = np.zeros((2, 4, 4), bool)
    gt2[:, :2, :2] = True
    pr2 = np.zeros((2, 4, 4))
    pr2[0, :2, :2], pr2[0, 2:, :] = 0.9, 0.5  # frame 0 is perfect for thresholds in (0.5, 0.9]
    pr2[1, :2, :2], pr2[1, 2:, :] = 0.2, 0.1  # frame 1 only for thresholds in (0.1, 0.2]
    assert metrics.fscore_official(pr2, gt2, batch_size=1) == pytest.approx(1.0)
    p0 = 4 / 12  # one batch: at (0.1, 0.2] frame 0 also predicts its 8 background pixels
    assert metrics.fscore_official(pr2, gt2, batch_size=2) == pytest.approx((1.3 * p0 / (0.3 * p0 + 1) + 1) / 2)
    assert metrics.fscore_batch_free(pr2, gt2) == metrics.fscore_official(pr2, gt2, batch_size=2)
    # AVSS: 3 classes, class 2 absent from GT and prediction -> counts 0 in the mean
    g = np.array([[[0, 0, 1, 1]]])
    pr = np.array([[[0, 0, 1, 0]]])
    res = metrics.avss_scores(pr, g, n_classes=3)
    assert res["per_class_iou"] == pytest.approx([2 / 3, 1 / 2, 0.0], abs=1e-6)
    assert res["miou"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3, abs=1e-6)
    # Ref-AVS null: S = sqrt(foreground fraction)
    assert metrics.null_s(np.full((4, 10, 10), 0.9)) == pytest.approx(1.0)
    assert metrics.null_s(np.zeros((4, 10, 10))) == 0.0


def _release_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_validate_catches_planted_faults(exports, tmp_path):
    fmt = "avsbench-ms3"
    rel = _release_copy(exports[fmt] / "release", tmp_path / "r")
    base = rel / "Multi-sources"
    rows = list(csv.reader(open(base / "ms3_meta_data.csv")))
    name, split = rows[1][0], rows[1][1]
    name2 = rows[2][0]
    (base / "ms3_data" / "visual_frames" / name / f"{name}.mp4_3.png").unlink()  # missing frame
    Image.new("L", (100, 100)).save(base / "ms3_data" / "gt_masks" / split / name / f"{name}_2.png")  # wrong size
    three = np.zeros((224, 224), np.uint8)
    three[:10] = 128
    three[10:20] = 255
    Image.fromarray(three).save(base / "ms3_data" / "gt_masks" / rows[2][1] / name2 / f"{name2}_1.png")  # 3 values
    rows.append([name2, "test" if rows[2][1] != "test" else "train"])  # a video in two splits
    rows.append(["ghost_0", "train"])  # a row without files
    with open(base / "ms3_meta_data.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    r = cli_here("validate", rel, "--format", fmt, "-q")
    assert r.returncode == 1
    out = r.stdout
    assert f"{name}.mp4_3.png: missing" in out
    assert "mask size 100x100" in out
    assert "binary mask has values [0, 128, 255]" in out
    assert f"video {name2} is in two splits" in out
    assert "ghost_0.mp4_1.png: missing" in out
    assert "problems" in out.splitlines()[-1]


def test_stats_from_real_metadata_without_media(tmp_path):
    for fmt, name in (("avss", "avss_metadata.csv"), ("ref-avs", "ref-avs_metadata.csv")):
        root = tmp_path / fmt
        root.mkdir()
        shutil.copy(REAL_METADATA / name, root / "metadata.csv")
        r = cli_here("stats", root, "--format", fmt, "--out", root / "report.html", "--json", "-q", check=True)
        st = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
        with open(REAL_METADATA / name, newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert st["rows"] == len(rows) and st["media_missing_rows"] == len(rows)
        assert "media absent" in r.stdout
        page = (root / "report.html").read_text()
        assert "Media absent for" in page and "data:image/png;base64," in page
        if fmt == "avss":  # the official counts (formats.md)
            assert st["videos_per_split"] == {"test": 1554, "train": 8498, "val": 1304}
            assert sum(st["per_category_split"]["guitar"].values()) == sum("guitar" in r["a_obj"].split("_") for r in rows)
        else:
            words = [len(r["exp"].split()) for r in rows]
            assert st["expression_words"]["max"] == max(words) and st["null_expressions"] > 0
            assert st["videos_per_split"]["test_u"] > 0
        # validate on a metadata-only release reports missing media per file, and exits 1
        r = cli_here("validate", root, "--format", fmt, "--max-print", "3", "-q")
        assert r.returncode == 1 and "missing files)" in r.stdout.splitlines()[-1]


def test_splits_are_stable_grouped_and_duplicate_aware(tmp_path):
    world = tmp_path / "world"
    synthesize(world, SynthParams(clips=7, seconds=10, width=96, height=64, seed=8))
    src = tmp_path / "videos"
    src.mkdir()
    vids = sorted((world / "videos").glob("*.mp4"))
    for v in vids[:6]:
        shutil.copy(v, src / v.name)
    ws, _ = init_workspace(tmp_path / "ws", "avsbench-ms3")
    collect(ws, CollectOptions(local=src, any_license=True, clips_per_video=2))
    sample(ws, SampleOptions(jobs=2))
    first = assign_splits(ws, seed=3)
    assert sum(first.values()) == 12 and set(first) == {"train", "val", "test"}
    by_clip = {c.clip_id: c.split for c in ws.catalog.clips()}
    for s in ws.catalog.sources():  # clips of one source video share a split
        assert len({by_clip[c] for c in ws.catalog.clip_ids_for_source(s.source_id)}) == 1
    # the same seed on another workspace of the same files gives the same splits
    ws2, _ = init_workspace(tmp_path / "ws2", "avsbench-ms3")
    collect(ws2, CollectOptions(local=src, any_license=True, clips_per_video=2))
    sample(ws2, SampleOptions(jobs=2))
    assign_splits(ws2, seed=3)
    assert {c.clip_id: c.split for c in ws2.catalog.clips()} == by_clip
    # a re-upload of the first video (re-encoded at another quality) and a new video arrive later
    orig = vids[0]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(orig), "-c:v", "libx264", "-crf", "30",
                    "-c:a", "aac", "-b:a", "96k", str(src / "reupload.mp4")], check=True)
    shutil.copy(vids[6], src / vids[6].name)
    collect(ws, CollectOptions(local=src, any_license=True, clips_per_video=2))
    sample(ws, SampleOptions(jobs=2))
    assign_splits(ws, seed=3)
    after = {c.clip_id: c.split for c in ws.catalog.clips()}
    assert len(after) == 16
    assert all(after[c] == s for c, s in by_clip.items())  # nothing moved
    orig_split = {after[c] for c in after if c.startswith(orig.stem)}
    re_split = {after[c] for c in after if c.startswith("reupload")}
    assert len(orig_split) == 1 and re_split == orig_split
    assert all(after.values())
    # and that is the duplicate detector's doing, not chance: exactly the re-upload pairs are near-duplicates
    from avsbench_tools.splits import _fingerprints, near_duplicates

    pairs = near_duplicates(_fingerprints(ws, list(after)))
    assert sorted(tuple(sorted(x.split("-")[0] for x in p)) for p in pairs) == [("reupload", orig.stem)] * 2


def test_refavs_unseen_categories_go_to_test_u(tmp_path, world_10s):
    ws, _ = init_workspace(tmp_path / "ws", str(world_10s / "recipe.toml"))
    collect(ws, CollectOptions(local=world_10s / "videos", any_license=True))
    sample(ws, SampleOptions(jobs=2))
    clips = ws.catalog.clips()
    with ws.catalog.tx() as db:  # categories as collect --category would have set them
        for i, c in enumerate(clips):
            db.execute("UPDATE clips SET category=? WHERE clip_id=?", ("helicopter" if i == 0 else "guitar", c.clip_id))
    counts = assign_splits(ws, seed=1, unseen=["helicopter"])
    splits = {c.clip_id: c.split for c in ws.catalog.clips()}
    assert splits[clips[0].clip_id] == "test_u" and counts["test_u"] == 1
    assert all(s in ("train", "val", "test_s") for cid, s in splits.items() if cid != clips[0].clip_id)
