"""stats: the validate warnings at the top, the published figures beside the release, objects counted as
objects, readable plots, an --out that replaces only its own report, one-line path errors, umask modes."""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import stat
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbench_tools.release_reader import read_release
from avsbench_tools.stats import compute_stats, make_figures
from tests.helpers import REAL_METADATA, cli_here, run_cli


def _stats(root: Path, fmt: str, out: Path, *extra, **kw):
    run = run_cli if "preexec_fn" in kw else cli_here  # the umask test: a process of its own, with its umask
    return run("stats", root, "--format", fmt, "--out", out, *extra, **kw)


def test_report_opens_with_the_validate_warnings(gold_s4, tmp_path):
    rel = shutil.copytree(gold_s4, tmp_path / "r")
    for p in (rel / "Single-source" / "s4_data" / "gt_masks").rglob("*.png"):
        Image.fromarray(np.zeros((224, 224), np.uint8)).save(p)
    v = json.loads(cli_here("validate", rel, "--format", "avsbench-s4", "--json", "-q").stdout)
    assert len(v["warnings"]) >= 2
    out = tmp_path / "report.html"
    r = _stats(rel, "avsbench-s4", out, check=True)
    page = out.read_text()
    top = page.index("<h2>Warnings</h2>")
    assert top < page.index("<table")  # before every table
    for w in v["warnings"]:
        assert html.escape(w) in page[top:page.index("<table")]
        assert f"warning: {w}" in r.stdout.splitlines()
    assert r.stdout.splitlines()[-1].startswith("next: avs-tools evaluate --format avsbench-s4 --gt ")
    r = _stats(rel, "avsbench-s4", out, "--quiet", check=True)
    assert "next:" not in r.stdout


@pytest.mark.parametrize("fmt,name,figures", [
    ("avss", "avss_metadata.csv", ["11,356", "8,498", "1,304", "1,554", "70 (70 classes + background)"]),
    ("ref-avs", "ref-avs_metadata.csv", ["4,002", "20,261", "51 (48 sounding + 3 silent)", "about 8", "about 22"]),
])
def test_published_figures_beside_the_release(tmp_path, fmt, name, figures):
    root = tmp_path / fmt
    root.mkdir()
    shutil.copy(REAL_METADATA / name, root / "metadata.csv")
    _stats(root, fmt, tmp_path / "r.html", "-q", check=True)
    page = (tmp_path / "r.html").read_text()
    table = page[page.index("This release beside the official dataset"):]
    table = table[:table.index("</table>")]
    for f in figures:
        assert f"<td>{f}</td>" in table
    assert "published" in table
    st = compute_stats(root, fmt)
    assert f"<td>{st['videos']:,}</td>" in table


def test_s4_and_ms3_published_figures(gold_s4, world_ms3, tmp_path):
    _stats(gold_s4, "avsbench-s4", tmp_path / "s4.html", "-q", check=True)
    page = (tmp_path / "s4.html").read_text()
    for f in ("4,932", "3,452", "740", "23"):
        assert f"<td>{f}</td>" in page
    _stats(world_ms3 / "gold", "avsbench-ms3", tmp_path / "ms3.html", "-q", check=True)
    page = (tmp_path / "ms3.html").read_text()
    for f in ("424", "296", "64"):
        assert f"<td>{f}</td>" in page
    v = json.loads(cli_here("validate", world_ms3 / "gold", "--format", "avsbench-ms3", "--json", "-q").stdout)
    assert ("No warnings" in page) == (v["warnings"] == [])


def test_sounding_objects_are_objects(gold_avss, world_10s, gold_s4):
    # AVSS: distinct class indices per label map, by hand over every label map
    want = defaultdict(int)
    for it in read_release(gold_avss, "avss").items:
        for p in it.masks.values():
            want[len(set(np.unique(np.asarray(Image.open(p))).tolist()) - {0})] += 1
    st = compute_stats(gold_avss, "avss")
    assert st["sounding_per_frame"] == dict(sorted(want.items()))
    assert "distinct class indices" in st["sounding_per_frame_label"]
    # Ref-AVS: per video and second, the referred objects (fids) whose mask is non-empty
    rel = read_release(world_10s / "gold", "ref-avs")
    masks: dict[tuple[str, int], dict[str, Path]] = defaultdict(dict)
    for it in rel.items:
        if not it.null:
            for sec, p in it.masks.items():
                masks[(it.row["vid"], sec)][it.row["fid"]] = p
    want = defaultdict(int)
    for objs in masks.values():
        want[sum(1 for p in objs.values() if np.asarray(Image.open(p)).any())] += 1
    st = compute_stats(world_10s / "gold", "ref-avs")
    assert st["sounding_per_frame"] == dict(sorted(want.items()))
    assert max(want) >= 2  # the world has seconds with several visible objects
    # S4: binary masks can only give connected regions, and the label says so
    st = compute_stats(gold_s4, "avsbench-s4")
    assert st["sounding_per_frame_label"].startswith("connected regions per annotated mask")


