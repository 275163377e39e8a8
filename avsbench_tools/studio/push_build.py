"""push's building blocks: the plan items, their predictions' digests, and the task and prediction JSON.

`Item` is one sampled frame to push (its clip, frame, audio, video, category, predictions); `Pred` one
proposal mask set's objects in that second, with a digest of what it carries (object ids, mask version
ids, labels): push compares it with the digest recorded when the prediction was sent, and updates a
prediction whose labels changed (set-category). `_task`/`prediction_json` build the JSON Label Studio
imports, every prediction validated against the project's config first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from avsbench_tools.catalog import Frame, MaskVersion
from avsbench_tools.errors import AvsError
from avsbench_tools.studio import labelling as cfg
from avsbench_tools.studio.excerpt import Excerpt, task_audio

# the model version suffix of the apart prediction that includes objects believed silent
SILENT_SUFFIX = " (includes objects believed silent)"
SILENT_SCORE = 0.01  # its score: never the prediction an annotator is meant to accept
UNVERIFIED_SCORE = 0.5  # the highest score of a prediction whose classes no model named (a coin toss, never 100%)
UNVERIFIED = "class not verified"  # the mark on such regions and in the task header
# the model version of the prediction a frame without any proposal gets: only the audio's second region (and, in a
# silent second, "no sounding object"); regions travel only in predictions. Never a proposal (qa, the project's
# model version and --order leave it out).
AUDIO_ONLY = "the task's second (no proposal)"


@dataclass
class Pred:
    model_version: str
    versions: list[MaskVersion]  # the set's objects in this second (may be none: an empty proposal)
    digest: str = ""  # what it carries (objects and their labels): a change (set-category) updates it
    no_sound: bool = False  # the second is silent: the "no sounding object" choice is pre-set
    with_silent: bool = False  # the apart prediction: it includes objects believed silent
    silent_second: bool = False  # the sample stage found the second silent
    unverified: bool = False  # its backend does not name classes (motion): every label is the clip's category
    audio_only: bool = False  # AUDIO_ONLY: a frame without any proposal (the audio's second region only)

    def row(self, tid: int) -> tuple[int, str, list[int], str]:
        return (tid, self.model_version, [v.version_id for v in self.versions], self.digest)


def digest_of(versions: list[MaskVersion], category: str | None, no_sound: bool = False,
              unverified: bool = False) -> str:
    import hashlib
    import json

    body = [(int(v.version_id), int(v.fid), v.category or category) for v in versions]
    body += ["no-sound"] * no_sound + ["unverified"] * unverified
    return hashlib.sha1(json.dumps(body).encode()).hexdigest()[:16]


@dataclass
class Item:
    clip_id: str
    frame: Frame
    n_seconds: int
    wav: str | None
    video: str
    category: str | None
    preds: list[Pred]
    fps: float | None = None  # the clip's frame rate (the task's <Video frameRate>)
    n_frames: int | None = None  # the clip's frame count (the header names the frame's number)
    sound: str | None = None  # the audio analysis of the second ("silent: +1.0 dB over the floor"), None: unknown
    excerpt: Excerpt | None | bool = False  # the task's audio from its second (studio.excerpt); False: not made yet


def believed_silent(v: MaskVersion, second_silent: bool) -> bool:
    """An object believed silent in its second: the second is silent, or preannotate's gate said so."""
    return second_silent or v.sounding is False


def split_silent(model_version: str, second: int, versions: list[MaskVersion], category: str | None,
                 activity) -> list[Pred]:
    """The predictions of one proposal set in one second, as the audio decides: the one annotators accept holds
    only the objects believed to sound (in a silent second none, with "no sounding object" pre-set); when some
    object is believed silent, a second prediction (model version + SILENT_SUFFIX, score SILENT_SCORE) offers
    every object apart, its silent regions marked "believed silent". activity: the clip's (None: unknown)."""
    unverified = not all(names_classes(b) for b in {v.backend for v in versions} or {model_version.split(":")[0]})
    quiet = second_silent(activity, second)
    sounding = [v for v in versions if not believed_silent(v, quiet)]
    main = Pred(model_version, sounding, no_sound=quiet, silent_second=quiet, unverified=unverified)
    main.digest = digest_of(sounding, category, quiet, unverified)
    out = [main]
    if len(sounding) < len(versions):
        apart = Pred(model_version + SILENT_SUFFIX, versions, with_silent=True, silent_second=quiet,
                     unverified=unverified)
        apart.digest = digest_of(versions, category, unverified=unverified)
        out.append(apart)
    return out


