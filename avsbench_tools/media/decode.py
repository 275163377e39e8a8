"""The one video decoder (PyAV): sampled frames for `sample`, every frame of a range for the trackers.

Two entry points:
  decode_clip(path, rule, seconds)   one pass per clip, no seeking: the packets are read, the frames
                                     each second samples are chosen from their timestamps, and the
                                     decoder skips what no chosen frame depends on; audio at 16 kHz.
  iter_frames(path, start, end)      every frame of [start, end) in display order (the trackers);
                                     `open_video(path)` gives the same with the stream's fps/rotation.
Frame indices are positions in the display-order sequence of decoded frames, the same in both, so a
frame `sample` stored as index k is the k-th frame `iter_frames` yields. Images are RGB uint8 in
display orientation (the stream's rotation applied, like players and ffmpeg do).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsbench_tools.audio.logmel import SAMPLE_RATE
from avsbench_tools.timing import sampled_frame_indices

VFR_TOLERANCE = 0.02  # frame intervals deviating more than 2% from their median mean VFR
DEFAULT_FPS = 25.0  # a stream that states no rate

Cancel = Callable[[], bool]  # True once the decode in progress must stop


class DecodeError(Exception):
    """A file that cannot be decoded; the message is the reason (it goes into the ledger)."""


class DecodeStopped(Exception):
    """`cancel()` said stop (Ctrl-C) before the decode finished; nothing of it is kept."""


def check_cancel(cancel: Cancel | None) -> None:
    """Raise DecodeStopped when `cancel()` says so."""
    if cancel is not None and cancel():
        raise DecodeStopped()


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
class VideoFrame:
    index: int  # position in the decoded sequence (display order)
    time: float  # seconds after the first frame
    image: np.ndarray | None  # RGB uint8 [H, W, 3], display orientation; None where not asked for


# -- frames to sample ---------------------------------------------------------------------------
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


# -- every frame in order -----------------------------------------------------------------------
def _fps(vs) -> float:
    rate = vs.guessed_rate or vs.average_rate
    return float(rate) if rate else DEFAULT_FPS


def _rotation(frame) -> int:
    return int(getattr(frame, "rotation", 0) or 0) % 360


def to_rgb(frame, rotation: int, max_side: int | None = None) -> np.ndarray:
    """A decoded frame as RGB uint8 in display orientation; `max_side`: downscaled (area) to fit."""
    s = 1.0 if max_side is None else min(1.0, max_side / max(frame.width, frame.height))
    if s < 1:
        img = frame.to_ndarray(format="rgb24", width=max(2, int(round(frame.width * s))),
                               height=max(2, int(round(frame.height * s))), interpolation="AREA")
    else:
        img = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


class VideoReader:
    """A clip's video stream decoded frame by frame in display order, every frame (nothing skipped).

    Use as a context manager. `fps` is known on opening; `rotation` and `t0` (the first frame's
    presentation time, s) once the first frame is decoded. Opening or decoding errors are PyAV's
    (av.error.FFmpegError, OSError); a file without a video stream raises DecodeError.
    """

    def __init__(self, path: Path):
        import av

        self.path = Path(path)
        self._c = av.open(str(path))
        if not self._c.streams.video:
            self._c.close()
            raise DecodeError("no video stream")
        self._vs = self._c.streams.video[0]
        self._vs.thread_type = "AUTO"
        self.fps = _fps(self._vs)
        self.rotation = 0
        self.t0: float | None = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._c.close()

    def frames(self, start_index: int = 0, end_index: int | None = None, *, max_side: int | None = None,
               keep: Container[int] | None = None, cancel: Cancel | None = None) -> Iterator[VideoFrame]:
        """The frames [start_index, end_index) of the stream (decoding starts at its beginning).

        Each has an image when `keep` is None or holds its index (`max_side`: downscaled to fit);
        the others are decoded (their time is known) but not converted. Decoding stops after
        end_index. `cancel()` is asked before each frame: True raises DecodeStopped.
        """
        n = 0
        for fr in self._c.decode(self._vs):
            check_cancel(cancel)
            ft = fr.time if fr.time is not None else n / self.fps
            if n == 0:
                self.t0, self.rotation = ft, _rotation(fr)
            if end_index is not None and n >= end_index:
                return
            if n >= start_index:
                img = to_rgb(fr, self.rotation, max_side) if keep is None or n in keep else None
                yield VideoFrame(n, ft - self.t0, img)
            n += 1


def open_video(path: Path) -> VideoReader:
    """A VideoReader on `path` (see there)."""
    return VideoReader(path)


def iter_frames(path: Path, start_index: int = 0, end_index: int | None = None, *, max_side: int | None = None,
                cancel: Cancel | None = None) -> Iterator[VideoFrame]:
    """Every frame of [start_index, end_index) of `path` in display order, as RGB (see VideoReader.frames)."""
    with open_video(path) as v:
        yield from v.frames(start_index, end_index, max_side=max_side, cancel=cancel)


def read_frames(path: Path, max_side: int | None = None) -> tuple[list[np.ndarray], float]:
    """Every frame of `path` as RGB (display orientation, downscaled to fit `max_side`), and the fps."""
    with open_video(path) as v:
        return [f.image for f in v.frames(max_side=max_side)], v.fps


# -- sampling: one pass, skipping what no chosen frame needs -----------------------------------
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
    `cancel()` is asked between packets: True stops the decode with DecodeStopped.
    Raises DecodeError (the reason) for a file that cannot be opened or has no decodable video.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DecodeError(f"cannot open: {exc}") from exc
    with container:
        if not container.streams.video:
            raise DecodeError("no video stream")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        fps = _fps(vs)
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
                check_cancel(cancel)
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
                rotation = _rotation(fr)
                got[fr.pts] = img = to_rgb(fr, rotation)
                if sink is not None:
                    k = index_of[fr.pts]
                    for sec in want[fr.pts]:
                        sink(SampledFrame(sec, k, times[k], img))

    for p in vpk[: last + 1]:
        check_cancel(cancel)
        cc.skip_frame = "DEFAULT" if p.pts in want else "NONREF"
        take(cc.decode(p))
    cc.skip_frame = "DEFAULT"
    take(cc.decode(None))
    if len(got) != len(want):  # a chosen frame did not come out under its timestamp
        return None
    frames = [SampledFrame(sec, k, times[k], got[order[k]]) for sec, k in enumerate(idx)]
    return _Video(frames, len(order), vfr, rotation, float(p0 * tb), decoded)


def _decode_all(path: Path, keep: set[int],
                cancel: Cancel | None = None) -> tuple[list[float], dict[int, np.ndarray], int, float]:
    """Every video frame in decoding output order: relative times, the `keep` ones as RGB, rotation, t0.

    A file that stops decoding part-way keeps what decoded (the rules clamp to the last frame)."""
    import av

    times: list[float] = []
    kept: dict[int, np.ndarray] = {}
    rotation, t0 = 0, 0.0
    try:
        with open_video(path) as v:
            try:
                for f in v.frames(keep=keep, cancel=cancel):
                    times.append(f.time)
                    if f.image is not None:
                        kept[f.index] = f.image
            finally:
                rotation, t0 = v.rotation, v.t0 or 0.0
    except av.error.FFmpegError as exc:
        if not times:
            raise DecodeError(f"cannot decode: {exc}") from exc
    if not times:
        raise DecodeError("no decodable video frames")
    return times, kept, rotation, t0


def _decode_in_order(path: Path, fps: float, rule: str, seconds: int, sink, cancel: Cancel | None = None) -> _Video:
    """The fallback: decode every frame to learn the sequence, then again to keep the chosen ones."""
    times, _, _, _ = _decode_all(path, set(), cancel)
    idx, vfr = choose_frames(times, fps, rule, seconds)
    again, kept, rotation, t0 = _decode_all(path, set(idx), cancel)
    if len(again) != len(times) or not set(idx) <= kept.keys():
        raise DecodeError("decoding is not repeatable")
    frames = [SampledFrame(sec, k, times[k], kept[k]) for sec, k in enumerate(idx)]
    if sink is not None:
        for f in frames:
            sink(f)
    return _Video(frames, len(times), vfr, rotation, t0, 2 * len(times))


# -- audio ---------------------------------------------------------------------------------------
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
                check_cancel(cancel)
            for fr in cc.decode(p):
                if t0 is None and fr.time is not None:
                    t0 = fr.time
                chunks.extend(o.to_ndarray() for o in resampler.resample(fr))
        chunks.extend(o.to_ndarray() for o in resampler.resample(None))
    except av.error.FFmpegError:
        pass  # a damaged tail: keep what decoded
    return _join_audio(chunks, channels), t0


def _join_audio(chunks: list[np.ndarray], channels: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, channels), np.int16)
    # packed s16 frames come as [1, n * channels]
    return np.concatenate([c.reshape(-1, channels) for c in chunks]).astype(np.int16)
