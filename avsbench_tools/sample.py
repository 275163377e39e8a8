"""sample: the frames and audio that annotation and export use, decoded once per clip.

For each clip: one frame per second by the recipe's rule (AVSBench: the frame near the end of the
second, `int(l*fps + 15/16*fps)`; Ref-AVS: the first frame of the second, `ceil(l*fps)`), stored at
source resolution with its presentation time; a 16 kHz 16-bit WAV; VGGish log-mel examples
[T, 1, 96, 64]; per-second sound activity; optionally VGGish embeddings [T, 128].

One pass per clip, no seeking: the packets are read, the frames to sample chosen from their
timestamps, and the decoder skips what no chosen frame depends on. Sampled frames are encoded
(PNG/JPEG) on a worker thread while decoding goes on. Files are written to temporary names and renamed; the
catalog rows of a clip are committed in one transaction after its files exist, so a killed run
leaves either a finished clip or nothing, and a re-run skips finished clips.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.audio.logmel import SAMPLE_RATE, int16_to_examples, pad_examples
from avsbench_tools.audio.wav import wav_bytes
from avsbench_tools.catalog import Clip, write_resolved, write_stage
from avsbench_tools.errors import Interrupted, UsageError
from avsbench_tools.fsutil import atomic_write_bytes, remove_stale_temps
from avsbench_tools.timing import sampled_frame_indices
from avsbench_tools.workspace import Workspace, deferred_interrupt

Progress = Callable[[str, int, int, str], None]

JPEG_QUALITY = 95
VFR_TOLERANCE = 0.02  # frame intervals deviating more than 2% from their median mean VFR


class SampleError(Exception):
    """A clip that cannot be sampled; the message is the ledger reason."""


class SampleStopped(Exception):
    """The run was interrupted (Ctrl-C) before this clip finished; nothing of it is kept."""


Cancel = Callable[[], bool]  # True once the clip in progress must stop


def _check(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise SampleStopped()


@dataclass
class SampledFrame:
    second: int
    index: int  # index in the decoded frame sequence
    pts: float  # presentation time in seconds, relative to the first decoded frame
    image: np.ndarray  # RGB uint8 [H, W, 3], display orientation


@dataclass
class DecodedClip:
    frames: list[SampledFrame]
    n_frames: int
    fps: float
    vfr: bool
    rotation: int
    pcm: np.ndarray | None  # int16 [N, C] at 16 kHz, or None without an audio stream
    source_rate: int | None = None
    source_channels: int | None = None
    decoded: int = 0  # frames the video decoder produced (skipped frames are not decoded)


@dataclass
class Activity:
    """Per-second sound activity: the loud part of each second against the clip's noise floor."""

    level_db: list[float]  # per second: 90th percentile of 20 ms window energies (dBFS)
    floor_db: float  # the clip's noise floor: 10th percentile of all 20 ms windows (dBFS)
    relative_db: list[float]
    active: list[bool]
    params: dict = field(default_factory=dict)


# -- decoding ---------------------------------------------------------------------------------
def _targets_by_time(rule: str, seconds: int) -> list[float]:
    if rule == "end-of-second":
        return [sec + 15 / 16 for sec in range(seconds)]
    return [float(sec) for sec in range(seconds)]


def choose_frames(times: list[float], fps: float, rule: str, seconds: int) -> tuple[list[int], bool]:
    """The frame index each second samples, given every frame's presentation time in display order.

    Returns (indices, vfr). Constant frame rate: the official index rules on the display order.
    Variable frame rate (an interval off its median by more than 2%): the same rules on
    presentation times (end of second: the frame on screen at l + 15/16 s; first of second: the
    first frame at or after l s). For constant rate both agree.
    """
    n = len(times)
    t = np.asarray(times, dtype=np.float64)
    deltas = np.diff(t) if n > 2 else np.array([1 / fps])
    med = float(np.median(deltas)) if deltas.size else 1 / fps
    vfr = bool(deltas.size and med > 0 and np.max(np.abs(deltas - med)) > VFR_TOLERANCE * med)
    if not vfr:
        return sampled_frame_indices(rule, fps, n, seconds), False
    out = []
    for target in _targets_by_time(rule, seconds):
        if rule == "end-of-second":
            k = int(np.searchsorted(t, target + 1e-6, side="right")) - 1
        else:
            k = int(np.searchsorted(t, target - 1e-6, side="left"))
        out.append(min(max(k, 0), n - 1))
    return out, True


