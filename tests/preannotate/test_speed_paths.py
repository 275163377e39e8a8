"""The GPU-speed paths of grounded-sam give the CPU single-frame fp32 results: batched Grounding DINO and
SAM, preprocessing and mask post-processing on the device, bf16 autocast; the frame loader and the
storing thread; Ctrl-C with both running.

Stated tolerances (tiny random-weight models from tests/tiny_models.py):
- batched vs single frame, and ours vs the processors' own CPU path (fp32): boxes within 1e-3 px, scores
  within 1e-5, masks differ in at most 0.1% of their pixels (only the summation order differs).
- bf16 vs fp32: bf16 keeps 8 mantissa bits, and random weights make Grounding DINO's query selection flip
  on near-ties, so boxes are matched rather than compared by index: at least 75% of the fp32 boxes have a
  bf16 box of the same category within 2% of the frame's longer side, with median score difference <= 0.02;
  SAM masks for the same boxes: mean IoU >= 0.8 and at least 90% of pixels agree.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from avsbench_tools.collect import CollectOptions, collect
from avsbench_tools.masks import iou
from avsbench_tools.preannotate.prefetch import Behind, Prefetcher
from avsbench_tools.sample import SampleOptions, sample
from avsbench_tools.synth import SynthParams, render_clip
from avsbench_tools.workspace import init_workspace
from tests.helpers import cli_here
from tests.helpers.interrupt import start_cli, wait_for
from tests.helpers.tiny_models import tiny_dino, tiny_hf_sam

torch = pytest.importorskip("torch")  # the models extra
PROMPTS = {"guitar": "red circle", "dog": "orange triangle"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    from avsbench_tools.preannotate.models import load_dino, load_sam

    d = tmp_path_factory.mktemp("speed-models")
    paths = {"dino": tiny_dino(d / "dino"), "sam": tiny_hf_sam(d / "sam")}
    return {**paths, "dino_h": load_dino(str(paths["dino"]), "cpu"), "sam_h": load_sam(str(paths["sam"]), "cpu")}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    clip = render_clip(SynthParams(clips=1, seconds=5, width=160, height=120, fps=1, seed=3), 0)
    return [np.ascontiguousarray(f) for f in clip.frames[:5]]


def _detect(dino, frames, batch_size, precision):
    from avsbench_tools.preannotate.batching import detect_frames

    return detect_frames(dino, frames, [PROMPTS] * len(frames), list(range(len(frames))), 0.0, 0.0, batch_size,
                         precision)


def _masks(sam, frames, boxes, batch_size, precision):
    from avsbench_tools.preannotate.batching import Segmenter

    return Segmenter(sam, batch_size, precision).masks(dict(enumerate(frames)), boxes)


def _assert_same_dets(a, b):
    assert [len(x) for x in a] == [len(x) for x in b] and sum(map(len, a)) > 0
    for xa, xb in zip(a, b, strict=True):
        for p, q in zip(xa, xb, strict=True):
            assert p.category == q.category and p.box == pytest.approx(q.box, abs=1e-3)
            assert p.score == pytest.approx(q.score, abs=1e-5)


def _assert_same_masks(a, b):
    for s in a:
        (ma, sa), (mb, sb) = a[s], b[s]
        assert ma.shape == mb.shape and ma.dtype == bool and mb.dtype == bool
        assert np.count_nonzero(ma != mb) <= 0.001 * ma.size
        np.testing.assert_allclose(sa, sb, atol=1e-5)


def test_batched_and_device_paths_equal_the_processors_single_frame_path(tiny, frames):
    single = [tiny["dino_h"].detect(f, PROMPTS, s, 0.0, 0.0) for s, f in enumerate(frames)]  # the processor, CPU
    _assert_same_dets(_detect(tiny["dino_h"], frames, 1, "fp32"), single)
    _assert_same_dets(_detect(tiny["dino_h"], frames, 3, "fp32"), single)  # 3 + 2 frames per forward pass
    boxes = {s: [d.box for d in dets[:4]] for s, dets in enumerate(single)}
    boxes[4] = boxes[4][:1]  # frames with different box counts share a mask-decoder pass
    sam = tiny["sam_h"]
    reference = {}
    for s, f in enumerate(frames):  # SamProcessor preprocessing and post_process_masks on the CPU, best of K
        sam.set_image(f)
        m, sc = sam.predict(boxes[s])
        k = np.argmax(sc, axis=1)
        reference[s] = (m[np.arange(len(k)), k], sc[np.arange(len(k)), k])
    before = sam.n_embeddings
    one = _masks(sam, frames, boxes, 1, "fp32")
    three = _masks(sam, frames, boxes, 3, "fp32")
    assert sam.n_embeddings - before == 10  # each path embedded each frame once
    _assert_same_masks(one, reference)
    _assert_same_masks(three, reference)
    assert all(one[s][0].shape == (len(boxes[s]), 120, 160) for s in boxes)


def _matched(a, b, tol_px):
    """(fraction of a's boxes with a same-category box in b within tol_px, the score differences of those)."""
    n, diffs = 0, []
    for xa, xb in zip(a, b, strict=True):
        for p in xa:
            near = [abs(p.score - q.score) for q in xb if q.category == p.category
                    and max(abs(u - v) for u, v in zip(p.box, q.box, strict=True)) <= tol_px]
            if near:
                diffs.append(min(near))
        n += len(xa)
    return len(diffs) / max(1, n), diffs


def _assert_bf16_close(fp32_dets, bf16_dets, fp32_masks, bf16_masks, side: int):
    frac, diffs = _matched(fp32_dets, bf16_dets, 0.02 * side)
    assert frac >= 0.75 and float(np.median(diffs)) <= 0.02, (frac, diffs)
    ious = [iou(p, q) for s in fp32_masks for p, q in zip(fp32_masks[s][0], bf16_masks[s][0], strict=True)]
    agree = np.mean([np.mean(p == q) for s in fp32_masks for p, q in zip(fp32_masks[s][0], bf16_masks[s][0],
                                                                           strict=True)])
    assert ious and float(np.mean(ious)) >= 0.8 and agree >= 0.9, (ious, agree)


def test_bf16_autocast_matches_fp32_within_tolerance(tiny, frames):
    """On the CPU here (autocast works there too; the stage refuses it on a CPU only because it is slower)."""
    fp32 = _detect(tiny["dino_h"], frames, 1, "fp32")
    bf16 = _detect(tiny["dino_h"], frames, 4, "bf16")
    scores32 = [d.score for x in fp32 for d in x]
    assert scores32 != [d.score for x in bf16 for d in x], "bf16 gave bit-identical scores: autocast did not take effect"
    boxes = {s: [d.box for d in dets[:4]] for s, dets in enumerate(fp32)}
    m32 = _masks(tiny["sam_h"], frames, boxes, 1, "fp32")
    m16 = _masks(tiny["sam_h"], frames, boxes, 4, "bf16")
    assert any(not np.array_equal(m32[s][1], m16[s][1]) for s in boxes)
    _assert_bf16_close(fp32, bf16, m32, m16, max(frames[0].shape[:2]))


def test_bf16_is_refused_on_the_cpu_in_one_line(tmp_path, tiny, sampled):
    ws = tmp_path / "ws"
    shutil.copytree(sampled, ws)
    r = cli_here("preannotate", ws, "-q", "--dino", tiny["dino"], "--sam", tiny["sam"], "--device", "cpu",
                "--precision", "bf16")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "--precision bf16 needs a CUDA device" in lines[0], r.stderr
    r = cli_here("preannotate", ws, "-q", "--backend", "motion", "--precision", "bf16", "--max-objects", "2",
                "--clip", _first_clip(ws), check=True)
    assert "--precision, --max-objects have no effect with the motion backend" in r.stderr


def test_cli_defaults_are_the_options_defaults():
    import inspect

    from avsbench_tools.cli.preannotate import preannotate as command
    from avsbench_tools.preannotate import PreannotateOptions

    params = inspect.signature(command).parameters
    defaults = PreannotateOptions()
    for name in ("batch_size", "precision", "nms_iou", "max_objects", "min_area", "box_threshold", "text_threshold"):
        assert params[name].default == getattr(defaults, name), name


# -- the background loader ---------------------------------------------------------------------------
def test_prefetcher_loads_ahead_in_order_and_hands_errors_to_their_item():
    """The loader runs ahead: while the consumer holds item i, the load of item i+1 starts (waited for as an
    event, not timed: a loaded machine is slower, never wrong)."""
    started: list[int] = []
    loading = [threading.Event() for _ in range(6)]

    def load(i):
        started.append(i)
        loading[i].set()
        time.sleep(0.05)
        if i == 2:
            raise FileNotFoundError(f"frame {i} is missing")
        return i * 10

    got = []
    with Prefetcher(range(6), load, depth=2) as items:
        for item, value, error in items:
            got.append((item, value, type(error).__name__ if error else None))
            if item + 1 < 6:  # the consumer's own work overlaps the next load
                assert loading[item + 1].wait(60), f"item {item + 1} was not loaded while {item} was worked on"
    assert got == [(0, 0, None), (1, 10, None), (2, None, "FileNotFoundError"), (3, 30, None), (4, 40, None),
                   (5, 50, None)]
    assert started == list(range(6))
    assert not [t for t in threading.enumerate() if t.name == "avs-prefetch"]


def test_prefetchers_chain_so_loading_proposing_and_storing_overlap():
    """Three stages overlap: while item k is being stored, item k+1 is being proposed and item k+2 loaded
    (waited for as events, not timed)."""
    loading = [threading.Event() for _ in range(6)]
    proposing = [threading.Event() for _ in range(6)]

    def load(i):
        loading[i].set()
        time.sleep(0.05)
        if i == 1:
            raise OSError("unreadable frame")
        return i

    def propose(loaded):
        item, value, error = loaded
        proposing[item].set()
        if error is not None:
            raise error
        time.sleep(0.05)
        return value * 2

    got = []
    with Prefetcher(range(6), load, 2, "t-frames") as loaded, Prefetcher(loaded, propose, 1, "t-models") as proposed:
        for (item, _, _), value, error in proposed:
            # storing item: the next one is proposed and the one after loaded meanwhile
            if item + 1 < 6:
                assert proposing[item + 1].wait(60), f"item {item + 1} not proposed while {item} was stored"
            if item + 2 < 6:
                assert loading[item + 2].wait(60), f"item {item + 2} not loaded while {item} was stored"
            got.append((item, value, str(error) if error else None))
    assert got == [(0, 0, None), (1, None, "unreadable frame"), (2, 4, None), (3, 6, None), (4, 8, None), (5, 10, None)]


def test_prefetcher_stops_its_thread_when_the_consumer_stops_early():
    def load(i):
        time.sleep(0.02)
        return i

    with pytest.raises(KeyboardInterrupt):
        with Prefetcher(range(1000), load, depth=2) as items:
            for item, _, _ in items:
                if item == 3:
                    raise KeyboardInterrupt  # as Ctrl-C in the model call would
    for t in [t for t in threading.enumerate() if t.name == "avs-prefetch"]:
        t.join(30)  # the thread ends by itself (waited for, not given a fixed 0.1 s: a loaded machine is slower)
    assert not [t for t in threading.enumerate() if t.name == "avs-prefetch"]
    with Prefetcher([1, 2], None) as items:  # no loader: no thread, items pass through
        assert list(items) == [(1, None, None), (2, None, None)]


def test_storing_runs_one_item_behind_and_its_errors_reach_the_caller():
    """put() returns while its item is still being stored (the caller goes on with the next one) and waits for
    the item before; held by events, not timed: each store waits for its gate, opened by the test."""
    reported, stored = [], []
    storing = [threading.Event() for _ in range(5)]
    gate = [threading.Event() for _ in range(5)]

    def store(i):
        storing[i].set()
        assert gate[i].wait(60)
        if i == 3:
            raise OSError("disk full")
        stored.append(i)
        return i

    behind = Behind(lambda r: reported.append((r, threading.current_thread() is threading.main_thread())))
    for i in range(3):
        behind.put(store, i)  # waits for the item before (its gate was opened below)
        assert stored == list(range(i))  # the item before is stored, this one not yet: put() did not wait for it
        assert storing[i].wait(60)  # this item is being stored on the other thread while the caller goes on
        assert reported == [(k, True) for k in range(i)]
        gate[i].set()
    behind.wait()
    assert stored == [0, 1, 2]
    assert reported == [(0, True), (1, True), (2, True)]  # reported on the caller's thread
    gate[3].set()
    behind.put(store, 3)
    with pytest.raises(OSError, match="disk full"):
        behind.wait()
    # a Ctrl-C while an item is being stored: the caller waits for it, the item is stored whole
    with pytest.raises(KeyboardInterrupt):
        try:
            behind.put(store, 4)
            assert storing[4].wait(60)  # the Ctrl-C comes while item 4 is being stored
            raise KeyboardInterrupt
        finally:
            gate[4].set()
            behind.wait()
    assert stored[-1] == 4


# -- the stage with its loader and storing threads: Ctrl-C ---------------------------------------------------------
@pytest.fixture(scope="module")
def sampled(tmp_path_factory, world_ms3) -> Path:
    d = tmp_path_factory.mktemp("speed")
    ws, _ = init_workspace(d / "ws", str(world_ms3 / "recipe.toml"))
    collect(ws, CollectOptions(local=world_ms3 / "videos", any_license=True))
    sample(ws, SampleOptions(jobs=2))
    ws.close()
    return d / "ws"


def _first_clip(ws: Path) -> str:
    return sorted(p.stem for p in (ws / "clips").glob("*.mp4"))[0]


def _done(ws: Path) -> int:
    db = sqlite3.connect(ws / "catalog.sqlite", timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM stage_status WHERE stage='preannotate' AND status='done'").fetchone()[0]
    finally:
        db.close()


def test_ctrl_c_with_the_loader_and_storing_threads_running_stops_and_resumes(tmp_path, tiny, sampled):
    ws = tmp_path / "ws"
    shutil.copytree(sampled, ws)
    args = ["preannotate", ws, "-q", "--dino", tiny["dino"], "--sam", tiny["sam"], "--device", "cpu",
            "--box-threshold", "0", "--text-threshold", "0", "--tracker", "flow"]
    # held in its progress report once the first clip is stored (cli/bars.py, test-only): the loader thread has
    # the next clips in hand and the second clip's proposals wait to be stored, whatever the machine's speed
    # (the Ctrl-C of a store in flight is tests above: put() returns while its item is stored)
    proc = start_cli(*args, hold=tmp_path / "hold", hold_at=1)
    wait_for(lambda: (tmp_path / "hold.held").exists(), proc, timeout=300)
    assert _done(ws) == 1
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), ln) for ln in proc.stderr), daemon=True)
    reader.start()
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(5)
    exited = time.monotonic() - t0
    err = "".join(ln for _, ln in lines)
    stopped = next((t - t0 for t, ln in lines if ln.startswith("interrupted:")), None)
    left = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == proc.pid]
    # the work stops and is reported within seconds; the exit after it is Python unloading torch, which
    # takes seconds on a loaded 2-core box (`python -c "import torch"` alone: ~3 s after atexit there)
    assert proc.returncode == 130 and stopped is not None and stopped < 5.0 and exited < 20 and not left, \
        (proc.returncode, stopped, exited, left, err)
    m = re.search(r"interrupted: (\d+) done, (\d+) left; run the same command to resume", err)
    assert m and "Traceback" not in err, err
    done, rest = int(m.group(1)), int(m.group(2))
    assert done + rest == 4 and done == _done(ws) and rest >= 1
    r = cli_here(*args, check=True)
    assert f"{rest} clips proposed" in r.stdout and f"{done} already done" in r.stdout


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


# -- on a GPU ----------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a GPU machine)")
def test_cuda_batched_bf16_matches_cpu_fp32_single_frame(tiny, frames):
    from avsbench_tools.preannotate.models import load_dino, load_sam

    dino, sam = load_dino(str(tiny["dino"]), "cuda"), load_sam(str(tiny["sam"]), "cuda")
    cpu = _detect(tiny["dino_h"], frames, 1, "fp32")
    boxes = {s: [d.box for d in dets[:4]] for s, dets in enumerate(cpu)}
    cpu_masks = _masks(tiny["sam_h"], frames, boxes, 1, "fp32")
    for precision in ("fp32", "bf16"):
        gpu = _detect(dino, frames, 4, precision)
        gpu_masks = _masks(sam, frames, boxes, 4, precision)
        _assert_bf16_close(cpu, gpu, cpu_masks, gpu_masks, max(frames[0].shape[:2]))
        assert all(m.dtype == bool and m.shape[1:] == (120, 160) for m, _ in gpu_masks.values())
