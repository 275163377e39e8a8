"""Weights for the TPAVI baseline: ImageNet visual weights, VGGish, our checkpoints and the officially
released AVSBench TPAVI checkpoints. Every failure is one line naming the file and the cause.

Official checkpoint layout (AVSBench `Pred_endecoder.state_dict()`, optionally with DataParallel's
`module.` prefix) -> this model:

    module.<key>                           -> <key>  (the prefix is stripped when every key has it)
    resnet.layer3_1.* / resnet.layer4_1.*  -> resnet.layer3.* / resnet.layer4.*
    resnet.layer3_2.* / resnet.layer4_2.*  -> dropped (B2_ResNet's copies that forward never runs)
    path4.resConfUnit1.*                   -> dropped (path4 has no skip input; never runs)
    encoder_backbone.* (PVT-v2-b5), resnet.conv1/bn1/layer1/layer2.*, conv{1..4}.conv2d_list.*,
    tpavi_b{1..4}.*, path{1..3}.*, path4.resConfUnit2.*, output_conv.{0,2,4}.*  -> unchanged

The official checkpoints hold no VGGish (the official scripts run it as a separate module): it comes
from --vggish-weights. Our checkpoints hold the config, the model without VGGish, and `extra`
(whatever the trainer adds: epoch, optimiser state, RNG states; plain tensors/containers only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from avsbench_tools.errors import AvsError, UsageError

FORMAT = "avs-tools-tpavi/1"
DROPPED_OFFICIAL = ("resnet.layer3_2.", "resnet.layer4_2.", "path4.resConfUnit1.")
RENAMED_OFFICIAL = (("resnet.layer3_1.", "resnet.layer3."), ("resnet.layer4_1.", "resnet.layer4."))


@dataclass
class Checkpoint:
    """A checkpoint file read into memory: `kind` "ours" or "official", the model config it implies
    (None for an official one: see `checkpoint_config`), the state in this model's key layout, the
    trainer's `extra`, and what was dropped from an official file."""

    path: Path
    kind: str
    config: dict | None
    state: dict
    extra: dict = field(default_factory=dict)
    dropped: int = 0
    vggish: str | None = None  # what VGGish it was trained with (a weights file's hash, FIXED_VGGISH_ID, or None)