@dataclass
class _Video:
    frames: list[SampledFrame]
    n_frames: int
    vfr: bool
    rotation: int
    t0: float | None  # the first frame's presentation time (s), to align the audio
    decoded: int  # frames the decoder produced (fewer than n_frames when it could skip)


def decode_clip(path: Path, rule: str, seconds: int, with_audio: bool = True,
                sink: Callable[[SampledFrame], None] | None = None, skip: bool = True,
                cancel: Cancel | None = None) -> DecodedClip:
    """Decode `path` once: the sampled frames (display orientation) and the audio at 16 kHz int16.

    The packets are read first (no decoding: a few ms), so every frame's presentation time is known
    before anything is decoded and the frames to sample are chosen up front (`choose_frames`).
    While decoding, a frame that is neither chosen nor referenced by any other frame is skipped by
    the decoder (`skip_frame=NONREF`: it cannot change another frame's pixels) and nothing after
    the last chosen frame is decoded, so sampling decodes less than the whole clip. Each chosen
    frame is recognised by its timestamp. A file whose timestamps cannot be trusted, that fails to
    decode, or `skip=False`, falls back to decoding every frame in order.
    `sink(frame)` sees each sampled frame as soon as it is decoded; after a fallback a second is
    passed again, so the last call per second is final. The returned frames are the final ones.
    `cancel()` is asked between packets: True stops the decode with SampleStopped.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise SampleError(f"cannot open: {exc}") from exc
    with container:
        if not container.streams.video:
            raise SampleError("no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        rate = vs.guessed_rate or vs.average_rate
        fps = float(rate) if rate else 25.0
        ast = container.streams.audio[0] if (with_audio and container.streams.audio) else None
        vpk, apk, complete = _demux(container, vs, ast, cancel)
        video = None
        if skip and complete:
            try:
                video = _decode_planned(vs, vpk, fps, rule, seconds, sink, cancel)
            except av.error.FFmpegError:
                video = None
        pcm, audio_t0 = _decode_audio(ast, apk, cancel) if ast is not None else (None, None)
        source_rate = ast.codec_context.sample_rate if ast is not None else None
        source_channels = ast.codec_context.channels if ast is not None else None
    if video is None:
        video = _decode_in_order(path, fps, rule, seconds, sink, cancel)
    if pcm is not None:
        # align audio to the video's first frame, and cut at the clip length
        if audio_t0 is not None and video.t0 is not None and audio_t0 - video.t0 > 1 / SAMPLE_RATE:
            pad = int(round((audio_t0 - video.t0) * SAMPLE_RATE))
            pcm = np.concatenate([np.zeros((pad, pcm.shape[1]), np.int16), pcm])
        pcm = pcm[: seconds * SAMPLE_RATE]
    return DecodedClip(video.frames, video.n_frames, fps, video.vfr, video.rotation, pcm, source_rate,
                       source_channels, video.decoded)


def _demux(container, vs, ast, cancel: Cancel | None = None) -> tuple[list, list, bool]:
    """All packets of the video (and audio) stream; False if reading stopped at an error."""
    import av

    vpk, apk = [], []
    try:
        for p in container.demux(*([vs] if ast is None else [vs, ast])):
            if len(vpk) % 64 == 0:
                _check(cancel)
            if p.size:  # not the demuxer's empty end-of-stream packets
                (vpk if p.stream.index == vs.index else apk).append(p)
    except av.error.FFmpegError:
        return vpk, apk, False
    return vpk, apk, True


def _decode_planned(vs, vpk: list, fps: float, rule: str, seconds: int, sink,
                    cancel: Cancel | None = None) -> _Video | None:
    """Choose the frames from the packets' timestamps, then decode only what they need."""
    shown = [p.pts for p in vpk if not p.is_discard]  # discarded packets (edit lists) are never shown
    if not shown or any(q is None for q in shown) or len(set(shown)) != len(shown):
        return None
    order = sorted(shown)
    p0, tb = order[0], vs.time_base
    times = [float((q - p0) * tb) for q in order]
    idx, vfr = choose_frames(times, fps, rule, seconds)
    want: dict[int, list[int]] = {}  # pts -> seconds that sample it
    for sec, k in enumerate(idx):
        want.setdefault(order[k], []).append(sec)
    index_of = {order[k]: k for k in idx}
    last = max(j for j, p in enumerate(vpk) if p.pts in want)
    cc = vs.codec_context
    got: dict[int, np.ndarray] = {}
    rotation = 0
    decoded = 0

    def take(frames) -> None:
        nonlocal rotation, decoded
        for fr in frames:
            decoded += 1
            if fr.pts in want and fr.pts not in got:
                rotation = int(getattr(fr, "rotation", 0) or 0) % 360
                got[fr.pts] = img = _to_rgb(fr, rotation)
                if sink is not None:
                    k = index_of[fr.pts]
                    for sec in want[fr.pts]:
                        sink(SampledFrame(sec, k, times[k], img))

    for p in vpk[: last + 1]:
        _check(cancel)
        cc.skip_frame = "DEFAULT" if p.pts in want else "NONREF"
        take(cc.decode(p))
    cc.skip_frame = "DEFAULT"
    take(cc.decode(None))
    if len(got) != len(want):  # a chosen frame did not come out under its timestamp
        return None
    frames = [SampledFrame(sec, k, times[k], got[order[k]]) for sec, k in enumerate(idx)]
    return _Video(frames, len(order), vfr, rotation, float(p0 * tb), decoded)


