"""sample: the frames and audio that annotation and export use, decoded once per clip.

For each clip: one frame per second by the recipe's rule (AVSBench: the frame near the end of the
second, `int(l*fps + 15/16*fps)`; Ref-AVS: the first frame of the second, `ceil(l*fps)`), stored at
source resolution with its presentation time; a 16 kHz 16-bit WAV; VGGish log-mel examples
[T, 1, 96, 64]; per-second sound activity; optionally VGGish embeddings [T, 128].

One demux pass decodes video and audio together; no seeking. Sampled frames are encoded (PNG/JPEG)
on a worker thread while decoding goes on. Files are written to temporary names and renamed; the
catalog rows of a clip are committed in one transaction after its files exist, so a killed run
leaves either a finished clip or nothing, and a re-run skips finished clips.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avsbench_tools.audio.logmel import SAMPLE_RATE, int16_to_examples, pad_examples
from avsbench_tools.audio.wav import wav_bytes
from avsbench_tools.catalog import Clip
from avsbench_tools.errors import UsageError
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.timing import sampled_frame_indices
from avsbench_tools.workspace import Workspace

Progress = Callable[[str, int, int, str], None]

JPEG_QUALITY = 95
VFR_TOLERANCE = 0.02  # frame intervals deviating more than 2% from their median mean VFR


class SampleError(Exception):
    """A clip that cannot be sampled; the message is the ledger reason."""


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


def decode_clip(path: Path, rule: str, seconds: int, with_audio: bool = True,
                sink: Callable[[SampledFrame], None] | None = None) -> DecodedClip:
    """Decode `path` once: the sampled frames (display orientation) and the audio at 16 kHz int16.

    Constant-frame-rate clips use the official index rules on the decoded sequence. For variable
    frame rate the same rules are applied to presentation times (for constant rate both agree).
    `sink(frame)` sees each sampled frame as soon as it is decoded (so it can be written while
    decoding goes on); a second whose choice changes at the end (a clamp, or a VFR clip) is passed
    again, so the last call per second is final. The returned frames are the final ones.
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
        idx_targets = sampled_frame_indices(rule, fps, 10**9, seconds)
        wanted_idx = {}  # index -> [seconds]
        for sec, k in enumerate(idx_targets):
            wanted_idx.setdefault(k, []).append(sec)
        time_targets = _targets_by_time(rule, seconds)
        streams = [vs]
        ast = container.streams.audio[0] if (with_audio and container.streams.audio) else None
        resampler = None
        if ast is not None:
            streams.append(ast)
            src_ch = ast.codec_context.channels or 2
            resampler = av.AudioResampler(format="s16", layout="mono" if src_ch == 1 else "stereo",
                                          rate=SAMPLE_RATE)
        kept: dict[int, tuple[float, av.VideoFrame]] = {}
        times: list[float] = []
        last: tuple[int, float, av.VideoFrame] | None = None
        # VFR candidates: for the end rule the latest frame at or before each target, for the first
        # rule the first frame at or after it (kept as decoded frames; converted only if chosen)
        by_time: dict[int, tuple[int, float, av.VideoFrame]] = {}
        t0 = None
        audio_chunks: list[np.ndarray] = []
        audio_t0 = None
        rotation = 0
        try:
            for packet in container.demux(*streams):
                if packet.stream.type == "video":
                    for frame in packet.decode():
                        ft = frame.time if frame.time is not None else len(times) / fps
                        if t0 is None:
                            t0 = ft
                            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
                        rel = ft - t0
                        i = len(times)
                        times.append(rel)
                        if i in wanted_idx:
                            img = _to_rgb(frame, rotation)
                            kept[i] = (rel, img)
                            if sink is not None:
                                for sec in wanted_idx[i]:
                                    sink(SampledFrame(sec, i, float(rel), img))
                        for j, target in enumerate(time_targets):
                            if rule == "end-of-second":
                                if rel <= target + 1e-6:
                                    by_time[j] = (i, rel, frame)
                            elif rel >= target - 1e-6 and j not in by_time:
                                by_time[j] = (i, rel, frame)
                        last = (i, rel, frame)
                elif resampler is not None:
                    for frame in packet.decode():
                        if audio_t0 is None and frame.time is not None:
                            audio_t0 = frame.time
                        for out in resampler.resample(frame):
                            audio_chunks.append(out.to_ndarray())
        except av.error.FFmpegError as exc:
            if not times:
                raise SampleError(f"cannot decode: {exc}") from exc
            # a truncated tail: keep what decoded (the frame rule clamps to the last frame)
        if not times or last is None:
            raise SampleError("no decodable video frames")
        if resampler is not None:
            try:
                for out in resampler.resample(None):
                    audio_chunks.append(out.to_ndarray())
            except av.error.FFmpegError:
                pass
        n = len(times)
        deltas = np.diff(np.asarray(times)) if n > 2 else np.array([1 / fps])
        med = float(np.median(deltas)) if deltas.size else 1 / fps
        vfr = bool(deltas.size and med > 0 and np.max(np.abs(deltas - med)) > VFR_TOLERANCE * med)
        frames = []
        if vfr:
            for sec in range(seconds):
                k, rel, frame = by_time.get(sec, last)
                frames.append(SampledFrame(sec, k, float(rel), _to_rgb(frame, rotation)))
        else:
            final = sampled_frame_indices(rule, fps, n, seconds)
            for sec, k in enumerate(final):
                if k in kept:
                    frames.append(SampledFrame(sec, k, float(kept[k][0]), kept[k][1]))
                else:
                    frames.append(SampledFrame(sec, k, float(last[1]), _to_rgb(last[2], rotation)))
        if sink is not None:
            for f in frames:
                if vfr or f.index not in kept:
                    sink(f)
        pcm = None
        if ast is not None:
            pcm = _join_audio(audio_chunks, 1 if ast.codec_context.channels == 1 else 2)
            # align audio to the video's first frame, and cut at the clip length
            if audio_t0 is not None and t0 is not None and audio_t0 - t0 > 1 / SAMPLE_RATE:
                pad = int(round((audio_t0 - t0) * SAMPLE_RATE))
                pcm = np.concatenate([np.zeros((pad, pcm.shape[1]), np.int16), pcm])
            pcm = pcm[: seconds * SAMPLE_RATE]
        return DecodedClip(frames, n, fps, vfr, rotation, pcm,
                           ast.codec_context.sample_rate if ast is not None else None,
                           ast.codec_context.channels if ast is not None else None)


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
    failed: int = 0
    embedded: int = 0


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


