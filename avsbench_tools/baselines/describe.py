"""Parameter counts of the TPAVI baseline, counted on the meta device (nothing allocated, instant).

`registered` is what this model builds (all of it runs in forward: tests check every parameter gets a
gradient); `official_registered` is what the official AVSBench class registers for the same network:
ours plus B2_ResNet's unused layer3_2/layer4_2 copies (ResNet-50 only) and path4's unused
resConfUnit1, all of which the official training still hands to Adam. The frozen VGGish is counted
apart.
"""

from __future__ import annotations

UNUSED_PATH4 = 2 * (256 * 256 * 9 + 256)  # path4.resConfUnit1: two 3x3 convs with bias, 1,180,160


def _meta_model(cfg):
    import torch

    from avsbench_tools.baselines.model import TPAVIModel

    with torch.device("meta"):
        return TPAVIModel(cfg)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_parameters(cfg) -> dict:
    """-> {registered, used, official_registered (None for resnet18, which has no official model),
    vggish}: the counts without the frozen VGGish, and VGGish's own."""
    from avsbench_tools.baselines.resnet import duplicate_stage_parameters

    model = _meta_model(cfg)
    vggish = _count(model.vggish)
    registered = _count(model) - vggish
    official = None
    if cfg.backbone in ("resnet50", "pvt_v2_b5"):
        official = registered + UNUSED_PATH4 + (duplicate_stage_parameters() if cfg.backbone == "resnet50" else 0)
    return {"registered": registered, "used": registered, "official_registered": official, "vggish": vggish}


def describe(backbone: str = "resnet50", setting: str = "s4", num_classes: int | None = None,
             tpavi_stages=(0, 1, 2, 3)) -> list[tuple[str, int, int | None]]:
    """Rows (part, parameters, parameters the official class registers for that part) for
    `avs-tools baseline describe`; the last rows are the totals and the frozen VGGish. num_classes
    defaults to 1 (S4/MS3) or 71 (AVSS)."""
    from avsbench_tools.baselines.model import ModelConfig
    from avsbench_tools.baselines.resnet import duplicate_stage_parameters

    if num_classes is None:
        num_classes = 71 if setting == "avss" else 1
    cfg = ModelConfig(backbone=backbone, setting=setting, num_classes=num_classes, tpavi_stages=tuple(tpavi_stages))
    model = _meta_model(cfg)
    official = backbone in ("resnet50", "pvt_v2_b5")
    visual = _count(model.visual)
    dup = duplicate_stage_parameters() if backbone == "resnet50" else 0
    rows = [(f"visual encoder ({backbone})", visual, visual + dup if official else None)]
    rows.append(("ASPP (conv1..conv4)", sum(_count(getattr(model, f"conv{i}")) for i in range(1, 5)), None))
    for s in cfg.tpavi_stages:
        rows.append((f"TPAVI stage {s + 1}", _count(getattr(model, f"tpavi_b{s + 1}")), None))
    paths = sum(_count(getattr(model, f"path{i}")) for i in range(1, 5))
    rows.append(("fusion decoder (path1..path4)", paths, paths + UNUSED_PATH4 if official else None))
    rows.append((f"output head ({num_classes} class{'es' if num_classes > 1 else ''})", _count(model.output_conv), None))
    rows = [(n, c, o if o is not None else (c if official else None)) for n, c, o in rows]
    counts = count_parameters(cfg)
    rows.append(("total (trained; all used in forward)", counts["registered"], counts["official_registered"]))
    rows.append(("VGGish (frozen, not trained)", counts["vggish"], counts["vggish"] if official else None))
    return rows