def _decode_all(path: Path, fps: float, keep: set[int],
                cancel: Cancel | None = None) -> tuple[list[float], dict[int, np.ndarray], int, float]:
    """Every video frame in decoding output order: relative times, the `keep` ones as RGB, rotation, t0.

    A file that stops decoding part-way keeps what decoded (the rules clamp to the last frame)."""
    import av

    times: list[float] = []
    kept: dict[int, np.ndarray] = {}
    rotation, t0 = 0, 0.0
    try:
        with av.open(str(path)) as c:
            vs = c.streams.video[0]
            vs.thread_type = "AUTO"
            for fr in c.decode(vs):
                _check(cancel)
                ft = fr.time if fr.time is not None else len(times) / fps
                if not times:
                    t0, rotation = ft, int(getattr(fr, "rotation", 0) or 0) % 360
                if len(times) in keep:
                    kept[len(times)] = _to_rgb(fr, rotation)
                times.append(ft - t0)
    except av.error.FFmpegError as exc:
        if not times:
            raise SampleError(f"cannot decode: {exc}") from exc
    if not times:
        raise SampleError("no decodable video frames")
    return times, kept, rotation, t0


def _decode_in_order(path: Path, fps: float, rule: str, seconds: int, sink, cancel: Cancel | None = None) -> _Video:
    """The fallback: decode every frame to learn the sequence, then again to keep the chosen ones."""
    times, _, _, _ = _decode_all(path, fps, set(), cancel)
    idx, vfr = choose_frames(times, fps, rule, seconds)
    again, kept, rotation, t0 = _decode_all(path, fps, set(idx), cancel)
    if len(again) != len(times) or not set(idx) <= kept.keys():
        raise SampleError("decoding is not repeatable")
    frames = [SampledFrame(sec, k, times[k], kept[k]) for sec, k in enumerate(idx)]
    if sink is not None:
        for f in frames:
            sink(f)
    return _Video(frames, len(times), vfr, rotation, t0, 2 * len(times))


def _decode_audio(ast, apk: list, cancel: Cancel | None = None) -> tuple[np.ndarray, float | None]:
    """The audio packets at 16 kHz int16: mono stays mono, anything else becomes stereo."""
    import av

    channels = 1 if (ast.codec_context.channels or 2) == 1 else 2
    resampler = av.AudioResampler(format="s16", layout="mono" if channels == 1 else "stereo", rate=SAMPLE_RATE)
    cc = ast.codec_context
    chunks: list[np.ndarray] = []
    t0 = None
    try:
        for i, p in enumerate([*apk, None]):
            if i % 64 == 0:
                _check(cancel)
            for fr in cc.decode(p):
                if t0 is None and fr.time is not None:
                    t0 = fr.time
                chunks.extend(o.to_ndarray() for o in resampler.resample(fr))
        chunks.extend(o.to_ndarray() for o in resampler.resample(None))
    except av.error.FFmpegError:
        pass  # a damaged tail: keep what decoded
    return _join_audio(chunks, channels), t0


