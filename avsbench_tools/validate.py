"""validate: check a release (ours or an official download) the way its loaders will use it.

Every file a loader opens must exist and decode; frame and mask sizes and mask values must be
right; metadata rows and folders must agree; splits must be disjoint (no video in two splits);
the annotated-frame rules per split must hold. Each problem names its path.

Warnings (`release_warnings`, shared with stats) flag a release that loads but is probably not
what its author meant: most masks empty, a single category or `unknown`, identical expressions,
clips with no sounding frame, an expected split with no clips, and (from the marker of a release export wrote,
`provenance_warnings`) clips left out or exported with classes no model named. They never change the exit code.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools import formats
from avsbench_tools.progress import Progress
from avsbench_tools.release_reader import Item, Release, read_release

EXPECTED_SPLITS = {f.name: f.splits for f in formats.FORMATS.values()}  # the splits of a complete release


@dataclass
class MaskSurvey:
    """Which masks were read and which were empty, by clip (Ref-AVS: by video; null rows left out)."""

    nonempty: dict[Path, bool] = field(default_factory=dict)
    clip_masks: dict[str, set[Path]] = field(default_factory=dict)
    clips_total: int = 0  # clips in the release (the survey may cover a sample of them)

    def add(self, clip: str, path: Path, arr: np.ndarray | None) -> None:
        self.clip_masks.setdefault(clip, set()).add(path)
        if arr is not None:
            self.nonempty[path] = bool(np.asarray(arr).any())


def clip_key(it: Item, fmt: str) -> str:
    """The clip a row belongs to: Ref-AVS rows (one per expression) by their vid, others by their name."""
    return it.row.get("vid", it.name) if formats.get(fmt).per_object else it.name


def row_categories(rel: Release) -> list[str] | None:
    """The category of every row as the metadata says it (AVSS: each sounding object); None for MS3."""
    f = formats.get(rel.fmt)
    if f.per_object:
        return [refavs_category(it) for it in rel.items if not it.null]
    if f.category_column is None:
        return None
    if f.semantic:
        return [o for it in rel.items for o in dict.fromkeys(str(it.row.get(f.category_column, "")).split("_")) if o]
    return [it.row.get(f.category_column) or "" for it in rel.items]


def refavs_category(it: Item) -> str:
    vid = it.row.get("vid", "")
    rest = it.name[len(vid) + 1:] if it.name.startswith(vid + "_") else it.name
    return rest.rsplit("_", 1)[0]


def release_warnings(rel: Release, survey: MaskSurvey | None) -> list[str]:
    """What loads but is probably wrong. Mask counts cover the masks the survey read, and say so."""
    out: list[str] = []
    fmt = rel.fmt
    f = formats.get(fmt)
    if not rel.items:
        return ["the metadata has no rows"]
    if survey is not None and survey.nonempty:
        read_clips = [c for c, ps in survey.clip_masks.items() if ps and all(p in survey.nonempty for p in ps)]
        sampled = len(survey.clip_masks) < survey.clips_total
        scope = f" (in the {len(survey.clip_masks)} of {survey.clips_total} clips read)" if sampled else ""
        n = len(survey.nonempty)
        empty = sum(1 for v in survey.nonempty.values() if not v)
        what = "label maps" if f.semantic else "masks"
        null_note = " (null expressions left out)" if f.per_object else ""
        if empty * 2 > n:
            out.append(f"most {what} are empty: {empty} of {n}{null_note}{scope} hold no sounding object")
        silent = [c for c in read_clips if not any(survey.nonempty[p] for p in survey.clip_masks[c])]
        if silent:
            frame = "frame showing a referred object" if f.per_object else "sounding frame"
            out.append(f"{len(silent)} of {len(read_clips)} clips{scope} have no {frame} (every annotated "
                       f"{what[:-1]} empty), e.g. {silent[0]}")
    cats = row_categories(rel)
    if cats is not None:
        if f.semantic:
            bare = sum(1 for it in rel.items if not [o for o in str(it.row.get("a_obj", "")).split("_")
                                                     if o and o != "background"])
            if bare:
                out.append(f"{bare} of {len(rel.items)} rows name no sounding object (a_obj empty or background)")
            cats = [c for c in cats if c != "background"]
        label = ("sounding objects in a_obj" if f.semantic else "expressions" if f.per_object else "rows")
        unknown = sum(1 for c in cats if c in ("", "unknown"))
        if unknown:
            out.append(f"{unknown} of {len(cats)} {label} have category 'unknown' or none: collect with "
                       "--category (or set it) so masks and expressions know what they show")
        kinds = sorted(set(cats) - {"", "unknown"})
        if len(kinds) == 1 and len(rel.items) > 1:
            out.append(f"a single category: all {len(cats)} {label} are {kinds[0]!r}" if not unknown else
                       f"a single category besides 'unknown': {kinds[0]!r}")
    if f.per_object:
        exps = [str(it.row.get("exp", "")).strip() for it in rel.items if not it.null]
        if len(exps) > 1 and len(set(exps)) == 1:
            out.append(f"all {len(exps)} expressions are identical ({exps[0]!r})")
    present = {it.split for it in rel.items}
    for s in f.splits:
        if s not in present:
            out.append(f"split {s} has no clips")
    return out


def provenance_warnings(root: Path) -> list[str]:
    """What the marker export writes beside its release (at `root` or its parent) records of unverified classes:
    AVSS clips left out because no verified class decides their single/multi-source form, clips exported with
    proposals whose classes no model named. [] for a release without our marker (an official download)."""
    from avsbench_tools.completeness import form_unknown_warning, unverified_warning
    from avsbench_tools.fsutil import read_marker

    for folder in (Path(root), Path(root).parent):
        m = read_marker(folder)
        if m is None or m.get("kind") != "release":
            continue
        out = []
        unknown, unverified = m.get("form_unknown") or [], m.get("unverified_classes") or []
        if unknown:
            out.append(f"{form_unknown_warning(len(unknown))}, e.g. {unknown[0]} (the export's marker)")
        if unverified:
            out.append(f"{unverified_warning(len(unverified), int(m.get('clips') or 0))}, e.g. {unverified[0]} "
                       "(the export's marker)")
        return out
    return []


@dataclass
class Report:
    fmt: str
    root: str
    items: int = 0
    files_checked: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    splits: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    survey: MaskSurvey | None = None

    def add(self, path, problem: str) -> None:
        self.problems.append((str(path), problem))

    @property
    def ok(self) -> bool:
        return not self.problems


def _present(path: Path | None, rep: Report) -> bool:
    """Count the file as checked; record it as missing if it is not there."""
    if path is None:
        return False
    rep.files_checked += 1
    if not path.is_file():
        rep.add(path, "missing")
        return False
    return True


def _img(path: Path, rep: Report):
    from PIL import Image

    if not _present(path, rep):
        return None
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Exception as exc:  # noqa: BLE001 - any decode failure is a finding
        rep.add(path, f"does not decode ({type(exc).__name__})")
        return None


def _wav(path: Path | None, rep: Report) -> None:
    if not _present(path, rep):
        return
    try:
        with wave.open(str(path), "rb") as w:
            if w.getframerate() != 16000 or w.getsampwidth() != 2:
                rep.add(path, f"audio is {w.getframerate()} Hz {8 * w.getsampwidth()}-bit (want 16000 Hz 16-bit)")
            if w.getnframes() == 0:
                rep.add(path, "audio is empty")
    except (wave.Error, EOFError, OSError) as exc:
        rep.add(path, f"not a PCM WAV ({exc})")


def _pkl(path: Path | None, rep: Report, t: int) -> None:
    if not _present(path, rep):
        return
    try:
        import pickle

        import torch  # noqa: F401 - the pickle holds a torch tensor

        with open(path, "rb") as fh:
            x = pickle.load(fh)
        shape = tuple(x.shape)
        if shape != (t, 1, 96, 64):
            rep.add(path, f"log-mel shape {shape} (want ({t}, 1, 96, 64))")
    except ImportError:
        if path.read_bytes()[:1] != b"\x80":
            rep.add(path, "not a pickle")
    except Exception as exc:  # noqa: BLE001
        rep.add(path, f"does not unpickle ({type(exc).__name__})")


def _check_binary_item(it: Item, rep: Report, size: tuple[int, int] | None) -> None:
    survey = rep.survey
    shape = None
    for p in it.frames:
        im = _img(p, rep)
        if im is not None:
            if im.mode != "RGB":
                rep.add(p, f"frame mode {im.mode} (want RGB)")
            if size and im.size != size:
                rep.add(p, f"frame size {im.size[0]}x{im.size[1]} (want {size[0]}x{size[1]})")
            shape = shape or im.size
    for _, p in sorted(it.masks.items()):
        survey.add(it.name, p, None)
        im = _img(p, rep)
        if im is None:
            continue
        if im.mode not in ("L", "1", "P"):
            rep.add(p, f"mask mode {im.mode} (want single-channel)")
            continue
        want = size or shape
        if want and im.size != want:
            rep.add(p, f"mask size {im.size[0]}x{im.size[1]} (want {want[0]}x{want[1]})")
        arr = np.asarray(im.convert("L"))
        survey.add(it.name, p, arr)
        vals = np.unique(arr)
        if not set(vals.tolist()) <= {0, 255}:
            rep.add(p, f"binary mask has values {vals[:6].tolist()} (want only 0 and 255)")


def validate_release(root: Path, fmt: str, progress: Progress | None = None) -> Report:
    """Check the release at `root` in layout `fmt` as its loaders use it: a Report of problems (path, cause),
    the files checked, the rows per split and the warnings (never a change of the exit code)."""
    rel: Release = read_release(root, fmt)
    f = formats.get(fmt)
    rep = Report(fmt, str(rel.root), items=len(rel.items), splits=rel.splits())
    rep.survey = MaskSurvey(clips_total=len({clip_key(it, fmt) for it in rel.items if not it.null}))
    progress = progress or (lambda *a: None)
    # splits: disjoint, one split per video
    seen: dict[str, str] = {}
    for it in rel.items:
        if f.per_object and it.null:
            continue  # the null rows of a test video live in test_n by design
        key = clip_key(it, fmt)
        if key in seen and seen[key] != it.split:
            rep.add(rel.meta, f"video {key} is in two splits ({seen[key]} and {it.split})")
        seen.setdefault(key, it.split)
    names = [it.name for it in rel.items]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        rep.add(rel.meta, f"{len(dups)} names appear in more than one row (e.g. {dups[0]})")
    allowed = set(f.splits)
    for it in rel.items:
        if it.split not in allowed:
            rep.add(rel.meta, f"row {it.name}: unknown split {it.split!r}")
    size = f.frame_size
    n_classes = len(rel.classes) or 71
    palette = _palette() if f.semantic else None
    media_done: set[Path] = set()
    for i, it in enumerate(rel.items):
        first = it.frames[0].parent not in media_done
        media_done.add(it.frames[0].parent)
        if f.semantic:
            _check_avss_item(it, rep, n_classes, palette)
            _wav(it.wav, rep)
        elif f.per_object:
            if first:
                for p in it.frames:
                    _img(p, rep)
                _wav(it.wav, rep)
            for p in it.masks.values():
                if not it.null:
                    rep.survey.add(clip_key(it, fmt), p, None)
                if p in rep.survey.nonempty:  # several expressions share one fid's masks: read once
                    continue
                im = _img(p, rep)
                if im is None:
                    continue
                if it.null:
                    if np.asarray(im).any():
                        rep.add(p, "null expression with a non-empty mask")
                else:
                    rep.survey.add(clip_key(it, fmt), p, np.asarray(im))
        else:
            _check_binary_item(it, rep, size)
            _wav(it.wav, rep)
            _pkl(it.pkl, rep, len(it.frames))
        progress("validating", i + 1, len(rel.items), it.name)
    _folders_without_rows(rel, rep)
    rep.warnings = release_warnings(rel, rep.survey) + provenance_warnings(Path(rel.root))
    return rep


def _palette() -> np.ndarray:
    from avsbench_tools.writers.avss import voc_palette

    return voc_palette()


def _check_avss_item(it: Item, rep: Report, n_classes: int, palette: np.ndarray) -> None:
    shape = None
    for p in it.frames:
        im = _img(p, rep)
        if im is not None:
            shape = shape or im.size
    for sec, p in sorted(it.masks.items()):
        rep.survey.add(it.name, p, None)
        im = _img(p, rep)
        if im is None:
            continue
        if shape and im.size != shape:
            rep.add(p, f"label size {im.size[0]}x{im.size[1]} (frames are {shape[0]}x{shape[1]})")
        sem = np.asarray(im)
        if sem.ndim != 2:
            rep.add(p, "labels_semantic is not single-channel")
            continue
        rep.survey.add(it.name, p, sem)
        if sem.max(initial=0) >= n_classes:
            rep.add(p, f"class index {int(sem.max())} >= {n_classes} classes")
        rgb = _img(it.rgb_masks[sec], rep)
        if rgb is not None and rgb.size == im.size:
            want = palette[np.minimum(sem, 255)]
            if not np.array_equal(np.asarray(rgb.convert("RGB")), want):
                rep.add(it.rgb_masks[sec], "labels_rgb does not match labels_semantic in the VOC palette")


def _folders_without_rows(rel: Release, rep: Report) -> None:
    """Media folders present on disk that no metadata row points to (the format's media_dirs)."""
    want = {it.frames[0].parent for it in rel.items}
    found = {p / sub if sub else p for pattern, sub in formats.get(rel.fmt).media_dirs
             for p in rel.root.glob(pattern) if p.is_dir()}
    for p in sorted(found - want):
        rep.add(p, "folder without a metadata row")


def check_item_files(rel: Release, items: list[Item], progress: Progress | None = None) -> Report:
    """validate's per-file checks of these rows only, on the files a TPAVI loader opens (S4/MS3: frames,
    masks, the log-mel pickle; AVSS: frames, labels, the WAV): what `baseline train` runs before training,
    so it never trains on a file validate rejects. Metadata and split checks are validate_release's."""
    f = formats.get(rel.fmt)
    if f.per_object:
        raise ValueError(f"check_item_files: {rel.fmt} rows are not read by the TPAVI loaders")
    rep = Report(rel.fmt, str(rel.root), items=len(items))
    rep.survey = MaskSurvey(clips_total=len(items))
    n_classes = len(rel.classes) or 71
    palette = _palette() if f.semantic else None
    progress = progress or (lambda *a: None)
    for i, it in enumerate(items):
        if f.semantic:
            _check_avss_item(it, rep, n_classes, palette)
            _wav(it.wav, rep)
        else:
            _check_binary_item(it, rep, f.frame_size)
            _pkl(it.pkl, rep, len(it.frames))
        progress("checking files", i + 1, len(items), it.name)
    return rep
