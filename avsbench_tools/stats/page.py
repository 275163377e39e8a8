"""The stats report: one self-contained HTML page with PNG plots, the release beside the official datasets.

The page opens with the same warnings as `validate` (most masks empty, one category, identical
expressions, silent clips, empty splits), then puts the release beside the official datasets'
published figures (`published` in each format's entry of avsbench_tools.formats), then the tables:
videos per category and split, annotated frames per split, objects per video, sounding objects per
annotated frame, mask areas, expression lengths (Ref-AVS).

The report is recognised as ours by `<meta name="generator" content="avs-tools stats ...">`; the
plots beside it (`<stem>_plots/*.png`) by their PNG `Software` text. `--out` replaces only those.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_write_bytes, atomic_write_text, check_output_file

GENERATOR = "avs-tools stats"
PLOT_NAMES = ("categories.png", "objects_per_video.png", "sounding_per_frame.png", "mask_area.png",
              "expression_length.png")
# Published figures of the official datasets (recorded in the design note formats.md).
PUBLISHED = {f.name: {"source": f.title, **f.published} for f in formats.FORMATS.values()}
PLOT_TITLES = {"categories.png": "Per category and split", "objects_per_video.png": "Objects per video",
               "sounding_per_frame.png": "Objects per annotated frame", "mask_area.png": "Mask area",
               "expression_length.png": "Expression length"}


def is_stats_report(path: Path) -> bool:
    """Whether the file at `path` is an HTML report avs-tools stats wrote (its generator meta tag)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}'.encode() in head


def _is_our_png(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.format == "PNG" and str(im.info.get("Software", "")).startswith(GENERATOR)
    except (OSError, ValueError, SyntaxError):
        return False


def plot_dir(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + "_plots")


def check_report_paths(out: Path) -> Path:
    """Refuse, in one line, an --out the report must not be written to (before any work is done)."""
    out = Path(out)
    check_output_file(out, is_ours=out.is_file() and is_stats_report(out), what="--out")
    d = plot_dir(out)
    if d.exists() or d.is_symlink():
        if d.is_symlink() or not d.is_dir():
            raise UsageError(f"--out {out}: the plots go to {d}, which exists and is not a folder; name another file")
        for name in PLOT_NAMES:
            p = d / name
            if (p.exists() or p.is_symlink()) and (p.is_symlink() or not p.is_file() or not _is_our_png(p)):
                raise UsageError(f"--out {out}: {p} exists and was not written by avs-tools; name another file")
    return out


def _png(fig) -> bytes:
    from avsbench_tools import __version__

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100,
                metadata={"Software": f"{GENERATOR} {__version__}"})
    return buf.getvalue()


def _table(title: str, header: list[str], rows: list[list], note: str = "") -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    foot = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"<h2>{html.escape(title)}</h2><table><tr>{h}</tr>{body}</table>{foot}"


def _split_order(splits) -> list[str]:
    order = ("train", "val", "test", "test_s", "test_u", "test_n")
    return sorted(splits, key=lambda s: (order.index(s) if s in order else len(order), s))


def _fmt(v) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def published_rows(st: dict) -> list[list]:
    """[quantity, this release, published] for the comparison table."""
    pub = PUBLISHED[st["format"]]
    rows = [["videos", _fmt(st["videos"]), _fmt(pub["videos"])]]
    for s in _split_order({*pub.get("splits", {}), *st["videos_per_split"]}):
        rows.append([f"videos in {s}", _fmt(st["videos_per_split"].get(s, 0)),
                     _fmt(pub["splits"][s]) if s in pub.get("splits", {}) else "not published"])
    if "categories" in pub:
        mine = st.get("categories")
        rows.append(["categories", _fmt(mine) if mine is not None else "not in the metadata",
                     f"{pub['categories']}" + (f" ({pub['categories_note']})" if "categories_note" in pub else "")])
    if "expressions" in pub:
        rows.append(["expressions", _fmt(st["rows"] - st.get("null_expressions", 0)) + " (+"
                     + _fmt(st.get("null_expressions", 0)) + " null)", _fmt(pub["expressions"])])
        e = st.get("expression_words")
        if e:
            rows.append(["words per expression, mean", f"{e['mean']:.1f}", pub["words_mean"]])
            rows.append(["words per expression, max", str(e["max"]), pub["words_max"]])
    return rows


