"""TPAVI baseline: training step time, and the factorised TPAVI against the official dense one.

    python benchmarks/bench_baseline.py                    # CPU (this dev box)
    python benchmarks/bench_baseline.py --device cuda      # a GPU machine: adds AMP / channels-last rows

1. TPAVI block alone, forward + backward, per stage (maps 56/28/14/7 at 224 input), 256 channels:
   the factorised form (the model's) against the dense form of the official code (the N x N matrix,
   N = 5*H*W: 15,680 at stage 1), same parameters, same batch. Time and peak memory (CPU: the peak RSS
   growth of a fresh worker process; CUDA: torch.cuda.max_memory_allocated growth). Ratio dense/ours.
   The dense stage-1 block needs ~4 GB per video in fp32 for forward + backward, so on CPU it runs at
   --dense-batch videos (default 1 on CPU, 4 on CUDA) and the factorised one is timed at the same batch.
2. One training step (ms/iteration): batch 4 videos x 5 frames at 224x224, Adam lr 1e-4, the MS3 loss
   (BCE + AVM, avs-tools' baselines.losses), precomputed VGGish embeddings (as `baseline train` does),
   for ResNet-50 and PVT-v2-b5 with the factorised TPAVI; on CUDA also AMP (fp16 autocast + GradScaler),
   channels-last, both, and the dense TPAVI. The baseline of the ratios is the fp32 factorised step.
Every measurement runs in its own process (clean peak memory); times are the median of --iters runs
after --warmup runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

STAGE_SIZES = (56, 28, 14, 7)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device, warmup: int, iters: int) -> tuple[float, float]:
    """-> (median ms, peak extra memory MB) of fn() after warmup runs."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_mb()
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else _peak_rss_mb() - base
    return statistics.median(times), peak


def worker_tpavi(spec: dict) -> dict:
    import torch

    from avsbench_tools.baselines.tpavi import TPAVI

    torch.manual_seed(0)
    dev, s, b = spec["device"], spec["size"], spec["videos"]
    block = TPAVI(256, 5, dense=spec["impl"] == "dense").to(dev).train()
    x = torch.randn(b * 5, 256, s, s, device=dev, requires_grad=True)
    audio = torch.randn(b * 5, 128, device=dev)

    def step():
        z, a = block(x, audio)
        (z.square().mean() + a.square().mean()).backward()
        x.grad = None
        block.zero_grad(set_to_none=True)

    ms, mb = _timed(step, dev, spec["warmup"], spec["iters"])
    return {"ms": ms, "mb": mb}


def worker_step(spec: dict) -> dict:
    import torch

    from avsbench_tools.baselines.model import ModelConfig, build_model

    torch.manual_seed(0)
    dev = spec["device"]
    model = build_model(ModelConfig(backbone=spec["backbone"], setting="ms3", tpavi_impl=spec["impl"])).to(dev)
    model.train()
    if spec["channels_last"]:
        model.channels_last()
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(dev.split(":")[0], enabled=spec["amp"])
    n = spec["videos"] * 5
    frames = torch.randn(n, 3, 224, 224, device=dev)
    if spec["channels_last"]:
        frames = frames.contiguous(memory_format=torch.channels_last)
    audio = torch.randn(n, 128, device=dev).relu()
    masks = (torch.rand(n, 224, 224, device=dev) > 0.7).float()
    supervised = torch.ones(n, device=dev)
    try:
        from avsbench_tools.baselines.losses import tpavi_loss

        def loss_of(out):
            return tpavi_loss("ms3", out, masks, supervised, avm=True).total
        loss_name = "ms3 BCE + AVM"
    except ImportError:  # the trainer's loss module is not there: plain BCE
        def loss_of(out):
            return torch.nn.functional.binary_cross_entropy_with_logits(out.logits[:, 0].float(), masks)
        loss_name = "BCE"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.split(":")[0], dtype=torch.float16, enabled=spec["amp"]):
            out = model(frames, audio=audio)
        scaler.scale(loss_of(out)).backward()
        scaler.step(opt)
        scaler.update()

    ms, mb = _timed(step, dev, spec["warmup"], spec["iters"])
    return {"ms": ms, "mb": mb, "loss": loss_name}