def _to_rgb(frame, rotation: int) -> np.ndarray:
    img = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def _join_audio(chunks: list[np.ndarray], channels: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, channels), np.int16)
    # packed s16 frames come as [1, n * channels]
    return np.concatenate([c.reshape(-1, channels) for c in chunks]).astype(np.int16)


# -- audio analysis ----------------------------------------------------------------------------
WINDOW_S = 0.02
FLOOR_PERCENTILE = 10
LEVEL_PERCENTILE = 90  # a second sounds if its loudest ~100 ms rise above the floor
MIN_RELATIVE_DB = 10.0
ABS_SILENCE_DB = -60.0  # below this nothing sounds, whatever the floor
ABS_LOUD_DB = -30.0  # above this a second sounds even without a quiet floor (a constant drone)


def sound_activity(pcm: np.ndarray, sample_rate: int, seconds: int) -> Activity:
    """RMS energy per second relative to the clip's noise floor.

    The audio is cut into 20 ms windows. The floor is the 10th percentile of all window energies;
    a second's level is the 90th percentile of its windows, so a click or a fade at the second's
    edge does not count as sound, while a sound that fills ~100 ms does. A second is active when
    its level is above -60 dBFS and either >= 10 dB above the floor or louder than -30 dBFS.
    Seconds past the end of the audio are silent.
    """
    x = np.asarray(pcm, dtype=np.float64)
    if x.ndim > 1:
        x = x.mean(axis=1)
    x = x / 32768.0
    win = max(1, int(round(WINDOW_S * sample_rate)))
    n_win = x.shape[0] // win
    energies = (x[: n_win * win].reshape(n_win, win) ** 2).mean(axis=1) if n_win else np.zeros(0)
    db = 10 * np.log10(energies + 1e-12)
    floor = float(np.percentile(db, FLOOR_PERCENTILE)) if db.size else -120.0
    per_sec = int(round(sample_rate / win))
    level, rel, active = [], [], []
    for sec in range(seconds):
        part = db[sec * per_sec:(sec + 1) * per_sec]
        lv = float(np.percentile(part, LEVEL_PERCENTILE)) if part.size >= per_sec // 2 else -120.0
        r = lv - floor
        level.append(round(lv, 2))
        rel.append(round(r, 2))
        active.append(bool(lv > ABS_SILENCE_DB and (r >= MIN_RELATIVE_DB or lv >= ABS_LOUD_DB)))
    return Activity(level, round(floor, 2), rel, active,
                    {"window_s": WINDOW_S, "floor_percentile": FLOOR_PERCENTILE,
                     "level_percentile": LEVEL_PERCENTILE, "min_relative_db": MIN_RELATIVE_DB,
                     "abs_silence_db": ABS_SILENCE_DB, "abs_loud_db": ABS_LOUD_DB})


# -- the stage ---------------------------------------------------------------------------------
GRACE_S = 0.8  # after Ctrl-C, clips in progress get this long to finish (and be recorded) before they stop


@dataclass
class SampleOptions:
    jobs: int = 2
    vggish_weights: Path | None = None
    device: str = "cpu"
    retry_failed: bool = False
    clips: list[str] | None = None  # only these clip ids


@dataclass
class SampleResult:
    total: int = 0
    sampled: int = 0
    skipped: int = 0
    failed: int = 0  # failed in this run plus earlier failures not retried
    embedded: int = 0
    todo: int = 0  # clips this run tried
    failures: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason) of this run


def encode_image(img: np.ndarray, fmt: str) -> bytes:
    """RGB uint8 -> PNG (lossless, fast Up-filter encoder) or JPEG (quality 95)."""
    if fmt == "png":
        from avsbench_tools.pngfast import encode_png

        return encode_png(img)
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SampleError(f"cannot encode a {img.shape} frame as {fmt}")
    return buf.tobytes()


def frame_path(ws: Workspace, clip_id: str, second: int) -> Path:
    return ws.path("frames", clip_id, f"{second}.{ws.recipe.frame_format}")


