"""The release formats: one record per official on-disk layout, and the registry that lists them.

Everything that differs between AVSBench-object S4/MS3, AVSBench-semantic and Ref-AVS and is not a
path of the layout itself lives here: clip lengths, the frame each second is sampled at, what a mask
holds (`binary` 0/255 union of the sounding objects, `semantic` class-index map, `per-object` one
mask per referred object), frame type and size, splits, the writer and the reader, the official
evaluation batch and the published sizes. recipe, release (the reader), writers, validate, evaluate,
stats, export and synth all look formats up here instead of listing names.

Adding a format: one `ReleaseFormat(...)` entry in `FORMATS` below, a writer class in
`avsbench_tools/writers/<module>.py` (a `ReleaseWriter` subclass: `add(ReleaseClip)`, `close()`), and a
reader function `read_<x>(base: Path) -> Release` in `avsbench_tools/release_reader.py`; both are named in the
entry as "module:attribute" and imported only when used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

MASK_KINDS = ("binary", "semantic", "per-object")


@dataclass(frozen=True)
class ReleaseFormat:
    """One official release layout (an entry of this registry): what recipes, export, synth, validate, evaluate and
    stats read of it, its writer and its reader (release_reader.py)."""

    name: str  # the --format / recipe `format` value
    title: str  # the dataset and paper it comes from
    clip_seconds: tuple[int, ...]  # clip lengths the layout holds
    sampling: str  # the official frame of each second: "end-of-second" | "first-of-second"
    masks: str  # "binary" (0/255, sounding objects' union) | "semantic" (class indices) | "per-object"
    frame_format: str  # "png" | "jpg"
    frame_size: tuple[int, int] | None  # frames and masks resized to (width, height); None: source size
    train_annotation: str  # annotated frames of a train clip: "first" (semi-supervised) | "all"
    multi_source: bool  # clips may hold several sounding sources
    logmel: bool  # the release holds VGGish log-mel pickles
    splits: tuple[str, ...]  # the splits of a complete release (metadata `split` values)
    export_splits: tuple[str, ...]  # what `export --split` accepts
    writer: str  # "module:Class" of its ReleaseWriter
    reader: str  # "module:function" reading a release root's inner folder into a release.Release
    metadata: str  # the metadata file
    inner: str | None = None  # the folder below the unpack root that holds the metadata (S4/MS3)
    media_dirs: tuple[tuple[str, str], ...] = ()  # (glob under the inner root, sub-folder) of per-clip media
    category_column: str | None = None  # metadata column naming each row's category(ies), if any
    clip_names: str = "video"  # release names: "video" (source video id when unique) | "clip" (clip id)
    test_split: str = "test"  # the split name a drawn "test" clip gets
    unseen_split: str | None = None  # where held-out (unseen) categories go
    official_batch: int | None = None  # frames per batch of the official F-score
    eval_size: tuple[int, int] | None = None  # the official evaluation resolution, if fixed
    published: dict = field(default_factory=dict, compare=False)  # the official dataset's published figures

    @property
    def binary(self) -> bool:
        return self.masks == "binary"

    @property
    def semantic(self) -> bool:
        return self.masks == "semantic"

    @property
    def per_object(self) -> bool:
        return self.masks == "per-object"

    def split_name(self, split: str) -> str:
        """The release's name for a drawn split (Ref-AVS calls seen-category test clips test_s)."""
        return self.test_split if split == "test" else split

    def writer_class(self):
        return _load(self.writer)

    def open_writer(self, root, recipe):
        """A streaming writer of this layout into `root` (see avsbench_tools.writers)."""
        from pathlib import Path

        return self.writer_class()(Path(root), recipe)

    def read(self, base):
        """The release at `base` (the folder holding the metadata) as a release.Release."""
        return _load(self.reader)(base)

    def exports_from(self, recipe_format: str) -> bool:
        """Whether a workspace built for `recipe_format` can be exported in this format (same masks: S4 <-> MS3)."""
        other = FORMATS.get(recipe_format)
        return recipe_format == self.name or (other is not None and self.binary and other.binary)


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


_TRAIN_VAL_TEST = ("train", "val", "test")

