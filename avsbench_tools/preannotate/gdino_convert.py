"""Original Grounding DINO checkpoints (`groundingdino_swint_ogc.pth`, `groundingdino_swinb_cogcoor.pth`, the
files Grounded-SAM users have) loaded into transformers' `GroundingDinoForObjectDetection`.

The original repository (IDEA-Research/GroundingDINO) names its modules differently from transformers: a
Swin backbone under `backbone.0.*` with fused `attn.qkv`, the deformable encoder under
`transformer.encoder.layers.N`, its text-enhancer and fusion layers under `transformer.encoder.text_layers.N`
and `fusion_layers.N`, the decoder under `transformer.decoder.layers.N` (PyTorch `MultiheadAttention` with a
fused `in_proj_weight` for self-attention and the text cross-attention `ca_text`), the BERT text encoder
under `bert.*`, `feat_map` (text projection) and `input_proj` (vision projections), and the box head twice
(`bbox_embed.N` and `transformer.decoder.bbox_embed.N`, the same shared tensors). `to_hf` renames every key
to the layout transformers' Grounding DINO checkpoints use (the one transformers' conversion script,
convert_grounding_dino_to_hf.py, writes), splits each fused qkv matrix into query/key/value (rows in that
order), keeps one copy of the shared box head and drops buffers (`relative_position_index`, BERT's
`position_ids`) and BERT's unused pooler. A key it does not know is an error, never silently dropped.

The architecture comes from the tensors' shapes (Swin widths, depths, heads and window; model width,
feature levels, layer counts, feed-forward widths, queries; BERT's sizes). Attention heads and sampling
points of the deformable layers are not in the shapes: the original configurations' 8 heads are assumed
(both published checkpoints use 8 heads and 4 points), and the points follow from the offsets' shape.
The tokenizer is `bert-base-uncased` from the local Hugging Face cache (the original model's text encoder;
its weights come from the checkpoint itself). The converted model is cached as a transformers folder under
`cache_root()/grounding-dino/<sha256 of the file>-v<CONVERTER>/`, so a checkpoint is converted once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from avsbench_tools.checkpoints import cache_root, checkpoint_hash
from avsbench_tools.errors import AvsError, UsageError, require

CONVERTER = 1  # bump when the conversion changes: cached folders of other versions are not reused
DETECTOR_HEADS = 8  # heads of the deformable/text attention in both published configurations
BERT_IDS = ("google-bert/bert-base-uncased", "bert-base-uncased")
TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
SWIN = "model.backbone.conv_encoder.model."

# original name (regex, after "backbone.0." / "transformer." etc.) -> transformers checkpoint name
_BLOCK = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
          "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
          "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
_ENC = {"self_attn": "deformable_layer.self_attn", "norm1": "deformable_layer.self_attn_layer_norm",
        "linear1": "deformable_layer.fc1", "linear2": "deformable_layer.fc2", "norm2": "deformable_layer.final_layer_norm"}
_TEXT = {"self_attn.out_proj": "text_enhancer_layer.self_attn.out_proj", "linear1": "text_enhancer_layer.fc1",
         "linear2": "text_enhancer_layer.fc2", "norm1": "text_enhancer_layer.layer_norm_before",
         "norm2": "text_enhancer_layer.layer_norm_after"}
_FUSION = {"gamma_v": "fusion_layer.vision_param", "gamma_l": "fusion_layer.text_param",
           "layer_norm_v": "fusion_layer.layer_norm_vision", "layer_norm_l": "fusion_layer.layer_norm_text",
           "attn.v_proj": "fusion_layer.attn.vision_proj", "attn.l_proj": "fusion_layer.attn.text_proj",
           "attn.values_v_proj": "fusion_layer.attn.values_vision_proj",
           "attn.values_l_proj": "fusion_layer.attn.values_text_proj",
           "attn.out_v_proj": "fusion_layer.attn.out_vision_proj", "attn.out_l_proj": "fusion_layer.attn.out_text_proj"}
_DEC = {"cross_attn": "encoder_attn", "norm1": "encoder_attn_layer_norm", "ca_text.out_proj": "encoder_attn_text.out_proj",
        "catext_norm": "encoder_attn_text_layer_norm", "self_attn.out_proj": "self_attn.out_proj",
        "norm2": "self_attn_layer_norm", "linear1": "fc1", "linear2": "fc2", "norm3": "final_layer_norm"}
_TOP = {"transformer.level_embed": "model.level_embed", "transformer.tgt_embed": "model.query_position_embeddings",
        "transformer.enc_output": "model.enc_output", "transformer.enc_output_norm": "model.enc_output_norm",
        "transformer.enc_out_bbox_embed": "model.encoder_output_bbox_embed",
        "transformer.decoder.norm": "model.decoder.layer_norm",
        "transformer.decoder.ref_point_head": "model.decoder.reference_points_head",
        "feat_map": "model.text_projection", "input_proj": "model.input_proj_vision", "bert": "model.text_backbone",
        "backbone.0.patch_embed.proj": SWIN + "embeddings.patch_embeddings.projection",
        "backbone.0.patch_embed.norm": SWIN + "embeddings.norm"}
_DROP = re.compile(r"(\.relative_position_index$|^bert\.pooler\.|^bert\.embeddings\.position_ids$|"
                   r"^transformer\.decoder\.bbox_embed\.)")
_FUSED = {  # fused qkv (original) -> transformers prefix of query/key/value
    re.compile(r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$"):
        SWIN + r"encoder.layers.\1.blocks.\2.attention.self.{}.\3",
    re.compile(r"^transformer\.encoder\.text_layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$"):
        r"model.encoder.layers.\1.text_enhancer_layer.self_attn.{}.\2",
    re.compile(r"^transformer\.decoder\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$"):
        r"model.decoder.layers.\1.self_attn.{}.\2",
    re.compile(r"^transformer\.decoder\.layers\.(\d+)\.ca_text\.in_proj_(weight|bias)$"):
        r"model.decoder.layers.\1.encoder_attn_text.{}.\2",
}


def _sub(table: dict[str, str], rest: str) -> str | None:
    """Rename the leading module path of `rest` (longest match first), keeping the tail."""
    for src in sorted(table, key=len, reverse=True):
        if rest == src or rest.startswith(src + "."):
            return table[src] + rest[len(src):]
    return None


def hf_name(key: str) -> str | None:
    """The transformers checkpoint name of one original (non-fused) key; None when not known."""
    if m := re.match(r"^backbone\.0\.layers\.(\d+)\.blocks\.(\d+)\.(.+)$", key):
        tail = _sub(_BLOCK, m[3])
        return tail and f"{SWIN}encoder.layers.{m[1]}.blocks.{m[2]}.{tail}"
    if m := re.match(r"^backbone\.0\.layers\.(\d+)\.downsample\.(reduction|norm)\.(.+)$", key):
        return f"{SWIN}encoder.layers.{m[1]}.downsample.{m[2]}.{m[3]}"
    if m := re.match(r"^backbone\.0\.norm(\d+)\.(weight|bias)$", key):  # output norms: original index k = stage k+1
        return f"{SWIN}hidden_states_norms.stage{int(m[1]) + 1}.{m[2]}"
    for prefix, table, part in (("transformer.encoder.layers", _ENC, "encoder"),
                                ("transformer.encoder.text_layers", _TEXT, "encoder"),
                                ("transformer.encoder.fusion_layers", _FUSION, "encoder"),
                                ("transformer.decoder.layers", _DEC, "decoder")):
        if m := re.match(rf"^{re.escape(prefix)}\.(\d+)\.(.+)$", key):
            tail = _sub(table, m[2])
            return tail and f"model.{part}.layers.{m[1]}.{tail}"
    if m := re.match(r"^bbox_embed\.(\d+)\.(.+)$", key):
        return f"bbox_embed.{m[1]}.{m[2]}"
    return _sub(_TOP, key)


def to_hf(sd: dict) -> dict:
    """Original state dict (no `module.` prefix) -> transformers checkpoint state dict (see the module doc)."""
    out: dict = {}
    unknown = []
    for key, t in sd.items():
        if _DROP.search(key):
            continue
        for pat, dst in _FUSED.items():
            if m := pat.match(key):
                n = t.shape[0] // 3
                for i, part in enumerate(("query", "key", "value")):
                    out[m.expand(dst.format(part))] = t[i * n:(i + 1) * n].clone()
                break
        else:
            name = hf_name(key)
            if name is None:
                unknown.append(key)
            else:
                out[name] = t.clone()
    if unknown:
        raise AvsError(f"{len(unknown)} keys are not in an original Grounding DINO checkpoint "
                       f"(e.g. {unknown[0]}): cannot convert")
    heads = sorted({int(k.split(".")[1]) for k in out if k.startswith("bbox_embed.")})
    for n in heads[1:]:  # one shared box head in both layouts: keep bbox_embed.0, check the others are the same
        for k in [k for k in out if k.startswith(f"bbox_embed.{n}.")]:
            if not out[k].equal(out["bbox_embed.0." + k.split(".", 2)[2]]):
                raise AvsError("the decoder's box heads are not shared (not a published Grounding DINO configuration)")
            del out[k]
    return out


def _count(sd: dict, pattern: str) -> int:
    return len({m[1] for k in sd if (m := re.match(pattern, k))})


def config_from_state(sd: dict):
    """A GroundingDinoConfig with the architecture the original state dict's shapes imply."""
    transformers = require("transformers", "models")
    depths = [_count(sd, rf"^backbone\.0\.layers\.{i}\.blocks\.(\d+)\.") for i in range(_count(sd, r"^backbone\.0\.layers\.(\d+)\."))]
    tables = [sd[f"backbone.0.layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(len(depths))]
    window = (int(round(tables[0].shape[0] ** 0.5)) + 1) // 2
    proj = sd["backbone.0.patch_embed.proj.weight"]
    embed = proj.shape[0]
    outs = sorted(int(m[1]) + 1 for k in sd if (m := re.match(r"^backbone\.0\.norm(\d+)\.weight$", k)))
    swin = transformers.SwinConfig(
        embed_dim=embed, depths=depths, num_heads=[t.shape[1] for t in tables], window_size=window,
        patch_size=proj.shape[-1], mlp_ratio=sd["backbone.0.layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed,
        image_size=224 if window == 7 else 384, out_features=[f"stage{i}" for i in outs])
    n_bert = _count(sd, r"^bert\.encoder\.layer\.(\d+)\.")
    hidden = sd["bert.embeddings.word_embeddings.weight"].shape[1]
    bert = transformers.BertConfig(
        vocab_size=sd["bert.embeddings.word_embeddings.weight"].shape[0], hidden_size=hidden,
        num_hidden_layers=n_bert, num_attention_heads=max(1, hidden // 64),
        intermediate_size=sd["bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=sd["bert.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=sd["bert.embeddings.token_type_embeddings.weight"].shape[0])
    levels, d_model = sd["transformer.level_embed"].shape
    per_head_level = DETECTOR_HEADS * levels
    enc_points = sd["transformer.encoder.layers.0.self_attn.attention_weights.weight"].shape[0] // per_head_level
    dec_points = sd["transformer.decoder.layers.0.cross_attn.attention_weights.weight"].shape[0] // per_head_level
    return transformers.GroundingDinoConfig(
        backbone_config=swin.to_dict(), text_config=bert.to_dict(), d_model=d_model, num_feature_levels=levels,
        encoder_layers=_count(sd, r"^transformer\.encoder\.layers\.(\d+)\."),
        decoder_layers=_count(sd, r"^transformer\.decoder\.layers\.(\d+)\."),
        encoder_ffn_dim=sd["transformer.encoder.layers.0.linear1.weight"].shape[0],
        decoder_ffn_dim=sd["transformer.decoder.layers.0.linear1.weight"].shape[0],
        encoder_attention_heads=DETECTOR_HEADS, decoder_attention_heads=DETECTOR_HEADS,
        encoder_n_points=enc_points, decoder_n_points=dec_points, num_queries=sd["transformer.tgt_embed.weight"].shape[0],
        use_timm_backbone=False)


def read_original(path: Path) -> dict:
    """The state dict of an original checkpoint file ({'model': ...} or bare; `module.` prefixes removed)."""
    import argparse

    torch = require("torch", "models")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # training args some files carry
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported in one line
        raise AvsError(f"--dino {path}: not a readable checkpoint ({type(exc).__name__})") from exc
    sd = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd:
        raise AvsError(f"--dino {path}: not a Grounding DINO checkpoint (no state dict in it)")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if "backbone.0.patch_embed.proj.weight" not in sd or "transformer.level_embed" not in sd:
        raise AvsError(f"--dino {path}: not an original Grounding DINO checkpoint "
                       "(no backbone.0.patch_embed / transformer.level_embed keys)")
    return sd


def bert_tokenizer(allow_download: bool) -> Path:
    """The folder of the bert-base-uncased tokenizer in the local Hugging Face cache (downloaded if allowed)."""
    hub = require("huggingface_hub", "models")
    for repo in BERT_IDS:
        try:
            return Path(hub.snapshot_download(repo, allow_patterns=TOKENIZER_FILES, local_files_only=not allow_download))
        except Exception:  # noqa: BLE001, S112 - try the next id, then say what is missing
            continue
    hint = "" if allow_download else " (--allow-download fetches it)"
    raise UsageError(f"an original Grounding DINO checkpoint needs the bert-base-uncased tokenizer in the local "
                     f"Hugging Face cache{hint}")


def convert(path: Path, sd: dict, out: Path, tokenizer: Path) -> None:
    """Convert one original checkpoint (its state dict from `read_original`) into a transformers folder `out`
    (model, config, processor), checking that transformers loads every weight of it."""
    transformers = require("transformers", "models")
    from safetensors.torch import save_file

    try:
        cfg = config_from_state(sd)
        hf = to_hf(sd)
    except (KeyError, IndexError, ValueError) as exc:
        raise AvsError(f"--dino {path}: not an original Grounding DINO checkpoint ({type(exc).__name__}: {exc})") from exc
    last = cfg.backbone_config.embed_dim * 2 ** (len(cfg.backbone_config.depths) - 1)
    torch = require("torch", "models")
    hf.setdefault(SWIN + "swin.layernorm.weight", torch.ones(last))  # transformers' unused final Swin norm
    hf.setdefault(SWIN + "swin.layernorm.bias", torch.zeros(last))
    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in hf.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg.save_pretrained(out)
    tok = transformers.BertTokenizerFast.from_pretrained(tokenizer)
    transformers.GroundingDinoProcessor(image_processor=transformers.GroundingDinoImageProcessor(),
                                        tokenizer=tok).save_pretrained(out)
    _, info = transformers.GroundingDinoForObjectDetection.from_pretrained(out, output_loading_info=True)
    bad = [*info.get("missing_keys", []), *info.get("unexpected_keys", []), *info.get("mismatched_keys", [])]
    if bad:
        raise AvsError(f"--dino {path}: the converted weights do not fit transformers' Grounding DINO "
                       f"({len(bad)} keys, e.g. {sorted(map(str, bad))[0]})")


def converted_folder(path: Path, allow_download: bool = False, tokenizer: Path | None = None) -> tuple[Path, str]:
    """(transformers folder, sha256 prefix of the original file): the cached conversion, made on first use."""
    sha = checkpoint_hash(path)
    final = cache_root() / "grounding-dino" / f"{sha}-v{CONVERTER}"
    if (final / "source.json").is_file():
        return final, sha
    sd = read_original(path)  # before the tokenizer: a wrong file is named as such
    tok = tokenizer or bert_tokenizer(allow_download)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        convert(path, sd, tmp / "model", tok)
        st = path.stat()
        (tmp / "model" / "source.json").write_text(json.dumps(
            {"file": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha,
             "converter": CONVERTER}, indent=1))
        try:
            os.rename(tmp / "model", final)  # atomic: a reader sees no folder or a whole one
        except OSError:
            if not (final / "source.json").is_file():  # not a concurrent conversion that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final, sha
