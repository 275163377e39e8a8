"""The training loop of `baseline train` (train.py holds the options, the checks and the entry point)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from avsbench_tools.baselines import runlog
from avsbench_tools.baselines.dataset import (
    ClipDataset,
    ReleaseData,
    batches,
    check_frame_sizes,
    collate,
    epoch_order,
)
from avsbench_tools.baselines.infer import Runtime, embed_audio, forward, to_device, validate
from avsbench_tools.baselines.losses import tpavi_loss
from avsbench_tools.baselines.train_options import (
    OFFICIAL_AVM,
    OFFICIAL_EPOCHS,
    TrainOptions,
    TrainResult,
    interrupted,
    model_config,
    param_groups,
    seed_everything,
    stop_for_budget,
)
from avsbench_tools.outdir import claim
from avsbench_tools.progress import Progress

CACHE_BYTES = 1 << 30  # samples kept in memory once read (train 3/4, val 1/4): a small run reads each file once


def subset(n: int, k: int | None) -> list[int]:
    """k indices evenly spread over range(n) (all when k is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, k).round()})


class Trainer:
    """One training run: model, optimiser, data, and the run folder."""

    def __init__(self, data: ReleaseData, release: Path, setting: str, out: Path, o: TrainOptions, device: str,
                 progress: Progress, warn=None, content: dict | None = None):
        self.data, self.release, self.setting, self.out, self.o, self.progress = data, release, setting, out, o, progress
        self.content = content or {}
        self.warn = warn or (lambda line: None)
        self.epochs = o.epochs or OFFICIAL_EPOCHS[setting]
        self.avm = (OFFICIAL_AVM[setting] if o.avm is None else o.avm) and not o.no_audio
        cuda = device.startswith("cuda")
        self.rt = Runtime(device, amp=o.amp and cuda, channels_last=o.channels_last and cuda, no_audio=o.no_audio)

    def _build(self):
        from avsbench_tools.baselines.model import build_model

        seed_everything(self.o.seed)
        cfg = model_config(self.setting, self.data.num_classes, self.o)
        model = build_model(cfg, self.o.visual_weights, self.o.vggish_weights).to(self.rt.device)
        if self.rt.channels_last:
            model.channels_last()
        opt = torch.optim.Adam(param_groups(model, self.o.lr, self.o.tpavi_lr_mult), lr=self.o.lr)
        scaler = torch.amp.GradScaler("cuda", enabled=self.rt.amp)
        return cfg, model, opt, scaler

    def _run_info(self, cfg, model, n_train: int, n_val: int) -> dict:
        from avsbench_tools import __version__

        return {"tool": f"avs-tools {__version__}", "release": str(self.release), "format": self.data.fmt,
                "content": self.content, "setting": self.setting, "options": self.o.defining(self.setting),
                "epochs": self.epochs,
                "config": cfg.to_dict(), "warnings": list(model.warnings), "train_clips": n_train,
                "val_clips": n_val, "device": self.rt.device, "amp": self.rt.amp, "avm": self.avm}

    def run(self, resume_info: dict | None) -> TrainResult:
        from avsbench_tools.baselines.weights import load_checkpoint, save_checkpoint

        o, out = self.o, self.out
        check_frame_sizes(self.data, "train")
        cache = CACHE_BYTES if o.workers <= 0 else 0  # worker processes would each hold a copy
        train_ds = ClipDataset(self.data, "train", o.input_size, cache_bytes=cache * 3 // 4)
        train_ds.items = [train_ds.items[i] for i in subset(len(train_ds.items), o.max_train_clips)]
        val_ds = ClipDataset(self.data, "val", o.input_size, cache_bytes=cache // 4)
        cfg, model, opt, scaler = self._build()
        for w in model.warnings:
            self.warn(w)
        out.mkdir(parents=True, exist_ok=True)
        claim(out, *runlog.FILES)
        info = self._run_info(cfg, model, len(train_ds), len(val_ds))
        history: list[dict] = []
        best = {"epoch": None, "miou": None}
        start = 0
        if resume_info is not None and (out / "last.pt").is_file():
            ck = load_checkpoint(model, out / "last.pt")
            ex = ck.extra
            opt.load_state_dict(ex["optimizer"])
            if ex.get("scaler") and self.rt.amp:
                scaler.load_state_dict(ex["scaler"])
            torch.set_rng_state(ex["torch_rng"])
            if self.rt.device.startswith("cuda") and ex.get("cuda_rng"):
                torch.cuda.set_rng_state_all(list(ex["cuda_rng"]))
            history, best, start = list(ex["history"]), dict(ex["best"]), int(ex["epoch"])
        runlog.write_run(out, info)
        train_audio = embed_audio(model, train_ds, self.rt, self.progress)
        val_audio = embed_audio(model, val_ds, self.rt, self.progress)
        res = TrainResult(out, self.epochs, start, best["epoch"], best["miou"], history, list(model.warnings),
                          resumed_from=start)
        started = time.monotonic()
        seconds: list[float] = []
        stop_next = False
        try:
            for epoch in range(start, self.epochs):
                if stop_next:
                    res.stopped = f"time budget of {o.max_seconds:.0f} s (after {epoch} epochs)"
                    break
                t0 = time.monotonic()
                losses = self._epoch(model, opt, scaler, train_ds, train_audio, epoch)
                row = {"epoch": epoch + 1, **losses, "val_miou": None, "val_fscore": None, "best": False}
                e1 = epoch + 1
                if e1 >= o.val_from and (e1 - o.val_from) % o.val_every == 0:
                    v = validate(model, val_ds, val_audio, self.rt, 1, self.progress)
                    row["val_miou"], row["val_fscore"] = v["miou"], v["fscore_batch_free"]
                    if best["miou"] is None or v["miou"] > best["miou"]:
                        best = {"epoch": e1, "miou": v["miou"]}
                        row["best"] = True
                        save_checkpoint(model, out / "best.pt", extra={"epoch": e1, "val_miou": v["miou"],
                                                                       "input_size": o.input_size})
                row["seconds"] = time.monotonic() - t0
                seconds.append(row["seconds"])
                stop_next = stop_for_budget(o, started, seconds)
                history.append(row)
                extra = {"epoch": e1, "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                         "history": history, "best": best, "input_size": o.input_size}
                if self.rt.amp:
                    extra["scaler"] = scaler.state_dict()
                if self.rt.device.startswith("cuda"):
                    extra["cuda_rng"] = torch.cuda.get_rng_state_all()
                if e1 % max(1, o.save_every) == 0 or e1 == self.epochs or stop_next:
                    save_checkpoint(model, out / "last.pt", extra=extra)
                    res.epochs_done = e1  # recorded: a Ctrl-C from here on keeps this epoch
                if o.keep_epochs:
                    claim(out, f"epochs/epoch_{e1:03d}.pt")
                    save_checkpoint(model, out / "epochs" / f"epoch_{e1:03d}.pt",
                                    extra={"epoch": e1, "input_size": o.input_size})
                runlog.write_csv(out, history)
                runlog.write_curves(out, history, f"{self.setting.upper()} {cfg.backbone} on {self.release.name}"
                                    f"{' (no audio)' if o.no_audio else ''}")
        except KeyboardInterrupt:
            raise interrupted(res.epochs_done, self.epochs - res.epochs_done, out) from None
        res.best_epoch, res.best_miou, res.history = best["epoch"], best["miou"], history
        return res

    def _epoch(self, model, opt, scaler, ds: ClipDataset, audio: torch.Tensor, epoch: int) -> dict:
        """One pass over the train split in the order fixed by (seed, epoch); -> mean losses."""
        model.train()
        groups = batches(epoch_order(len(ds), self.o.seed, epoch), self.o.batch)
        totals = np.zeros(3)
        for step, group in enumerate(self._loader(ds, groups)):
            idx, batch = group
            frames, masks, exists, supervised = to_device(batch, self.rt)
            a = audio[idx].reshape(-1, audio.shape[-1])
            out = forward(model, frames, a, exists, self.setting, self.rt)
            parts = tpavi_loss(self.setting, out, masks, supervised, self.avm, self.o.lam)
            opt.zero_grad(set_to_none=True)
            scaler.scale(parts.total).backward()
            scaler.step(opt)
            scaler.update()
            totals += (float(parts.total.detach()), parts.main, parts.avm)
            self.progress("training", step + 1, len(groups),
                          f"epoch {epoch + 1}/{self.epochs} loss {totals[0] / (step + 1):.4f}")
        n = max(1, len(groups))
        return {"train_loss": float(totals[0] / n), "main_loss": float(totals[1] / n), "avm_loss": float(totals[2] / n)}

    def _loader(self, ds: ClipDataset, groups: list[list[int]]):
        """(indices, collated batch) in the given order; worker processes only with --workers > 0."""
        if self.o.workers <= 0:
            for g in groups:
                yield g, collate([ds[i] for i in g])
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(_Indexed(ds), batch_sampler=groups, collate_fn=_collate_indexed,
                            num_workers=self.o.workers, pin_memory=self.rt.device.startswith("cuda"))
        yield from loader


class _Indexed:
    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]


def _collate_indexed(samples):
    return [s["index"] for s in samples], collate(samples)
