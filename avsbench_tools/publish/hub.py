"""README.md of a published release: the Hugging Face Hub's YAML header, then the text people read."""

from __future__ import annotations

import json

from avsbench_tools import formats

LICENCE = "cc-by-nc-4.0"  # the annotations' licence (the official AVSBench / Ref-AVS terms); clips keep theirs


def _size_category(n: int) -> str:
    for limit, name in ((1000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def header(fmt: str, splits: list[str], frames: int, pretty: str) -> str:
    """The YAML front matter: licence, task categories, one config per table with a data_files entry per split."""
    lines = ["---", f"license: {LICENCE}", "task_categories:", "- image-segmentation", "- audio-classification",
             "tags:", "- audio-visual", "- audio-visual-segmentation", f"- {fmt}", "- croissant",
             f"pretty_name: {json.dumps(pretty)}", "size_categories:", f"- {_size_category(frames)}", "configs:"]
    for table in ("frames", "clips"):
        lines.append(f"- config_name: {table}")
        if table == "frames":
            lines.append("  default: true")
        lines.append("  data_files:")
        for s in splits:
            lines += [f"  - split: {s}", f"    path: data/{table}/{s}-*.parquet"]
    lines.append("---")
    return "\n".join(lines) + "\n"


def readme(rel, res, card: str, info: dict) -> str:
    """README.md: header + what the Parquet form holds, how to load it, how to get the official tree back."""
    f = formats.get(rel.fmt)
    splits = sorted(res.splits)
    pretty = f"{rel.fmt} release (avs-tools)"
    known = sum(1 for ci in info.values() for p in ci.frames.values() if p.mask_source)
    reviewed = sum(1 for ci in info.values() for p in ci.frames.values() if p.mask_source == "review")
    text = [
        header(rel.fmt, splits, res.frames, pretty), f"# {pretty}", "",
        f"An audio-visual segmentation release in the {f.title} layout, published by `avs-tools publish` as "
        "Parquet: the Hub's viewer shows it, `datasets` loads it, and `avs-tools unpublish` writes the official "
        "folder tree back byte for byte (the loaders of the paper need that tree).", "",
        "| split | clips |", "|---|---|", *[f"| {s} | {res.splits[s]} |" for s in splits], "",
        f"{res.clips} clips, {res.frames} frame rows, {res.other_files} other files of the tree.", "",
        "## Tables", "",
        "- `frames` (default config): one row per sampled frame"
        + (" and referred object" if f.per_object else "")
        + ": `frame` and `mask` (images; `mask` is empty where the layout has no annotation, e.g. S4 train "
          "seconds 2-5), `clip`, `second`, `split`, `category`, `classes` (AVSS: the classes in the mask), "
          "`sounding` (the mask holds a sounding object), `annotated`; provenance: `mask_source` (review or "
          "proposal), `annotators`, `qa_iou` (proposal vs reviewed mask), `backend`, `checkpoint`"
        + ("; `mask_rgb` (the colour label)" if f.semantic else "")
        + ("; `fid`, `null`, `expressions` (uid, split, text)" if f.per_object else "") + ".",
        "- `clips`: one row per clip: `audio` (16 kHz WAV), `logmel` (VGGish examples [T][96][64], computed as "
        "the official torchvggish code does), `logmel_pkl` (the release's own pickle), `start`, `video_id`, "
        "`licence`, `source_url`, `title`, `metadata` (the clip's metadata rows as JSON).",
        "- `data/files/`: every other file of the tree (metadata CSV, the dataset card, checksums), path and bytes.",
        "", "Image and audio columns are the Hub's Image and Audio features: each value holds the file's bytes and "
        "its `path` inside the official tree.", "",
        "## Load", "", "```python", "from datasets import load_dataset",
        "frames = load_dataset(\"parquet\", data_files={\"test\": \"data/frames/test-*.parquet\"})[\"test\"]",
        "frames[0][\"frame\"]  # a PIL image", "```", "",
        "Official tree: `avs-tools unpublish DIR --out RELEASE` (checked against the release's own SHA256SUMS).",
        "Croissant metadata (with the responsible-AI fields): `croissant.json`.", "",
        "## Provenance", "",
        (f"Per-frame provenance is known for {known} frame rows ({reviewed} reviewed by people)." if known else
         "Per-frame provenance was not given (publish without --workspace): see the release's card below."), "",
        "## Licence", "",
        "Annotations: CC BY-NC 4.0. Each clip keeps its source video's licence (`licence` and `source_url` of the "
        "clips table, and the card below).", ""]
    if card:
        text += ["## The release's dataset card", "", card.replace("\n# ", "\n### ").removeprefix("# "), ""]
    return "\n".join(text)