def run_worker(spec: dict, threads: int | None) -> dict:
    """Run one measurement in a fresh process; -> its result dict (or {"error": ...})."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                          text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"rc {proc.returncode}: {tail[:200]}"}


def _fmt(r: dict) -> str:
    return f"error {r['error']}" if "error" in r else f"{r['ms']:10.1f} ms  {r['mb']:9.1f} MB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--iters", type=int, default=None, help="timed runs per measurement (CPU 2, CUDA 10)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs first (CPU 1, CUDA 3)")
    ap.add_argument("--videos", type=int, default=4, help="videos per batch (x 5 frames)")
    ap.add_argument("--dense-batch", type=int, default=None, help="videos for the TPAVI comparison (CPU 1, CUDA 4)")
    ap.add_argument("--backbones", default="resnet50,pvt_v2_b5")
    ap.add_argument("--skip-step", action="store_true", help="only the TPAVI block comparison")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the workers")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker_tpavi(spec) if spec["kind"] == "tpavi" else worker_step(spec)), flush=True)
        return 0

    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print(f"--device {args.device}: CUDA is not available on this machine", file=sys.stderr)
        return 2
    iters = args.iters or (10 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    dense_videos = args.dense_batch or (4 if cuda else 1)
    where = torch.cuda.get_device_name(args.device) if cuda else f"CPU, {os.cpu_count()} cores"
    print(f"device: {where}; torch {torch.__version__}; threads {args.threads or torch.get_num_threads()}; "
          f"median of {iters} after {warmup} warm-up")

    print(f"\n1. TPAVI block, forward + backward, {dense_videos} video(s) x 5 frames, 256 channels")
    for stage, size in enumerate(STAGE_SIZES):
        res = {}
        for impl in ("factorised", "dense"):
            res[impl] = run_worker({"kind": "tpavi", "device": args.device, "size": size, "videos": dense_videos,
                                    "impl": impl, "warmup": warmup, "iters": iters}, args.threads)
            print(f"  stage {stage + 1} ({size}x{size}, N={5 * size * size:6d}) {impl:10s} {_fmt(res[impl])}",
                  flush=True)
        f, d = res["factorised"], res["dense"]
        if "error" not in f and "error" not in d:
            print(f"  stage {stage + 1}: dense / factorised = {d['ms'] / f['ms']:.1f}x time, "
                  f"{d['mb'] / max(f['mb'], 0.1):.1f}x peak memory ({d['mb'] - f['mb']:.0f} MB more)")

    if args.skip_step:
        return 0
    print(f"\n2. training step, {args.videos} videos x 5 frames at 224x224, Adam")
    variants = [("fp32", False, False, "factorised")]
    if cuda:
        variants += [("AMP", True, False, "factorised"), ("channels-last", False, True, "factorised"),
                     ("AMP + channels-last", True, True, "factorised"), ("fp32, dense TPAVI", False, False, "dense")]
    fp32 = {}
    for backbone in args.backbones.split(","):
        base = None
        for name, amp, cl, impl in variants:
            r = run_worker({"kind": "step", "device": args.device, "backbone": backbone, "videos": args.videos,
                            "amp": amp, "channels_last": cl, "impl": impl, "warmup": warmup, "iters": iters},
                           args.threads)
            ratio = ""
            if "error" not in r:
                base = base or r
                ratio = f"  {r['ms'] / base['ms']:.2f}x the fp32 step time, {r['mb'] / base['mb']:.2f}x its memory" \
                    f"  (loss: {r['loss']})"
            print(f"  {backbone:9s} {name:20s} {_fmt(r)}{ratio}", flush=True)
        if base:
            fp32[backbone] = base
    if len(fp32) > 1:
        (a, ra), *rest = fp32.items()
        for b, rb in rest:
            print(f"  {b} / {a} fp32 step: {rb['ms'] / ra['ms']:.2f}x time, {rb['mb'] / ra['mb']:.2f}x memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