def audio_only(second: int, activity) -> Pred:
    """The prediction of a frame without any proposal: the audio's second region, and "no sounding object" pre-set
    when the sample stage found the second silent."""
    quiet = second_silent(activity, second)
    return Pred(AUDIO_ONLY, [], digest_of([], None, quiet), no_sound=quiet, silent_second=quiet, audio_only=True)


def names_classes(backend: str | None) -> bool:
    """Whether a backend's proposals name their objects' classes: the backend registry's `names_classes`
    (preannotate.backends); without that registry, every backend but the weight-free motion one."""
    try:
        from avsbench_tools.preannotate import REGISTRY
    except ImportError:
        return backend is not None and backend != "motion"
    return backend in REGISTRY and bool(getattr(REGISTRY[backend], "names_classes", True))


def second_silent(activity, second: int) -> bool:
    """The sample stage found this second silent (False when the clip has no activity record)."""
    if activity is None:
        return False
    return not (second < len(activity.active) and bool(activity.active[second]))


def sound_text(activity, second: int) -> str | None:
    """The audio analysis of a second, as the task header states it ("silent: +1.0 dB over the floor")."""
    if activity is None or second >= len(activity.relative_db):
        return None
    state = "silent" if second_silent(activity, second) else "sounding"
    return f"{state}: {float(activity.relative_db[second]):+.1f} dB over the clip's floor"


UNIT = 10  # tasks a build thread turns into JSON at a time (a request joins the units ready when it is sent)
BUILDERS = 2  # threads building them (numpy and zlib release the GIL: two keep up with the server on a busy CPU)