def sample_clip(ws: Workspace, clip: Clip, writer: ThreadPoolExecutor | None = None) -> dict:
    """Sample one clip: write frames, WAV, log-mel and activity, then commit its catalog rows.

    Frames are encoded on `writer` (a thread pool; one is made if None) while decoding goes on.
    """
    path = ws.path(clip.path)
    if not path.exists():
        raise SampleError(f"clip file missing: {clip.path}")
    seconds = int(clip.seconds)
    fmt = ws.recipe.frame_format
    own = writer is None
    pool = ThreadPoolExecutor(max_workers=1) if own else writer
    pending: dict[int, Future] = {}

    def write(f: SampledFrame) -> None:
        if f.second in pending:  # a re-decided second: the earlier write must land first
            pending[f.second].result()
        dst = frame_path(ws, clip.clip_id, f.second)
        pending[f.second] = pool.submit(lambda: atomic_write_bytes(dst, encode_image(f.image, fmt)))

    try:
        dec = decode_clip(path, ws.recipe.sampling, seconds, sink=write)
        if dec.pcm is None:
            raise SampleError("no audio stream")
        paths = audio_paths(ws, clip.clip_id)
        atomic_write_bytes(paths["wav"], wav_bytes(dec.pcm, SAMPLE_RATE))
        examples = pad_examples(int16_to_examples(dec.pcm, SAMPLE_RATE), seconds)
        atomic_write_bytes(paths["logmel"], _npy_bytes(examples))
        act = sound_activity(dec.pcm, SAMPLE_RATE, seconds)
        for fut in pending.values():
            fut.result()
    finally:
        if own:
            pool.shutdown(wait=True)
    frame_rows = []
    for f in dec.frames:
        h, w = f.image.shape[:2]
        frame_rows.append((clip.clip_id, f.second, f.index, f.pts,
                           ws.rel(frame_path(ws, clip.clip_id, f.second)), w, h))
    info = {"n_frames": dec.n_frames, "fps": dec.fps, "vfr": dec.vfr, "rotation": dec.rotation,
            "audio_seconds": round(dec.pcm.shape[0] / SAMPLE_RATE, 4), "source_rate": dec.source_rate,
            "source_channels": dec.source_channels}
    with ws.catalog.tx() as db:
        db.execute("DELETE FROM frames WHERE clip_id=?", (clip.clip_id,))
        db.executemany("INSERT INTO frames(clip_id, second, frame_index, pts, path, width, height) "
                       "VALUES(?, ?, ?, ?, ?, ?, ?)", frame_rows)
        db.execute("INSERT INTO audio(clip_id, wav_path, logmel_path, sample_rate, channels, n_examples, "
                   "activity_json, embedding_path) VALUES(?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT(clip_id) DO UPDATE "
                   "SET wav_path=excluded.wav_path, logmel_path=excluded.logmel_path, "
                   "sample_rate=excluded.sample_rate, channels=excluded.channels, n_examples=excluded.n_examples, "
                   "activity_json=excluded.activity_json",
                   (clip.clip_id, ws.rel(paths["wav"]), ws.rel(paths["logmel"]), SAMPLE_RATE,
                    int(dec.pcm.shape[1]), int(examples.shape[0]), json.dumps({**asdict(act), "info": info})))
    return info


