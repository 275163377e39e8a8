"""Sampling one clip: decode once (media.decode), write its frames, WAV, log-mel and activity, record it.

Sampled frames are encoded (PNG/JPEG) on a worker thread while decoding goes on. Files are written
to temporary names and renamed; the catalog rows of a clip are committed in one transaction after
its files exist, so a killed run leaves either a finished clip or nothing.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from avsbench_tools.audio.activity import sound_activity
from avsbench_tools.audio.logmel import SAMPLE_RATE, int16_to_examples, pad_examples
from avsbench_tools.audio.wav import wav_bytes
from avsbench_tools.catalog import AudioRecord, Clip, Frame
from avsbench_tools.fsutil import atomic_write_bytes
from avsbench_tools.media.decode import (
    Cancel,
    DecodeError,
    DecodeStopped,
    SampledFrame,
    check_cancel,
    decode_clip,
)
from avsbench_tools.sample.outputs import audio_paths, frame_path, npy_bytes
from avsbench_tools.workspace import Workspace, deferred_interrupt

JPEG_QUALITY = 95

SampleStopped = DecodeStopped  # the run was interrupted before this clip finished; nothing of it is kept


class SampleError(DecodeError):
    """A clip that cannot be sampled; the message is the ledger reason (decode errors are the same kind)."""


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


def sample_settings(ws: Workspace) -> dict:
    """What a sampled clip depends on; a clip sampled with other settings is sampled again."""
    return {"rule": ws.recipe.sampling, "frame_format": ws.recipe.frame_format, "audio_rate": SAMPLE_RATE,
            "version": 1}


def sample_clip(ws: Workspace, clip: Clip, writer: ThreadPoolExecutor | None = None, settings: dict | None = None,
                cancel: Cancel | None = None) -> dict:
    """Sample one clip: write frames, WAV, log-mel and activity, then commit its catalog rows and its
    'done' status in one transaction.

    Frames are encoded on `writer` (a thread pool; one is made if None) while decoding goes on.
    `cancel()` (asked between packets) stops the clip with SampleStopped. A clip that fails
    (DecodeError/SampleError) or stops leaves no file behind: what it wrote is removed before the
    exception propagates.
    """
    path = ws.path(clip.path)
    if not path.exists():
        raise SampleError(f"clip file missing: {clip.path}")
    settings = settings or sample_settings(ws)
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
        check_cancel(cancel)
        paths = audio_paths(ws, clip.clip_id)
        written += [paths["wav"], paths["logmel"]]
        atomic_write_bytes(paths["wav"], wav_bytes(dec.pcm, SAMPLE_RATE))
        examples = pad_examples(int16_to_examples(dec.pcm, SAMPLE_RATE), seconds)
        atomic_write_bytes(paths["logmel"], npy_bytes(examples))
        act = sound_activity(dec.pcm, SAMPLE_RATE, seconds)
        for fut in pending.values():
            fut.result()
        frames = [Frame(clip.clip_id, f.second, f.index, f.pts, ws.rel(frame_path(ws, clip.clip_id, f.second)),
                        f.image.shape[1], f.image.shape[0]) for f in dec.frames]
        info = {"n_frames": dec.n_frames, "fps": dec.fps, "vfr": dec.vfr, "rotation": dec.rotation,
                "audio_seconds": round(dec.pcm.shape[0] / SAMPLE_RATE, 4), "source_rate": dec.source_rate,
                "source_channels": dec.source_channels, "decoded_frames": dec.decoded}
        audio = AudioRecord(clip.clip_id, ws.rel(paths["wav"]), ws.rel(paths["logmel"]), SAMPLE_RATE,
                            int(dec.pcm.shape[1]), int(examples.shape[0]), {**act.to_dict(), "info": info})
        with deferred_interrupt():  # frames, audio and 'done' in one transaction (the files exist already)
            ws.catalog.save_sample(clip.clip_id, frames, audio, settings)
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