class built:
    """The requests of `items`: (batch, body), each batch up to `limit` items. The items are built by `build` (a list
    of items -> the JSON array of their request bytes) in units of UNIT, in threads (BUILDERS), from the moment this
    is made (while push still sets up the project's storages) and up to three requests ahead of the one being sent.
    A request joins every unit built by the time it is sent (up to `limit` items). The first waits only for the
    first unit (the server is idle until it goes), or for every unit when they all fit in it; each later one waits
    until it holds what keeps the number of requests the fewest: what is left after it fills whole requests (300
    items, limit 100: 20, 80, 100, 100 instead of 20, 70, 100, 100, 10). Each import request costs the server
    ~40-60 ms besides its tasks, more in a project that holds many; the build runs ahead of the server, so the wait
    is short. `ahead`: called once, when the build is ahead of the server: a full request (`limit` items) is about
    to be sent, or every unit is built, whichever comes first (`is_ahead` says whether it was). Until then the build
    is what the server waits for, and push lets work that is not on the server's path (the audio excerpts) start
    only then. Errors surface in order; `close()` (or the end of the iteration) stops the threads' queued work."""

    def __init__(self, items: list, build, limit: int, unit: int | None = None, threads: int | None = None,
                 ahead=None):
        import threading
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        limit = max(1, limit)
        unit = max(1, min(unit or UNIT, limit))
        self._limit, self._build, self._left = limit, build, len(items)
        self.is_ahead = False
        lock = threading.Lock()

        def once() -> None:
            nonlocal ahead
            with lock:
                call, ahead = ahead, None
                self.is_ahead = True
            if call is not None:
                call()

        self._ahead = once
        if ahead is not None:
            left = [-(-len(items) // unit)]

            def build_counted(u):
                out = build(u)
                with lock:
                    left[0] -= 1
                    last = left[0] == 0
                if last:
                    once()
                return out

            self._build = build_counted
        self._units = chunks(items, unit)
        self._pool = ThreadPoolExecutor(max_workers=threads or BUILDERS, thread_name_prefix="avs-push-build")
        self._queue: deque = deque()
        self._rest = next(self._units, None)
        for _ in range(max(2, -(-3 * limit // unit))):
            self._submit()

    def _submit(self) -> None:
        unit, self._rest = self._rest, next(self._units, None)  # the unit after: None when every unit is submitted
        if unit is not None:
            self._queue.append((unit, self._pool.submit(self._build, unit)))

    def _take(self) -> tuple[list, bytes]:
        unit, fut = self._queue.popleft()
        body = fut.result()
        self._submit()
        return unit, body

    def __iter__(self) -> Iterator[tuple[list, bytes]]:
        limit, first = self._limit, True
        try:
            while self._queue:
                left = self._left  # items not sent yet, this request's among them
                # what this request waits for: what is left when it all fits (a request of its own would cost the
                # server more than the build needs to finish it, running ahead); the first unit, for the first
                # request; else as many as leave whole requests after it
                need = left if left <= limit else 1 if first else (left - 1) % limit + 1
                batch, body = self._take()
                batch, bodies = list(batch), [body]
                while (self._queue and (len(batch) < need or self._queue[0][1].done())
                       and self._queue[0][1].exception() is None  # (waits for it) a failed unit: raised next
                       and len(batch) + len(self._queue[0][0]) <= limit):
                    unit, body = self._take()
                    batch += unit
                    bodies.append(body)
                first, self._left = False, left - len(batch)
                if len(batch) >= limit:
                    self._ahead()
                yield batch, bodies[0] if len(bodies) == 1 else b"[" + b",".join(b[1:-1] for b in bodies) + b"]"
        finally:
            self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- task and prediction JSON ----------------------------------------------------------------------------
def chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), max(1, n)):
        yield seq[i:i + max(1, n)]


def _file_url(ws, docroot: Path, rel: str | None) -> str:
    """The server's URL of a workspace file: its path below the document root (string operations: three a task)."""
    if not rel:
        return ""
    p = os.path.abspath(os.path.join(str(ws.root), str(rel)))  # an absolute `rel` stays itself
    root = str(docroot)
    if not p.startswith(root.rstrip(os.sep) + os.sep):
        raise ValueError(f"{p} is not below the document root {root}")
    return "/data/local-files/?d=" + quote(p[len(root.rstrip(os.sep)) + 1:].replace(os.sep, "/"), safe="/")


def audio_of(ws, it: Item, writer=None) -> Excerpt | None:
    """The task's audio: the clip's WAV from the task's second to its end (studio.excerpt), written on first use
    (by `writer`, when given: excerpt.task_audio)."""
    if it.excerpt is False:
        it.excerpt = task_audio(ws, it.clip_id, it.wav, int(it.frame.second), writer)
    return it.excerpt


def refresh_audio(ws, items: list[Item], stop=None) -> list[Item]:
    """The audio of tasks already on the server made again where it differs from the clip's WAV now (the clip was
    sampled again). Returns the items whose excerpt is missing: pushed before tasks had one (their task data names
    the whole clip's WAV: push_sync.refresh_data updates it), or removed since. `stop` (a threading.Event): set, the
    rest is left (push interrupted: the next push checks them)."""
    from avsbench_tools.studio.excerpt import excerpt_rel

    missing = []
    for it in items:
        if stop is not None and stop.is_set():
            break
        if it.wav and ws.abs(excerpt_rel(it.clip_id, int(it.frame.second))).is_file():
            audio_of(ws, it)
        elif it.wav:
            missing.append(it)
    return missing


def task_json(ws, it: Item, docroot: Path, ws_id: str, li, pid: int, writer=None) -> dict:
    """The task Label Studio imports: its data (`task_data`) and its predictions."""
    return {"data": task_data(ws, it, docroot, ws_id, writer),
            "predictions": [prediction_json(ws, it, p, li, pid) for p in it.preds]}


def task_data(ws, it: Item, docroot: Path, ws_id: str, writer=None) -> dict:
    """The task's data: its media URLs (the audio from its second on: written if missing, by `writer` when given),
    keys and header."""
    f = it.frame
    w, h = _size(ws, f)
    of = f" of {it.n_frames}" if it.n_frames else ""
    ex = audio_of(ws, it, writer)
    starts = (f"the audio player starts at it (0 s there is second {f.second} of the clip)" if ex else
              "the audio player holds the whole clip")
    note = (f"{it.clip_id}, second {f.second} (of {it.n_seconds}): listen to {f.second:.1f}-{f.second + 1:.1f} s of "
            f"the clip, {starts}; the frame is the clip's frame {int(f.frame_index) + 1}{of}, at {f.pts:.2f} s")
    data = {"image": _file_url(ws, docroot, f.path), "audio": _file_url(ws, docroot, ex.rel if ex else it.wav),
            "video": _file_url(ws, docroot, it.video), "clip_id": it.clip_id, "second": int(f.second),
            "frame_index": int(f.frame_index), "width": w, "height": h, "ws_id": ws_id, "note": note}
    if ex:
        data["audio_start"] = ex.start  # the clip's second at 0 s of the task's audio
    if it.fps:
        data["fps"] = round(float(it.fps), 3)
    if it.sound:
        data["sound"] = it.sound
        data["note"] = note = f"{note}. Audio analysis of this second: {it.sound}"
    if any(p.unverified for p in it.preds):
        data["classes"] = (f"{UNVERIFIED}: the proposals come from a backend that does not name classes "
                           "(every object carries the clip's category)")
        data["note"] = f"{note}. Proposed labels: {UNVERIFIED}"
    return data


def second_region(second: int, duration: float) -> dict:
    """The read-only audio region that marks the task's second (config.SECOND): [0, 1) of the task's audio, which
    starts at the clip's second `second` (studio.excerpt); its end is the audio's end at most (`duration` s). Its
    meta text names the clip's second. Pull ignores it."""
    return {"id": "second", "from_name": cfg.SECOND, "to_name": cfg.AUDIO, "type": "labels", "readonly": True,
            "meta": {"text": [f"second {int(second)} of the clip"]},
            "value": {"start": 0.0, "end": float(min(1.0, duration)), "channel": 0, "labels": [cfg.SECOND_LABEL]}}


def _size(ws, f: Frame) -> tuple[int, int]:
    if f.width and f.height:
        return int(f.width), int(f.height)
    from PIL import Image

    with Image.open(ws.abs(f.path)) as im:
        return im.size


def labels_of(li) -> set[str]:
    """The brush labels of a project's config (its LabelInterface `li`), read once."""
    if not hasattr(li, "_avs_labels"):
        li._avs_labels = set(cfg._tag(li, cfg.MASK).labels or [])
    return li._avs_labels


def has_second(li) -> bool:
    """The project's config has the audio's second (config.SECOND with SECOND_LABEL): a project made before has
    not (made before the task's audio started at its second, its tasks hold the whole clip: no region is sent)."""
    if not hasattr(li, "_avs_second"):
        tag = cfg._tag(li, cfg.SECOND)
        li._avs_second = tag is not None and cfg.SECOND_LABEL in set(tag.labels or [])
    return li._avs_second


def _stored_rle(ws, v: MaskVersion) -> tuple[list[int], tuple[int, int]]:
    """(the brush RLE, (H, W)) of a stored mask: from its 1-bit PNG's bits as stored (no byte per pixel), or, for a
    mask stored before masks were 1-bit, from the mask read back."""
    from avsbench_tools.pngfast import decode_mask_bits, mask_of
    from avsbench_tools.studio.rle import encode, encode_bits

    data = ws.abs(v.path).read_bytes()  # read once, either way
    bits = decode_mask_bits(data)
    if bits is not None:
        return encode_bits(*bits), (int(bits[0].shape[0]), int(bits[1]))
    mask = mask_of(data)
    return encode(mask), (int(mask.shape[0]), int(mask.shape[1]))


def prediction_json(ws, it: Item, p: Pred, li, pid: int) -> dict:
    from avsbench_tools.studio.convert import brush_region

    w, h = _size(ws, it.frame)
    where = f"clip {it.clip_id} second {it.frame.second}"
    # the audio's second first: with no region selected, Alt+. (Label Studio's "cycle regions") selects it
    ex = audio_of(ws, it) if has_second(li) else None
    result = [second_region(it.frame.second, ex.duration)] if ex else []
    for v in p.versions:
        rle, shape = _stored_rle(ws, v)
        if shape != (h, w):
            raise AvsError(f"{where}: the mask of object {v.fid} ({v.path}) is {shape[1]}x{shape[0]}, "
                           f"the frame {w}x{h}")
        label = v.category or it.category
        if label not in labels_of(li):
            raise AvsError(f"{where}: object {v.fid} has category {label!r}, which is not a label of project {pid}'s "
                           "config (fix the clip's category: avs-tools set-category)")
        region = brush_region(v.fid, label, (h, w), rle)
        marks = (["believed silent"] if p.with_silent and believed_silent(v, p.silent_second) else []) + \
            ([UNVERIFIED] if p.unverified else [])
        if marks:
            region["meta"] = {"text": marks}
        result.append(region)
    if p.no_sound:
        from avsbench_tools.catalog.reviews import SILENT
        from avsbench_tools.studio.convert import flags_to_studio

        result += flags_to_studio([SILENT])
    scores = [min(max(float(v.score), 0.0), 1.0) for v in p.versions if v.score is not None]
    pred = {"model_version": p.model_version, "result": result}
    if scores:
        pred["score"] = min(scores)
    if p.unverified and p.versions:
        pred["score"] = min(pred.get("score", 1.0), UNVERIFIED_SCORE)
    if p.with_silent:
        pred["score"] = min(pred.get("score", 1.0), SILENT_SCORE)
    errors = li.validate_prediction(pred, return_errors=True)
    if errors:
        first = " ".join(str(errors[0]).split())
        first = first if len(first) <= 160 else first[:160] + "..."
        raise AvsError(f"{where}: the {p.model_version} prediction does not fit the labelling config of project "
                       f"{pid} ({first}); nothing of it was sent")
    return pred