FORMATS: dict[str, ReleaseFormat] = {f.name: f for f in (
    ReleaseFormat(
        name="avsbench-s4", title="AVSBench-object, single source (Zhou et al., ECCV 2022)",
        clip_seconds=(5,), sampling="end-of-second", masks="binary", frame_format="png", frame_size=(224, 224),
        train_annotation="first", multi_source=False, logmel=True, splits=_TRAIN_VAL_TEST,
        export_splits=_TRAIN_VAL_TEST, writer="avsbench_tools.writers.avsbench_s4:S4Writer",
        reader="avsbench_tools.release_reader:read_s4", metadata="s4_meta_data.csv", inner="Single-source",
        category_column="category",
        media_dirs=(("s4_data/visual_frames/*/*/*", ""),), clip_names="video", official_batch=4 * 5,
        published={"videos": 4932, "splits": {"train": 3452, "val": 740, "test": 740}, "categories": 23}),
    ReleaseFormat(
        name="avsbench-ms3", title="AVSBench-object, multiple sources (Zhou et al., ECCV 2022)",
        clip_seconds=(5,), sampling="end-of-second", masks="binary", frame_format="png", frame_size=(224, 224),
        train_annotation="all", multi_source=True, logmel=True, splits=_TRAIN_VAL_TEST,
        export_splits=_TRAIN_VAL_TEST, writer="avsbench_tools.writers.avsbench_ms3:MS3Writer",
        reader="avsbench_tools.release_reader:read_ms3", metadata="ms3_meta_data.csv", inner="Multi-sources",
        media_dirs=(("ms3_data/visual_frames/*", ""),), clip_names="clip", official_batch=4 * 5,
        published={"videos": 424, "splits": {"train": 296, "val": 64, "test": 64}}),
    ReleaseFormat(
        name="avss", title="AVSBench-semantic (Zhou et al., 2023)",
        clip_seconds=(5, 10), sampling="end-of-second", masks="semantic", frame_format="jpg", frame_size=None,
        train_annotation="first", multi_source=True, logmel=False, splits=_TRAIN_VAL_TEST,
        export_splits=_TRAIN_VAL_TEST, writer="avsbench_tools.writers.avss:AVSSWriter",
        reader="avsbench_tools.release_reader:read_avss", metadata="metadata.csv", category_column="a_obj",
        media_dirs=(("v1s/*", "frames"), ("v1m/*", "frames"), ("v2/*", "frames")), clip_names="video",
        published={"videos": 11356, "splits": {"train": 8498, "val": 1304, "test": 1554},
                   "categories": 70, "categories_note": "70 classes + background"}),
    ReleaseFormat(
        name="ref-avs", title="Ref-AVS (Wang et al., ECCV 2024)",
        clip_seconds=(10,), sampling="first-of-second", masks="per-object", frame_format="jpg", frame_size=None,
        train_annotation="all", multi_source=True, logmel=False, splits=("train", "val", "test_s", "test_u", "test_n"),
        export_splits=("train", "val", "test", "test_s", "test_u"), writer="avsbench_tools.writers.refavs:RefAVSWriter",
        reader="avsbench_tools.release_reader:read_refavs", metadata="metadata.csv", media_dirs=(("media/*", "frames"),),
        clip_names="clip", test_split="test_s", unseen_split="test_u", official_batch=4 * 10, eval_size=(256, 256),
        published={"videos": 4002, "expressions": 20261, "categories": 51, "categories_note": "48 sounding + 3 silent",
                   "words_mean": "about 8", "words_max": "about 22"}),
)}


def names() -> tuple[str, ...]:
    """The registered format names, in registry order."""
    return tuple(FORMATS)


def register(f: ReleaseFormat) -> ReleaseFormat:
    """Add a format to the registry (a plugin's, or a test's); a name already taken is a ValueError."""
    if f.masks not in MASK_KINDS:
        raise ValueError(f"format {f.name}: masks must be one of {', '.join(MASK_KINDS)}, not {f.masks!r}")
    if f.name in FORMATS:
        raise ValueError(f"format {f.name} is already registered")
    FORMATS[f.name] = f
    return f


def find(name: str | None) -> ReleaseFormat | None:
    """The format called `name`, or None."""
    return FORMATS.get(name) if name else None


def of_release(root) -> str | None:
    """The format a release names itself: the `format` of the `.avs-tools-output` marker export writes, or of the
    `.avs-gold.json` stamp of a synthetic world's gold release (also one folder up: an S4/MS3 inner folder). None
    for a release without either (an official download): then --format must be given."""
    import json
    from pathlib import Path

    root = Path(root)
    for folder in (root, root.parent):
        for name, key in ((".avs-tools-output", "format"), (".avs-gold.json", "format")):
            try:
                d = json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(d, dict) and isinstance(d.get(key), str) and d[key] in FORMATS:
                return d[key]
    return None


def get(name: str) -> ReleaseFormat:
    """The format called `name`; a one-line UsageError naming the known ones otherwise."""
    f = find(name)
    if f is None:
        from avsbench_tools.errors import UsageError

        raise UsageError(f"--format {name}: expected one of {', '.join(names())}")
    return f