def _plots(st: dict) -> list[tuple[str, bytes]]:
    import matplotlib.pyplot as plt

    out = []
    for name, fig in make_figures(st):
        out.append((name, _png(fig)))
        plt.close(fig)
    return out


def make_figures(st: dict) -> list[tuple[str, object]]:
    """The report's matplotlib figures, by file name (the caller closes them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plots: list[tuple[str, object]] = []
    pcs = st["per_category_split"]
    if pcs:
        splits = _split_order({s for v in pcs.values() for s in v})
        cats = sorted(pcs, key=lambda c: (-sum(pcs[c].values()), c))[:80]
        fig, ax = plt.subplots(figsize=(7, 1.2 + 0.24 * len(cats)))
        left = np.zeros(len(cats))
        y = np.arange(len(cats))
        for s in splits:
            vals = np.array([pcs[c].get(s, 0) for c in cats])
            ax.barh(y, vals, left=left, label=s)
            left += vals
        ax.set_yticks(y)
        ax.set_yticklabels(cats, fontsize=8)
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("expressions" if formats.get(st["format"]).per_object else "videos")
        ax.legend(fontsize=8, loc="lower right")
        more = f" (the {len(cats)} largest of {len(pcs)})" if len(pcs) > len(cats) else ""
        ax.set_title(f"per category and split{more}")
        plots.append(("categories.png", fig))

    def counts(name: str, data: dict, xlabel: str, ylabel: str, title: str) -> None:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar([int(k) for k in data], list(data.values()), color="#4c72b0")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        plots.append((name, fig))

    if "objects_per_video" in st:
        counts("objects_per_video.png", st["objects_per_video"], st["objects_per_video_label"], "videos",
               "objects per video")
    if "sounding_per_frame" in st:
        kind = formats.get(st["format"]).masks
        short = {"binary": "connected regions per mask", "semantic": "sounding classes per frame",
                 "per-object": "referred objects per frame"}[kind]
        counts("sounding_per_frame.png", st["sounding_per_frame"], short, "annotated frames",
               f"{short} ({st['mask_clips_read']} of {st['mask_clips_total']} clips)")
    if "_areas" in st:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(st["_areas"], bins=40, range=(0, 1), color="#4c72b0")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("mask area / frame area")
        ax.set_ylabel("masks")
        ax.set_title("mask area distribution", fontsize=10)
        plots.append(("mask_area.png", fig))
    if "expression_words" in st:
        counts("expression_length.png", st["expression_words"]["histogram"], "words per expression", "expressions",
               "expression length")
    return plots


def write_report(st: dict, out: Path) -> Path:
    """out: the HTML file. PNG plots are embedded and also written to <stem>_plots/ beside it.

    Only a report (and plots) this command wrote earlier is replaced; anything else is refused."""
    out = check_report_paths(out)
    plots = _plots(st)
    from avsbench_tools import __version__

    fmt = st["format"]
    parts = [f"<h1>{html.escape(fmt)} release statistics</h1>",
             f"<p>{html.escape(st['root'])}: {st['rows']:,} metadata rows, {st['videos']:,} videos.</p>"]
    warnings = st.get("warnings", [])
    if warnings:
        parts.append("<div class='warnings'><h2>Warnings</h2><ul>"
                     + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul></div>")
    else:
        parts.append("<p class='ok'>No warnings (the checks of avs-tools validate found nothing to flag).</p>")
    if st["media_missing_rows"]:
        parts.append(f"<p class='warn'>Media absent for {st['media_missing_rows']} of {st['rows']} rows: "
                     "counts below come from the metadata; mask statistics cover only the files present "
                     f"({st['mask_files_read']} read, {st['mask_files_absent']} absent).</p>")
    pub = PUBLISHED[fmt]
    parts.append(_table("This release beside the official dataset", ["", "this release", "published"],
                        published_rows(st),
                        note=f"Published: the figures of the official {pub['source']} as its authors published "
                             "them (recorded in the avs-tools design note formats.md); 'not published' where "
                             "that note has no figure."))
    parts.append(_table("Videos and rows per split", ["split", "videos", "rows", "annotated frames"],
                        [[s, st["videos_per_split"].get(s, 0), st["rows_per_split"].get(s, 0),
                          st["annotated_frames_per_split"].get(s, 0)] for s in _split_order(st["rows_per_split"])]))
    pcs = st["per_category_split"]
    if pcs:
        splits = _split_order({s for v in pcs.values() for s in v})
        what = {"semantic": "videos naming it in a_obj", "per-object": "expressions"}.get(formats.get(fmt).masks,
                                                                                          "videos")
        parts.append(_table("Per category", ["category", *splits, "total"],
                            [[c, *[pcs[c].get(s, 0) for s in splits], sum(pcs[c].values())] for c in sorted(pcs)],
                            note=f"Counts are {what}."))
    if "objects_per_video" in st:
        parts.append(_table("Objects per video", [st["objects_per_video_label"], "videos"],
                            [[k, v] for k, v in st["objects_per_video"].items()]))
    if "sounding_per_frame" in st:
        title = ("Objects per annotated frame" if formats.get(fmt).per_object
                 else "Sounding objects per annotated frame")
        parts.append(_table(title, ["count", "annotated frames"],
                            [[k, v] for k, v in st["sounding_per_frame"].items()],
                            note=f"Counted as {st['sounding_per_frame_label']}; read from "
                                 f"{st['mask_clips_read']} of {st['mask_clips_total']} clips."))
    if "mask_area" in st:
        m = st["mask_area"]
        parts.append(_table("Mask area (fraction of the frame)", ["masks read", "mean", "median", "empty masks"],
                            [[m["masks"], f"{m['mean']:.3f}", f"{m['median']:.3f}", f"{m['empty_fraction']:.1%}"]],
                            note=f"From {st['mask_clips_read']} of {st['mask_clips_total']} clips."))
    if "expression_words" in st:
        e = st["expression_words"]
        parts.append(_table("Expressions", ["mean words", "min", "max", "null expressions"],
                            [[f"{e['mean']:.2f}", e["min"], e["max"], st.get("null_expressions", 0)]]))
    d = plot_dir(out)
    for name, data in plots:
        b64 = base64.b64encode(data).decode()
        parts.append(f"<h2>{html.escape(PLOT_TITLES[name])}</h2><img src='data:image/png;base64,{b64}' "
                     f"alt='{html.escape(PLOT_TITLES[name])}'>")
        atomic_write_bytes(d / name, data)
    made = {n for n, _ in plots}
    for name in PLOT_NAMES:  # an earlier report's plot this one does not make would mislead: drop our own only
        p = d / name
        if name not in made and p.is_file() and _is_our_png(p):
            p.unlink()
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
             "td:first-child{text-align:left}.warn{color:#a60}.note{color:#555;font-size:90%}"
             ".warnings{border:2px solid #d80;background:#fff6e6;padding:0 1em;margin:1em 0}.ok{color:#262}")
    page = (f'<!doctype html><html><head><meta charset="utf-8">'
            f'<meta name="generator" content="{GENERATOR} {html.escape(__version__)}">'
            f"<title>{html.escape(fmt)} stats</title><style>{style}</style></head>"
            f"<body>{''.join(parts)}</body></html>")
    atomic_write_text(out, page)
    return out
