"""stats: the papers' dataset tables for a release, as one self-contained HTML page with PNG plots.

Tables: videos per category and split, annotated frames per split, objects per video, sounding
objects per second, mask area distribution, expression lengths (Ref-AVS). Counts that need only
the metadata are always reported; those that need media (mask areas) say how many rows lack it.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from avsbench_tools.fsutil import atomic_write_bytes, atomic_write_text
from avsbench_tools.release import read_release

Progress = Callable[[str, int, int, str], None]
MAX_AREA_SAMPLES = 4000  # mask files read for the area histogram (evenly spread over the release)


def compute_stats(root: Path, fmt: str, progress: Progress | None = None) -> dict:
    progress = progress or (lambda *a: None)
    rel = read_release(root, fmt)
    items = rel.items
    st: dict = {"format": fmt, "root": str(rel.root), "rows": len(items)}
    videos: dict[str, set] = defaultdict(set)  # split -> video keys
    per_cat_split: dict[str, Counter] = defaultdict(Counter)
    annotated = Counter()
    media_missing = 0
    objects_per_video: dict[str, set] = defaultdict(set)
    sounding_per_second: Counter = Counter()
    expr_len: list[int] = []
    for it in items:
        vkey = it.row.get("vid", it.name) if fmt == "ref-avs" else it.name
        videos[it.split].add(vkey)
        annotated[it.split] += len(it.masks)
        if not it.frames[0].exists():
            media_missing += 1
        if fmt == "avsbench-s4":
            per_cat_split[it.category or "?"][it.split] += 1
        elif fmt == "avss":
            objs = [o for o in it.row.get("a_obj", "").split("_") if o]
            for o in set(objs):
                per_cat_split[o][it.split] += 1
            objects_per_video[it.name] = set(objs)
            sounding_per_second[len(set(objs))] += 1
        elif fmt == "ref-avs" and not it.null:
            cat = it.name[len(it.row["vid"]) + 1:].rsplit("_", 1)[0]
            per_cat_split[cat][it.split] += 1
            objects_per_video[it.row["vid"]].add(it.row.get("fid"))
        if fmt == "ref-avs":
            expr_len.append(len(str(it.row.get("exp", "")).split()))
    st["videos_per_split"] = {s: len(v) for s, v in sorted(videos.items())}
    st["videos"] = len(set().union(*videos.values())) if videos else 0
    st["rows_per_split"] = dict(sorted(Counter(it.split for it in items).items()))
    st["annotated_frames_per_split"] = dict(sorted(annotated.items()))
    st["per_category_split"] = {c: dict(v) for c, v in sorted(per_cat_split.items())}
    st["media_missing_rows"] = media_missing
    if objects_per_video:
        st["objects_per_video"] = dict(sorted(Counter(len(v) for v in objects_per_video.values()).items()))
    if fmt == "avss":
        st["sounding_categories_per_video"] = dict(sorted(sounding_per_second.items()))
    if expr_len:
        st["expression_words"] = {"mean": float(np.mean(expr_len)), "max": int(max(expr_len)),
                                  "min": int(min(expr_len)), "histogram": dict(sorted(Counter(expr_len).items()))}
        st["null_expressions"] = sum(1 for it in items if it.null)
    # media-dependent: mask areas (fraction of the frame) and sounding objects per annotated second
    paths = [(it, p) for it in items for p in it.masks.values()]
    step = max(1, len(paths) // MAX_AREA_SAMPLES)
    areas, per_second, absent = [], Counter(), 0
    sample = paths[::step]
    import cv2
    from PIL import Image

    for i, (_, p) in enumerate(sample):
        if not p.exists():
            absent += 1
            if i == len(sample) - 1:
                progress("mask areas", i + 1, len(sample), "")
            continue
        m = np.asarray(Image.open(p))
        fg = m > 0
        areas.append(float(fg.mean()))
        if fmt == "avss":
            per_second[len(set(np.unique(m).tolist()) - {0})] += 1
        elif fmt in ("avsbench-s4", "avsbench-ms3"):
            n, _ = cv2.connectedComponents(fg.astype(np.uint8))
            per_second[n - 1] += 1
        if i % 50 == 0 or i == len(sample) - 1:
            progress("mask areas", i + 1, len(sample), p.name)
    st["mask_files_read"] = len(sample) - absent
    st["mask_files_absent"] = absent
    if areas:
        a = np.asarray(areas)
        st["mask_area"] = {"mean": float(a.mean()), "median": float(np.median(a)),
                           "empty_fraction": float((a == 0).mean()),
                           "histogram": np.histogram(a, bins=10, range=(0, 1))[0].tolist()}
        st["_areas"] = a
    if per_second:
        key = "sounding_classes_per_frame" if fmt == "avss" else "mask_regions_per_frame"
        st[key] = dict(sorted(per_second.items()))
    return st


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    return buf.getvalue()


def _table(title: str, header: list[str], rows: list[list]) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><table><tr>{h}</tr>{body}</table>"


def write_report(st: dict, out: Path) -> Path:
    """out: the HTML path; PNGs are embedded and also written beside it (<stem>_plots/)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".html":
        out = out / "stats.html"
    plots: list[tuple[str, bytes]] = []
    pcs = st["per_category_split"]
    if pcs:
        splits = sorted({s for v in pcs.values() for s in v})
        cats = sorted(pcs, key=lambda c: -sum(pcs[c].values()))[:80]
        fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(cats)), 3.6))
        bottom = np.zeros(len(cats))
        for s in splits:
            vals = np.array([pcs[c].get(s, 0) for c in cats])
            ax.bar(range(len(cats)), vals, bottom=bottom, label=s)
            bottom += vals
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats, rotation=90, fontsize=7)
        ax.set_ylabel("rows")
        ax.legend(fontsize=7)
        ax.set_title("per category and split")
        plots.append(("categories.png", _png(fig)))
        plt.close(fig)
    if "_areas" in st:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(st["_areas"], bins=40, range=(0, 1), color="#4c72b0")
        ax.set_xlabel("mask area / frame area")
        ax.set_ylabel("masks")
        ax.set_title("mask area distribution")
        plots.append(("mask_area.png", _png(fig)))
        plt.close(fig)
    if "expression_words" in st:
        hist = st["expression_words"]["histogram"]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(list(hist), list(hist.values()), color="#55a868")
        ax.set_xlabel("words per expression")
        ax.set_ylabel("expressions")
        plots.append(("expression_length.png", _png(fig)))
        plt.close(fig)
    parts = [f"<h1>{html.escape(st['format'])} release statistics</h1>",
             f"<p>{html.escape(st['root'])}: {st['rows']} metadata rows, {st['videos']} videos.</p>"]
    if st["media_missing_rows"]:
        parts.append(f"<p class='warn'>Media absent for {st['media_missing_rows']} of {st['rows']} rows: "
                     "counts below come from the metadata; mask statistics cover only the files present "
                     f"({st['mask_files_read']} read, {st['mask_files_absent']} absent).</p>")
    parts.append(_table("Videos and rows per split", ["split", "videos", "rows", "annotated frames"],
                        [[s, st["videos_per_split"].get(s, 0), st["rows_per_split"].get(s, 0),
                          st["annotated_frames_per_split"].get(s, 0)] for s in st["rows_per_split"]]))
    if pcs:
        splits = sorted({s for v in pcs.values() for s in v})
        parts.append(_table("Per category", ["category", *splits, "total"],
                            [[c, *[pcs[c].get(s, 0) for s in splits], sum(pcs[c].values())] for c in sorted(pcs)]))
    for key, title in (("objects_per_video", "Objects per video"),
                       ("sounding_categories_per_video", "Sounding categories per video"),
                       ("sounding_classes_per_frame", "Sounding classes per annotated frame"),
                       ("mask_regions_per_frame", "Sounding regions per annotated frame")):
        if key in st:
            parts.append(_table(title, ["count", "videos" if "video" in key else "frames"],
                                [[k, v] for k, v in st[key].items()]))
    if "mask_area" in st:
        m = st["mask_area"]
        parts.append(_table("Mask area (fraction of the frame)", ["mean", "median", "empty masks"],
                            [[f"{m['mean']:.3f}", f"{m['median']:.3f}", f"{m['empty_fraction']:.1%}"]]))
    if "expression_words" in st:
        e = st["expression_words"]
        parts.append(_table("Expressions", ["mean words", "min", "max", "null expressions"],
                            [[f"{e['mean']:.2f}", e["min"], e["max"], st.get("null_expressions", 0)]]))
    plot_dir = out.with_name(out.stem + "_plots")
    for name, data in plots:
        b64 = base64.b64encode(data).decode()
        parts.append(f"<h2>{html.escape(name[:-4].replace('_', ' '))}</h2><img src='data:image/png;base64,{b64}'>")
        atomic_write_bytes(plot_dir / name, data)
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}.warn{color:#a60}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(st['format'])} stats</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write_text(out, page)
    return out