def audio_paths(ws: Workspace, clip_id: str) -> dict[str, Path]:
    base = ws.path("audio")
    return {"wav": base / f"{clip_id}.wav", "logmel": base / f"{clip_id}.logmel.npy",
            "vggish": base / f"{clip_id}.vggish.npy"}


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _settings(ws: Workspace) -> dict:
    return {"rule": ws.recipe.sampling, "frame_format": ws.recipe.frame_format, "audio_rate": SAMPLE_RATE,
            "version": 1}


def sample_clip(ws: Workspace, clip: Clip, writer: ThreadPoolExecutor | None = None, settings: dict | None = None,
                cancel: Cancel | None = None) -> dict:
    """Sample one clip: write frames, WAV, log-mel and activity, then commit its catalog rows and its
    'done' status in one transaction.

    Frames are encoded on `writer` (a thread pool; one is made if None) while decoding goes on.
    `cancel()` (asked between packets) stops the clip with SampleStopped. A clip that fails or
    stops leaves no file behind: what it wrote is removed before the exception propagates.
    """
    path = ws.path(clip.path)
    if not path.exists():
        raise SampleError(f"clip file missing: {clip.path}")
    settings = settings or _settings(ws)
    seconds = int(clip.seconds)
    fmt = ws.recipe.frame_format
    own = writer is None
    pool = ThreadPoolExecutor(max_workers=1) if own else writer
    pending: dict[int, Future] = {}
    written: list[Path] = []

    def write(f: SampledFrame) -> None:
        if f.second in pending:  # a re-decided second: the earlier write must land first
            pending[f.second].result()
        dst = frame_path(ws, clip.clip_id, f.second)
        written.append(dst)
        pending[f.second] = pool.submit(lambda: atomic_write_bytes(dst, encode_image(f.image, fmt)))

    try:
        dec = decode_clip(path, ws.recipe.sampling, seconds, sink=write, cancel=cancel)
        if dec.pcm is None:
            raise SampleError("no audio stream")
        _check(cancel)
        paths = audio_paths(ws, clip.clip_id)
        written += [paths["wav"], paths["logmel"]]
        atomic_write_bytes(paths["wav"], wav_bytes(dec.pcm, SAMPLE_RATE))
        examples = pad_examples(int16_to_examples(dec.pcm, SAMPLE_RATE), seconds)
        atomic_write_bytes(paths["logmel"], _npy_bytes(examples))
        act = sound_activity(dec.pcm, SAMPLE_RATE, seconds)
        for fut in pending.values():
            fut.result()
        frame_rows = []
        for f in dec.frames:
            h, w = f.image.shape[:2]
            frame_rows.append((clip.clip_id, f.second, f.index, f.pts,
                               ws.rel(frame_path(ws, clip.clip_id, f.second)), w, h))
        info = {"n_frames": dec.n_frames, "fps": dec.fps, "vfr": dec.vfr, "rotation": dec.rotation,
                "audio_seconds": round(dec.pcm.shape[0] / SAMPLE_RATE, 4), "source_rate": dec.source_rate,
                "source_channels": dec.source_channels, "decoded_frames": dec.decoded}
        with deferred_interrupt(), ws.catalog.tx() as db:
            db.execute("DELETE FROM frames WHERE clip_id=?", (clip.clip_id,))
            db.executemany("INSERT INTO frames(clip_id, second, frame_index, pts, path, width, height) "
                           "VALUES(?, ?, ?, ?, ?, ?, ?)", frame_rows)
            db.execute("INSERT INTO audio(clip_id, wav_path, logmel_path, sample_rate, channels, n_examples, "
                       "activity_json, embedding_path) VALUES(?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT(clip_id) DO "
                       "UPDATE SET wav_path=excluded.wav_path, logmel_path=excluded.logmel_path, "
                       "sample_rate=excluded.sample_rate, channels=excluded.channels, "
                       "n_examples=excluded.n_examples, activity_json=excluded.activity_json",
                       (clip.clip_id, ws.rel(paths["wav"]), ws.rel(paths["logmel"]), SAMPLE_RATE,
                        int(dec.pcm.shape[1]), int(examples.shape[0]), json.dumps({**asdict(act), "info": info})))
            write_stage(db, clip.clip_id, "sample", "done", settings=settings)
            write_resolved(db, "sample", clip.clip_id)
    except BaseException:
        for fut in pending.values():  # let frame writes in flight land, then remove everything this clip wrote
            with contextlib.suppress(BaseException):
                fut.result()
        for p in written:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        with contextlib.suppress(OSError):
            ws.path("frames", clip.clip_id).rmdir()  # only if empty
        raise
    finally:
        if own:
            pool.shutdown(wait=True)
    return info


