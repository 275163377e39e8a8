"""The task's audio: the clip's 16 kHz WAV from the task's second to the clip's end (issue 22 item 5).

Label Studio 1.23's `<Audio>` player opens at 0 s and no attribute or data field moves it, so push gives each
task an excerpt that starts at its second: the first thing the annotator hears is that second, and the read-only
region of `config.SECOND` marks [0, 1) of it. The clip's whole sound stays in the task's `<Video>`.

An excerpt lives at WS/audio/seconds/<clip>/<second>.wav: under WS/audio, a folder push already gives the server as
a local-files storage (WS/studio is never served: it holds the server's secrets). It is written once (atomically,
following the umask) and rewritten only when its bytes would differ (the clip was sampled again, or a crash left it
short): a second push reads it and writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

EXCERPT_DIR = ("audio", "seconds")  # below the workspace


@dataclass(frozen=True)
class Excerpt:
    rel: str  # workspace-relative path of the excerpt's WAV
    start: int  # the clip's second it starts at
    duration: float  # seconds it holds (the clip's end minus start)


def excerpt_rel(clip_id: str, second: int) -> str:
    return "/".join((*EXCERPT_DIR, clip_id, f"{int(second)}.wav"))


@lru_cache(maxsize=4)
def _clip_pcm(path: str, mtime_ns: int, size: int):
    from avsbench_tools.audio.wav import read_wav

    return read_wav(Path(path))


def task_audio(ws, clip_id: str, wav_rel: str | None, second: int) -> Excerpt | None:
    """The excerpt of the clip's WAV from `second` to its end, written if missing or different; None when the
    clip has no WAV or the second is past its end (the task then names the whole clip's WAV, if any)."""
    from avsbench_tools.audio.wav import wav_bytes
    from avsbench_tools.errors import AvsError
    from avsbench_tools.fsutil import atomic_path

    if not wav_rel:
        return None
    src = ws.abs(wav_rel)
    try:
        st = os.stat(src)
        pcm, sr = _clip_pcm(str(src), st.st_mtime_ns, st.st_size)
    except (OSError, ValueError, EOFError) as exc:
        raise AvsError(f"clip {clip_id}: its audio {src} cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                       f"run avs-tools sample {ws.root} --clips {clip_id} again") from None
    start = int(second) * sr
    if start >= len(pcm):
        return None
    body = wav_bytes(pcm[start:], sr)
    rel = excerpt_rel(clip_id, second)
    dest = ws.abs(rel)
    try:
        same = dest.stat().st_size == len(body) and dest.read_bytes() == body
    except OSError:
        same = False
    if not same:  # no fsync (6 ms a file on a loaded disk): a file a crash left short differs, and is written again
        with atomic_path(dest) as tmp:
            tmp.write_bytes(body)
    return Excerpt(rel, int(second), (len(pcm) - start) / sr)