def _read(path: Path, option: str):
    import torch

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{option} {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise AvsError(f"{path}: not a readable torch weights file ({type(exc).__name__}: {first})") from exc


def _unwrap(obj, path: Path) -> dict:
    """A state dict, possibly inside {"state_dict": ...} or {"model": ...}; `module.` stripped."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise AvsError(f"{path}: expected a state dict (name -> tensor), found {type(obj).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _check(own: dict, state: dict, path: Path, what: str, optional=("num_batches_tracked",)) -> None:
    """Compare `state` with a module's own state (names and shapes): one line naming the file."""
    import torch

    missing = [k for k in own if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(own)} keys missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[0]}")
        raise AvsError(f"{path}: not {what} ({'; '.join(parts)})")
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise AvsError(f"{path}: {k} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(own[k].shape):
            raise AvsError(f"{path}: {k} has shape {tuple(v.shape)}, {what} needs {tuple(own[k].shape)}")


def _check_and_load(module, state: dict, path: Path, what: str) -> None:
    """Load `state` into `module` strictly, turning any mismatch into one line naming the file."""
    _check(module.state_dict(), state, path, what)
    module.load_state_dict(state, strict=False)


def _meta_state(build) -> dict:
    import torch

    with torch.device("meta"):
        return build().state_dict()


def visual_state(path: Path, backbone: str) -> dict:
    """A visual weights file in this model's key layout, not yet checked against a network's shapes
    (read_visual_weights checks it against the full-size encoder; a smaller network of the same layout loads
    it with `load_state_dict`)."""
    state = _unwrap(_read(path, "--visual-weights"), path)
    if backbone == "pvt_v2_b5":
        from avsbench_tools.baselines.pvt import from_timm_keys

        return {k: v for k, v in from_timm_keys(state).items() if not k.startswith("head.")}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def read_visual_weights(path: Path, backbone: str) -> dict:
    """ImageNet weights for the visual encoder, checked (names, shapes) before any model is built:
    torchvision's ResNet layout (`fc.*` ignored) for resnet50/resnet18; the official `pvt_v2_b5.pth`
    layout or timm's for pvt_v2_b5 (`head.*` ignored)."""
    path = Path(path)
    state = visual_state(path, backbone)
    if backbone == "pvt_v2_b5":
        from avsbench_tools.baselines.pvt import pvt_v2_b5

        own = _meta_state(pvt_v2_b5)
    else:
        from avsbench_tools.baselines.resnet import ResNetEncoder

        own = _meta_state(lambda: ResNetEncoder(backbone))
    _check(own, state, path, f"{backbone} ImageNet weights")
    return state


def read_vggish_weights(path: Path) -> dict:
    """torchvggish release weights (`vggish-10086976.pth` layout), checked before any model is built."""
    from avsbench_tools.audio.vggish import build_vggish

    path = Path(path)
    state = _unwrap(_read(path, "--vggish-weights"), path)
    _check(_meta_state(build_vggish), state, path, "VGGish weights (torchvggish layout)")
    return state


#: The name of the frozen audio encoder used when no VGGish weights are given (said in warnings and reports).
FIXED_VGGISH = ("the fixed He-normal VGGish initialisation (generator seed 0, zero-mean filters, zero biases, last "
                "layer /3; avsbench_tools.baselines.weights.fixed_vggish)")
#: What a checkpoint trained with that encoder records as its VGGish (`vggish_sha`; a weights file: its hash).
FIXED_VGGISH_ID = "fixed-he-zero-mean-v2"


def fixed_vggish(vggish) -> None:
    """Give a VGGish (build_vggish) the fixed initialisation used without VGGish weights, in place: every conv and
    linear weight He-normal, std sqrt(2 / fan_in), drawn in module order from a torch.Generator seeded 0, then made
    zero-mean per output unit (over its fan-in), biases zero, the last linear layer divided by 3 (embeddings of
    order 1, as the released VGGish gives).

    Why: PyTorch's default initialisation makes a VGGish whose output is nearly constant (its biases dominate, the
    ReLUs cut the rest). Plain He-normal weights keep the log-mel's differences but bury them: the log-mel's floor
    (every bin but a tone's few) and, after each ReLU, the positive mean of the activations drive every unit the
    same way, so the embeddings of the tones world's three tones were 95-97% alike (cosine) with the tone in the
    last 3%, and a small run never learnt to listen (0.15 val mIoU after 8 epochs where a one-hot code of the tone
    gave 0.73). Zero-mean filters answer to the log-mel's structure, not its level, as trained filters do: the
    same tones' embeddings are 41-52% alike and the same run reaches 0.75. It is fixed (not random per run) so a
    checkpoint trained with it is predicted with the same audio features later (VGGish is not saved in
    checkpoints; the checkpoint records FIXED_VGGISH_ID and a later load that differs says so). The tests'
    stand-in VGGish (tests/helpers/worlds.py) is this one."""
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in vggish.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = mod.weight[0].numel()
                w = torch.randn(mod.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
                w -= w.reshape(w.shape[0], -1).mean(1).reshape(-1, *[1] * (w.dim() - 1))
                mod.weight.copy_(w)
                mod.bias.zero_()
        vggish.embeddings[4].weight /= 3


def official_to_ours(state: dict) -> tuple[dict, int]:
    """Map an official AVSBench state dict (prefix already stripped) to this model's layout;
    -> (state, number of dropped tensors)."""
    out, dropped = {}, 0
    for k, v in state.items():
        if k.startswith(DROPPED_OFFICIAL):
            dropped += 1
            continue
        for old, new in RENAMED_OFFICIAL:
            if k.startswith(old):
                k = new + k[len(old):]
        out[k] = v
    return out, dropped


def read_checkpoint(path: Path) -> Checkpoint:
    """Read ours or an official TPAVI checkpoint (one-line errors on anything else)."""
    path = Path(path)
    obj = _read(path, "--checkpoint")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if not isinstance(obj.get("state_dict"), dict) or not isinstance(obj.get("config"), dict):
            raise AvsError(f"{path}: an avs-tools checkpoint without its state_dict/config (damaged file?)")
        return Checkpoint(path, "ours", obj["config"], obj["state_dict"], obj.get("extra") or {},
                          vggish=obj.get("vggish_sha"))
    if isinstance(obj, dict) and isinstance(obj.get("format"), str):
        raise AvsError(f"{path}: checkpoint format {obj['format']!r}, this avs-tools reads {FORMAT}")
    state, dropped = official_to_ours(_unwrap(obj, path))
    if not any(k.startswith(("resnet.", "encoder_backbone.")) for k in state) or "output_conv.4.weight" not in state:
        raise AvsError(f"{path}: not a TPAVI checkpoint (no resnet./encoder_backbone. and output_conv keys)")
    return Checkpoint(path, "official", None, state, {}, dropped)


def checkpoint_config(ckpt: Checkpoint | Path, setting: str | None = None):
    """The ModelConfig a checkpoint needs. Ours records it; for an official file it is read off the
    weights (backbone, class count, TPAVI stages, align bias = S4/MS3 vs AVSS); `setting` picks S4 or
    MS3 (same network) and is checked against what the weights say."""
    from avsbench_tools.baselines.model_config import ModelConfig

    ckpt = ckpt if isinstance(ckpt, Checkpoint) else read_checkpoint(ckpt)
    if ckpt.kind == "ours":
        cfg = ModelConfig.from_dict(ckpt.config)
        if setting is not None and (setting == "avss") != (cfg.setting == "avss"):
            raise UsageError(f"{ckpt.path}: a {cfg.setting} checkpoint, --setting is {setting}")
        return cfg
    st = ckpt.state
    backbone = "pvt_v2_b5" if any(k.startswith("encoder_backbone.") for k in st) else (
        "resnet50" if "resnet.layer1.0.conv3.weight" in st else "resnet18")
    stages = tuple(i for i in range(4) if f"tpavi_b{i + 1}.align_channel.weight" in st)
    has_bias = any(f"tpavi_b{i + 1}.align_channel.bias" in st for i in stages)
    weights_setting = "avss" if stages and not has_bias else None
    if setting == "avss" and stages and has_bias:
        raise UsageError(f"{ckpt.path}: an S4/MS3 checkpoint (align layers with bias), --setting is avss")
    if weights_setting == "avss" and setting not in (None, "avss"):
        raise UsageError(f"{ckpt.path}: an AVSS checkpoint (align layers without bias), --setting is {setting}")
    return ModelConfig(backbone=backbone, num_classes=int(st["output_conv.4.weight"].shape[0]),
                       tpavi_stages=stages, setting=setting or weights_setting or "s4")


def load_checkpoint(model, path) -> Checkpoint:
    """Load ours or an official TPAVI checkpoint into `model` (VGGish untouched) -> the Checkpoint
    (its `extra` holds what save_checkpoint stored). One-line AvsError/UsageError on a wrong file."""
    ckpt = path if isinstance(path, Checkpoint) else read_checkpoint(Path(path))
    cfg = model.cfg
    if ckpt.kind == "ours":
        theirs = {k: ckpt.config.get(k) for k in ("backbone", "num_classes", "tpavi_stages", "setting")}
        mine = {"backbone": cfg.backbone, "num_classes": cfg.num_classes,
                "tpavi_stages": list(cfg.tpavi_stages), "setting": cfg.setting}
        mismatch = [f"{k} {theirs[k]} vs {mine[k]}" for k in mine if theirs[k] != mine[k]
                    and not (k == "setting" and {theirs[k], mine[k]} <= {"s4", "ms3"})]
        if mismatch:
            raise AvsError(f"{ckpt.path}: checkpoint does not fit the model ({', '.join(mismatch)})")
    body = _Body(model)
    _check_and_load(body, ckpt.state, ckpt.path, f"a {cfg.backbone} {cfg.setting} TPAVI checkpoint "
                    f"({cfg.num_classes} classes, TPAVI stages {list(cfg.tpavi_stages)})")
    return ckpt


class _Body:
    """The model seen without its frozen VGGish (state_dict / load_state_dict)."""

    def __init__(self, model):
        self.model = model

    def state_dict(self):
        return {k: v for k, v in self.model.state_dict().items() if not k.startswith("vggish.")}

    def load_state_dict(self, state, strict=False):
        own = self.state_dict()
        full = {k: state.get(k, own[k]) for k in own}  # absent num_batches_tracked keep their value
        missing, unexpected = self.model.load_state_dict(full, strict=False)
        assert not unexpected and all(k.startswith("vggish.") for k in missing)


def save_checkpoint(model, path: Path, extra: dict | None = None) -> None:
    """Write config + model (without the frozen VGGish) + `extra` atomically (temp file + rename,
    fsync'd, mode from the umask)."""
    import torch

    from avsbench_tools.fsutil import atomic_path

    payload = {"format": FORMAT, "config": model.cfg.to_dict(), "state_dict": _Body(model).state_dict(),
               "extra": extra or {}, "vggish_sha": getattr(model, "vggish_sha", None)}
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