def activity_of(ws: Workspace, clip_id: str) -> Activity | None:
    rows = ws.catalog.query("SELECT activity_json FROM audio WHERE clip_id=?", (clip_id,))
    if not rows or not rows[0][0]:
        return None
    d = json.loads(rows[0][0])
    return Activity(d["level_db"], d["floor_db"], d["relative_db"], d["active"], d.get("params", {}))


def _settle(futs: dict[Future, Clip], stop_now: Callable[[], None], timeout: float) -> None:
    """Wait (bounded) for the clips in progress to finish or stop; a second Ctrl-C stops them at once."""
    end = time.monotonic() + timeout
    while True:
        running = [f for f in futs if not f.done()]
        if not running or time.monotonic() >= end:
            return
        try:
            wait(running, timeout=max(0.0, end - time.monotonic()))
        except KeyboardInterrupt:
            stop_now()


def sample(ws: Workspace, opts: SampleOptions, progress: Progress | None = None) -> SampleResult:
    """Sample every collected clip that is not sampled yet (or whose settings changed).

    Ctrl-C: no new clip starts, clips in progress get GRACE_S to finish (then stop, leaving no file),
    every finished clip is recorded, and Interrupted(done, left) is raised.
    """
    try:
        return _sample(ws, opts, progress or (lambda *a: None))
    except KeyboardInterrupt:  # before or after the clip loop (loading weights, listing clips)
        settings = json.dumps(_settings(ws), sort_keys=True)
        ids = set(opts.clips) if opts.clips else None
        rows = [r for r in ws.catalog.query("SELECT c.clip_id, s.status, s.settings FROM clips c LEFT JOIN "
                                            "stage_status s ON s.clip_id=c.clip_id AND s.stage='sample'")
                if ids is None or r[0] in ids]
        done = sum(1 for r in rows if r[1] == "done" and r[2] == settings)
        raise Interrupted(done, sum(1 for r in rows if r[1] != "failed") - done) from None