def test_plots_are_readable(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = tmp_path / "avss"
    root.mkdir()
    shutil.copy(REAL_METADATA / "avss_metadata.csv", root / "metadata.csv")
    st = compute_stats(root, "avss")
    st["sounding_per_frame"] = {1: 3, 2: 1}  # two counts, as a small release gives: no 0.5 ticks
    st["sounding_per_frame_label"] = "x"
    st["mask_clips_read"] = st["mask_clips_total"] = 1
    figs = dict(make_figures(st))
    try:
        fig = figs["categories.png"]
        ax = fig.axes[0]
        fig.canvas.draw()
        labels = [t for t in ax.get_yticklabels() if t.get_text()]
        assert len(labels) == min(80, len(st["per_category_split"])) > 60
        boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.y0)
        for a, b in zip(boxes, boxes[1:], strict=False):
            assert a.y1 <= b.y0 + 0.5, "category labels overlap"
        assert all(t.get_rotation() == 0 for t in labels)  # horizontal bars: labels read left to right
        for name in ("objects_per_video.png", "sounding_per_frame.png"):
            ax = figs[name].axes[0]
            for locs in (ax.get_xticks(), ax.get_yticks()):
                assert np.allclose(locs, np.round(locs)), f"{name}: fractional ticks {locs}"
    finally:
        for f in figs.values():
            plt.close(f)


def test_out_replaces_only_its_own_report(gold_s4, world_10s, tmp_path):
    out = tmp_path / "report.html"
    _stats(world_10s / "gold", "ref-avs", out, "-q", check=True)
    plots = tmp_path / "report_plots"
    assert (plots / "expression_length.png").is_file()
    (plots / "notes.txt").write_text("mine")
    _stats(gold_s4, "avsbench-s4", out, "-q", check=True)  # our own report and plots: replaced
    assert "avsbench-s4 release statistics" in out.read_text()
    assert not (plots / "expression_length.png").exists()  # our stale plot is gone, the user's note stays
    assert (plots / "notes.txt").read_text() == "mine"
    foreign = tmp_path / "page.html"
    foreign.write_text("<html>my page, mentions avs-tools stats</html>")
    r = _stats(gold_s4, "avsbench-s4", foreign, "-q")
    assert r.returncode == 2 and "not written by avs-tools" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert foreign.read_text() == "<html>my page, mentions avs-tools stats</html>"
    Image.new("RGB", (8, 8)).save(plots / "mask_area.png")  # a user's picture where a plot would go
    before = (plots / "mask_area.png").read_bytes()
    r = _stats(gold_s4, "avsbench-s4", out, "-q")
    assert r.returncode == 2 and "mask_area.png exists and was not written by avs-tools" in r.stderr
    assert (plots / "mask_area.png").read_bytes() == before


def test_path_problems_are_one_line(gold_s4, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    cases = [(".", "name a file"), (tmp_path, "is a folder"), (tmp_path / "no" / "r.html", "does not exist"),
             ("/proc/x.html", "cannot write in /proc"), (f / "r.html", "is not a folder")]
    for out, why in cases:
        r = _stats(gold_s4, "avsbench-s4", out, "-q", cwd=tmp_path)
        assert r.returncode == 2, (out, r.stdout)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0] and "Traceback" not in r.stderr, (out, r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    r = _stats(tmp_path / "nope", "avsbench-s4", tmp_path / "r.html", "-q")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no such folder" in r.stderr


@pytest.mark.parametrize("umask,fmode,dmode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_report_follows_the_umask(gold_s4, tmp_path, umask, fmode, dmode):
    out = tmp_path / "r.html"
    _stats(gold_s4, "avsbench-s4", out, "-q", check=True, preexec_fn=lambda: os.umask(umask))
    assert stat.S_IMODE(out.stat().st_mode) == fmode
    plots = list((tmp_path / "r_plots").iterdir())
    assert plots and all(stat.S_IMODE(p.stat().st_mode) == fmode for p in plots)
    assert stat.S_IMODE((tmp_path / "r_plots").stat().st_mode) == dmode


def test_json_has_the_warnings(world_10s, tmp_path):
    r = _stats(world_10s / "gold", "ref-avs", tmp_path / "r.html", "--json", "-q", check=True)
    st = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    v = json.loads(cli_here("validate", world_10s / "gold", "--format", "ref-avs", "--json", "-q").stdout)
    assert st["warnings"] == v["warnings"]  # every clip read: the same findings as validate
    assert st["mask_clips_read"] == st["mask_clips_total"]
    with open(world_10s / "gold" / "metadata.csv", newline="") as fh:
        assert st["rows"] == len(list(csv.DictReader(fh)))