def activity_of(ws: Workspace, clip_id: str) -> Activity | None:
    rows = ws.catalog.query("SELECT activity_json FROM audio WHERE clip_id=?", (clip_id,))
    if not rows or not rows[0][0]:
        return None
    d = json.loads(rows[0][0])
    return Activity(d["level_db"], d["floor_db"], d["relative_db"], d["active"], d.get("params", {}))


def sample(ws: Workspace, opts: SampleOptions, progress: Progress | None = None) -> SampleResult:
    """Sample every collected clip that is not sampled yet (or whose settings changed)."""
    progress = progress or (lambda *a: None)
    clips = ws.catalog.clips()
    if opts.clips:
        known = {c.clip_id for c in clips}
        missing = [c for c in opts.clips if c not in known]
        if missing:
            raise UsageError(f"no clip {missing[0]!r} in {ws.root}")
        clips = [c for c in clips if c.clip_id in set(opts.clips)]
    settings = _settings(ws)
    res = SampleResult(total=len(clips))
    todo = []
    for c in clips:
        st = ws.catalog.stage_of(c.clip_id, "sample")
        if st is not None and st["status"] == "done" and json.loads(st["settings"] or "{}") == settings:
            res.skipped += 1
        elif st is not None and st["status"] == "failed" and not opts.retry_failed:
            res.failed += 1
        else:
            todo.append(c)
    done = res.skipped
    progress("sampling", done, len(clips), f"{res.skipped} already sampled")
    writer = ThreadPoolExecutor(max_workers=2)
    try:
        with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
            futs = {pool.submit(sample_clip, ws, c, writer): c for c in todo}
            for fut in as_completed(futs):
                c = futs[fut]
                try:
                    fut.result()
                except SampleError as exc:
                    reason = str(exc)
                    ws.catalog.record_failure("sample", c.clip_id, reason, detail=c.path)
                    ws.catalog.set_stage(c.clip_id, "sample", "failed", reason=reason, settings=settings)
                    res.failed += 1
                else:
                    ws.catalog.set_stage(c.clip_id, "sample", "done", settings=settings)
                    ws.catalog.resolve_failure("sample", c.clip_id)
                    res.sampled += 1
                done += 1
                progress("sampling", done, len(clips), c.clip_id)
    finally:
        writer.shutdown(wait=True)
    if opts.vggish_weights is not None:
        res.embedded = embed_workspace(ws, opts.vggish_weights, opts.device, progress)
    return res


def embed_workspace(ws: Workspace, weights: Path, device: str = "cpu", progress: Progress | None = None) -> int:
    """128-d VGGish embeddings [T, 128] for every sampled clip that has none from these weights."""
    from avsbench_tools.audio.vggish import embed, load_vggish

    progress = progress or (lambda *a: None)
    model, digest = load_vggish(weights, device)
    rows = ws.catalog.query("SELECT a.clip_id, a.logmel_path, a.embedding_path FROM audio a JOIN stage_status s "
                            "ON s.clip_id=a.clip_id AND s.stage='sample' AND s.status='done' ORDER BY a.clip_id")
    n = 0
    for i, r in enumerate(rows):
        out = audio_paths(ws, r["clip_id"])["vggish"]
        marker = f"{ws.rel(out)}#{digest}"
        if r["embedding_path"] == marker and out.exists():
            continue
        ex = np.load(ws.path(r["logmel_path"]))
        emb = embed(model, ex, device)
        atomic_write_bytes(out, _npy_bytes(emb.astype(np.float32)))
        with ws.catalog.tx() as db:
            db.execute("UPDATE audio SET embedding_path=? WHERE clip_id=?", (marker, r["clip_id"]))
        n += 1
        progress("vggish", i + 1, len(rows), r["clip_id"])
    return n


def sampled_frames(ws: Workspace, clip_id: str) -> list[dict]:
    """[{second, frame_index, pts, path, width, height}] of a sampled clip, by second."""
    return [dict(r) for r in ws.catalog.query(
        "SELECT second, frame_index, pts, path, width, height FROM frames WHERE clip_id=? ORDER BY second",
        (clip_id,))]