def _sample(ws: Workspace, opts: SampleOptions, progress: Progress) -> SampleResult:
    if opts.jobs < 1:
        raise UsageError(f"--jobs {opts.jobs}: must be at least 1")
    clips = ws.catalog.clips()
    if not clips:
        raise UsageError(f"workspace {ws.root} has no clips yet: run avs-tools collect {ws.root} "
                         "--local DIR (or --urls/--csv/--keywords) first")
    if opts.clips:
        wanted = {ws.resolve_clip(c) for c in opts.clips}
        clips = [c for c in clips if c.clip_id in wanted]
    model = None
    if opts.vggish_weights is not None:  # a missing file or an unusable device is an error before any work
        from avsbench_tools.audio.vggish import load_vggish

        model = load_vggish(opts.vggish_weights, opts.device)
    for sub in ("frames", "audio"):  # temporaries of a killed run (the workspace lock says none is running)
        remove_stale_temps(ws.path(sub))
    settings = _settings(ws)
    res = SampleResult(total=len(clips))
    todo = []
    failed_before = 0
    for c in clips:
        st = ws.catalog.stage_of(c.clip_id, "sample")
        if st is not None and st["status"] == "done" and json.loads(st["settings"] or "{}") == settings:
            res.skipped += 1
        elif st is not None and st["status"] == "failed" and not opts.retry_failed:
            failed_before += 1
        else:
            todo.append(c)
    res.todo = len(todo)
    progress("sampling", res.skipped, len(clips), f"{res.skipped} already sampled")
    stop = threading.Event()
    deadline = [0.0]

    def due() -> bool:
        return stop.is_set() and time.monotonic() >= deadline[0]

    def stop_at(delay: float) -> None:
        deadline[0] = time.monotonic() + delay
        stop.set()

    def run_one(c: Clip) -> tuple[str, str]:
        if stop.is_set():
            return "stopped", ""
        try:
            sample_clip(ws, c, writer, settings, cancel=due)
        except SampleStopped:
            return "stopped", ""
        except SampleError as exc:
            reason = str(exc)
            ws.catalog.record_failure("sample", c.clip_id, reason, detail=c.path)
            ws.catalog.set_stage(c.clip_id, "sample", "failed", reason=reason, settings=settings)
            return "failed", reason
        return "done", ""

    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="avs-sample-write")
    pool = ThreadPoolExecutor(max_workers=opts.jobs, thread_name_prefix="avs-sample")
    futs: dict[Future, Clip] = {}

    def tally() -> None:
        res.sampled = res.failed = 0
        res.failures = []
        for f, c in futs.items():
            if f.done() and not f.cancelled() and f.exception() is None:
                kind, reason = f.result()
                res.sampled += kind == "done"
                if kind == "failed":
                    res.failures.append((c.clip_id, reason))
        res.failed = len(res.failures) + failed_before

    try:
        for c in todo:
            futs[pool.submit(run_one, c)] = c
        n = res.skipped
        for fut in as_completed(futs):
            fut.result()  # a bug or a disk error stops the run (below), after the other workers stop
            n += 1
            progress("sampling", n, len(clips), futs[fut].clip_id)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        stop_at(GRACE_S if interrupted else 0.0)
        pool.shutdown(wait=False, cancel_futures=True)
        _settle(futs, lambda: stop_at(0.0), GRACE_S + 3.0)
        if not interrupted:
            raise
        tally()
        left = len(todo) - res.sampled - len(res.failures)
        raise Interrupted(res.skipped + res.sampled, left,
                          f"{len(res.failures)} failed" if res.failures else "") from None
    finally:
        pool.shutdown(wait=True)
        writer.shutdown(wait=True)
    tally()
    if model is not None:
        res.embedded = embed_workspace(ws, opts.vggish_weights, opts.device, progress, loaded=model)
    return res


def embed_workspace(ws: Workspace, weights: Path, device: str = "cpu", progress: Progress | None = None,
                    loaded: tuple | None = None) -> int:
    """128-d VGGish embeddings [T, 128] for every sampled clip that has none from these weights.

    `loaded`: (model, digest) from load_vggish, when the caller loaded them already. Ctrl-C keeps
    every finished embedding and raises Interrupted."""
    from avsbench_tools.audio.vggish import embed, load_vggish

    progress = progress or (lambda *a: None)
    model, digest = loaded if loaded is not None else load_vggish(weights, device)
    device = str(next(model.parameters()).device)
    rows = ws.catalog.query("SELECT a.clip_id, a.logmel_path, a.embedding_path FROM audio a JOIN stage_status s "
                            "ON s.clip_id=a.clip_id AND s.stage='sample' AND s.status='done' ORDER BY a.clip_id")
    n = have = 0
    try:
        for i, r in enumerate(rows):
            out = audio_paths(ws, r["clip_id"])["vggish"]
            marker = f"{ws.rel(out)}#{digest}"
            if r["embedding_path"] == marker and out.exists():
                have += 1
                continue
            ex = np.load(ws.path(r["logmel_path"]))
            emb = embed(model, ex, device)
            with deferred_interrupt():  # the file and its row together
                atomic_write_bytes(out, _npy_bytes(emb.astype(np.float32)))
                with ws.catalog.tx() as db:
                    db.execute("UPDATE audio SET embedding_path=? WHERE clip_id=?", (marker, r["clip_id"]))
            n += 1
            progress("vggish", i + 1, len(rows), r["clip_id"])
    except KeyboardInterrupt:
        raise Interrupted(have + n, len(rows) - have - n, "VGGish embeddings") from None
    return n


def sampled_frames(ws: Workspace, clip_id: str) -> list[dict]:
    """[{second, frame_index, pts, path, width, height}] of a sampled clip, by second."""
    return [dict(r) for r in ws.catalog.query(
        "SELECT second, frame_index, pts, path, width, height FROM frames WHERE clip_id=? ORDER BY second",
        (clip_id,))]
