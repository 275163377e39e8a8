"""The task's audio: the clip's 16 kHz WAV from the task's second to the clip's end (issue 22 item 5).

Label Studio 1.23's `<Audio>` player opens at 0 s and no attribute or data field moves it, so push gives each
task an excerpt that starts at its second: the first thing the annotator hears is that second, and the read-only
region of `config.SECOND` marks [0, 1) of it. The clip's whole sound stays in the task's `<Video>`.

An excerpt lives at WS/audio/seconds/<clip>/<second>.wav: under WS/audio, a folder push already gives the server as
a local-files storage (WS/studio is never served: it holds the server's secrets). It is written once (atomically,
following the umask) and rewritten only when its bytes would differ (the clip was sampled again, or a crash left it
short). It carries the clip WAV's modification time as its own: a second push that finds an excerpt of the right
size with its WAV's time, and no newer change of the WAV's inode (ctime: a WAV written or renamed in place after the
excerpt was), neither reads nor writes it; anything else (the clip sampled again, a copy of the workspace that
does not keep times, an excerpt edited by hand) is compared byte for byte again. An excerpt another user owns keeps
its time (only its owner may set it) and is compared each time. An excerpt no pushed task uses any more (its task or project
deleted on the server) is removed by the next push or pull (`prune`; only files that are byte for byte an excerpt
of the clip's WAV: never anything else under that folder).
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
def _clip_pcm(path: str, mtime_ns: int, size: int, changed: tuple = ()):  # (changed: inode and ctime)
    from avsbench_tools.audio.wav import read_wav

    return read_wav(Path(path))


def task_audio(ws, clip_id: str, wav_rel: str | None, second: int, writer=None) -> Excerpt | None:
    """The excerpt of the clip's WAV from `second` to its end, written if missing or different; None when the
    clip has no WAV or the second is past its end (the task then names the whole clip's WAV, if any). writer:
    a function that runs the write later (push's writer thread: the task's JSON needs only the excerpt's path
    and length); None: written before this returns."""
    from avsbench_tools.errors import AvsError

    if not wav_rel:
        return None
    src = ws.abs(wav_rel)
    try:
        st = os.stat(src)
        pcm, sr = _clip_pcm(str(src), st.st_mtime_ns, st.st_size, (st.st_ino, st.st_ctime_ns))
    except (OSError, ValueError, EOFError) as exc:
        raise AvsError(f"clip {clip_id}: its audio {src} cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                       f"run avs-tools sample {ws.root} --clips {clip_id} again") from None
    start = int(second) * sr
    if start >= len(pcm):
        return None
    rel = excerpt_rel(clip_id, second)
    job = _Write(ws.abs(rel), pcm, start, sr, st.st_mtime_ns, st.st_ctime_ns)
    if writer is None:
        job()
    else:
        writer(job)
    return Excerpt(rel, int(second), (len(pcm) - start) / sr)


@dataclass
class _Write:
    """Write the excerpt pcm[start:] (pcm: int16 [N, C]) to dest unless dest already holds exactly those bytes;
    `stamp`: the clip WAV's modification time (ns), given to the excerpt, and `changed` its inode change time (ns)
    (the module doc)."""

    dest: Path
    pcm: object
    start: int
    sr: int
    stamp: int
    changed: int

    def __call__(self) -> None:
        from avsbench_tools.audio.wav import WAV_HEADER, wav_bytes
        from avsbench_tools.fsutil import atomic_path

        size = WAV_HEADER + 2 * (len(self.pcm) - self.start) * self.pcm.shape[1]
        try:
            st = self.dest.stat()
        except OSError:  # none yet (the usual case: push writes it now)
            st = None
        if st is not None and (st.st_size, st.st_mtime_ns) == (size, self.stamp) and st.st_ctime_ns >= self.changed:
            return  # written (or checked) from this very WAV
        body = wav_bytes(self.pcm[self.start:], self.sr)
        try:
            same = st is not None and st.st_size == len(body) and self.dest.read_bytes() == body
        except OSError:
            same = False
        try:
            if not same:  # no fsync (6 ms a file on a loaded disk): a file a crash left short differs, and is written
                with atomic_path(self.dest) as tmp:  # again
                    tmp.write_bytes(body)
            try:
                os.utime(self.dest, ns=(self.stamp, self.stamp))
            except PermissionError:  # another user's excerpt, right as it is: compared again next time
                if not same:
                    raise
        except OSError as exc:
            from avsbench_tools.errors import AvsError

            raise AvsError(f"{self.dest}: the task's audio cannot be written ({exc.strerror or exc})") from None


class Writer:
    """Excerpt writes (`task_audio(..., writer)`) in a thread of their own: file I/O beside push's build thread,
    which needs only each excerpt's path and length. `hold`: the writes wait for `release()` (push releases them
    when its build is ahead of the server, push_build.built's `ahead`: until then the build is what the server waits
    for, and the writes would share the client's CPU with it). `wait()` releases, and
    returns when every write is done, raising the first error; `close()` drops the writes not started (Ctrl-C, an
    error: the next push writes what is missing, push_build.refresh_audio)."""

    def __init__(self, hold: bool = False):
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avs-push-audio")
        self._jobs: list = []
        self._held: list | None = [] if hold else None
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, job) -> None:
        with self._lock:
            if self._closed:  # (a build thread still running after close: its writes are dropped too)
                return
            if self._held is not None:
                self._held.append(job)
            else:
                self._jobs.append(self._pool.submit(job))

    def release(self) -> None:
        with self._lock:
            if self._held and not self._closed:
                self._jobs += [self._pool.submit(job) for job in self._held]
            self._held = None

    def wait(self) -> None:
        self.release()
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for j in jobs:
            j.result()

    def close(self) -> None:
        with self._lock:
            self._closed, self._held = True, None
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Pruned:
    removed: int = 0  # excerpts removed (their task is gone)
    freed: int = 0  # bytes they held
    foreign: int = 0  # files under WS/audio/seconds that are not excerpts of the clip's WAV now: left as they are


def prune(ws) -> Pruned:
    """Remove the excerpts that no pushed task uses (its task deleted on the server, its project gone, the clip no
    longer sampled there): WS/audio/seconds/<clip>/<second>.wav whose (clip, second) no task of any project names.
    Only a file that is byte for byte the excerpt push would write from the clip's WAV now is removed (never a file
    the tool did not write: anything else there is counted in `foreign` and left); a clip folder left empty goes."""
    res = Pruned()
    base = ws.abs("/".join(EXCERPT_DIR))
    try:
        folders = [d for d in os.scandir(base) if d.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return res
    used = ws.catalog.pushed_frames()
    for d in folders:
        for f in os.scandir(d.path):
            stem, dot, ext = f.name.partition(".")
            if not (f.is_file(follow_symlinks=False) and stem.isdigit() and dot and ext == "wav"):
                res.foreign += 1
                continue
            if (d.name, int(stem)) in used:
                continue
            if not _is_excerpt(ws, d.name, int(stem), Path(f.path)):
                res.foreign += 1
                continue
            size = f.stat(follow_symlinks=False).st_size
            os.unlink(f.path)
            res.removed, res.freed = res.removed + 1, res.freed + size
        try:
            os.rmdir(d.path)  # only when empty
        except OSError:
            pass
    return res


def _is_excerpt(ws, clip_id: str, second: int, path: Path) -> bool:
    """Whether the file is byte for byte the excerpt push writes for (clip, second) from the clip's WAV now."""
    from avsbench_tools.audio.wav import wav_bytes

    audio = ws.catalog.audio(clip_id) if ws.catalog.clip(clip_id) is not None else None
    if audio is None or not audio.wav_path:
        return False
    try:
        src = ws.abs(audio.wav_path)
        st = os.stat(src)
        pcm, sr = _clip_pcm(str(src), st.st_mtime_ns, st.st_size, (st.st_ino, st.st_ctime_ns))
        body = wav_bytes(pcm[int(second) * sr:], sr)
        return path.stat().st_size == len(body) and path.read_bytes() == body
    except (OSError, ValueError, EOFError):
        return False
