"""Tiny random-weight checkpoints in the real formats, built offline in the tests."""

from __future__ import annotations

from pathlib import Path

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "red", "blue", "orange", "yellow", "gray", "green",
         "cyan", "magenta", "circle", "square", "triangle", "diamond", "rectangle", "hexagon", "cross", "ellipse"]


def tiny_dino(out: Path) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})
    proc = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(
        size={"shortest_edge": 64, "longest_edge": 96}), tokenizer=tok)
    bb = SwinConfig(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                    out_features=["stage2", "stage3", "stage4"])
    tc = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=64)
    cfg = GroundingDinoConfig(backbone_config=bb.to_dict(), text_config=tc.to_dict(), d_model=32, encoder_layers=1,
                              decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                              encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=8, num_feature_levels=3,
                              encoder_n_points=2, decoder_n_points=2, max_text_len=32, use_timm_backbone=False)
    GroundingDinoForObjectDetection(cfg).eval().save_pretrained(out)
    proc.save_pretrained(out)
    return out


def tiny_hf_sam(out: Path) -> Path:
    import torch
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    torch.manual_seed(0)
    vc = SamVisionConfig(hidden_size=32, output_channels=32, num_hidden_layers=1, num_attention_heads=2, image_size=64,
                         patch_size=16, mlp_dim=64, global_attn_indexes=[0], window_size=0, num_pos_feats=16)
    pc = SamPromptEncoderConfig(hidden_size=32, image_size=64, patch_size=16, mask_input_channels=4)
    mc = SamMaskDecoderConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64,
                              iou_head_hidden_dim=32)
    cfg = SamConfig(vision_config=vc.to_dict(), prompt_encoder_config=pc.to_dict(), mask_decoder_config=mc.to_dict())
    SamModel(cfg).eval().save_pretrained(out)
    SamProcessor(image_processor=SamImageProcessor(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}, mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16})).save_pretrained(out)
    return out


def tiny_orig_sam():
    """segment-anything's Sam with a one-block 64-pixel image encoder."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    enc = ImageEncoderViT(img_size=64, patch_size=16, embed_dim=32, depth=1, num_heads=2, out_chans=32,
                          global_attn_indexes=(0,), window_size=0)
    pe = PromptEncoder(embed_dim=32, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4)
    md = MaskDecoder(transformer_dim=32, transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64,
                                                                       num_heads=2),
                     num_multimask_outputs=3, iou_head_depth=2, iou_head_hidden_dim=32)
    return Sam(image_encoder=enc, prompt_encoder=pe, mask_decoder=md).eval()


def tiny_clap(out: Path) -> Path:
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizerFast
    from transformers.models.clap.configuration_clap import ClapAudioConfig, ClapTextConfig

    torch.manual_seed(0)
    chars = ["<s>", "<pad>", "</s>", "<unk>", "Ġ", *"abcdefghijklmnopqrstuvwxyz"]
    tok = RobertaTokenizerFast(vocab={w: i for i, w in enumerate(chars)}, merges=[])
    ac = ClapAudioConfig(window_size=4, num_mel_bins=16, spec_size=64, patch_stride=2, hidden_size=32,
                         patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[1, 1], num_hidden_layers=2,
                         projection_dim=16, enable_fusion=False, patch_embed_input_channels=4)
    tc = ClapTextConfig(vocab_size=len(chars), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, projection_dim=16)
    ClapModel(ClapConfig(text_config=tc.to_dict(), audio_config=ac.to_dict(), projection_dim=16)).eval().save_pretrained(out)
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, hop_length=480, max_length_s=1,
                              fft_window_size=1024, nb_max_samples=48000)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)
    return out


def sam2_config(size: int = 64, tiny: bool = True):
    """A Sam2VideoConfig: tiny Hiera (6.9M parameters) at `size` px, or the default (hiera-tiny) sizes.
    64 px as the other tiny models: the tracker runs on every decoded frame between the sampled ones (about 100
    per 5-s clip), and at 256 px that was most of a minute on a CPU; what the tests check (ids, mask sizes,
    the checkpoint's identity) does not depend on the model's input size."""
    from transformers import Sam2VideoConfig

    if not tiny:
        return Sam2VideoConfig()
    s = size
    return Sam2VideoConfig(
        image_size=s, memory_attention_rope_feat_sizes=[s // 16, s // 16], memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=256, memory_fuser_intermediate_dim=256, num_maskmem=3,
        vision_config=dict(backbone_config=dict(
            model_type="sam2_hiera_det_model", image_size=[s, s], blocks_per_stage=[1, 2, 2, 1],
            embed_dim_per_stage=[32, 64, 128, 256], num_attention_heads_per_stage=[1, 1, 2, 2],
            global_attention_blocks=[2, 4], window_size_per_stage=[8, 4, 4, 4], hidden_size=32),
            backbone_channel_list=[256, 128, 64, 32], backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8],
                                                                              [s // 16, s // 16]]),
        prompt_encoder_config=dict(image_size=s))


def tiny_sam2(out: Path, tiny: bool = True) -> Path:
    import torch
    from transformers import Sam2ImageProcessor, Sam2VideoModel, Sam2VideoProcessor, Sam2VideoVideoProcessor

    torch.manual_seed(0)
    cfg = sam2_config(tiny=tiny)
    Sam2VideoModel(cfg).eval().save_pretrained(out)
    s = {"height": cfg.image_size, "width": cfg.image_size}
    Sam2VideoProcessor(image_processor=Sam2ImageProcessor(size=s),
                       video_processor=Sam2VideoVideoProcessor(size=s)).save_pretrained(out)
    return out


# -- Grounding DINO in the original repository's layout (groundingdino_swint_ogc.pth) ----------------------
def dino_original_config():
    """A tiny GroundingDinoConfig whose shapes the original-checkpoint loader can read back: 8 detector heads
    and BERT at 1 head per 64 width, as in the published checkpoints, and their max_text_len 256."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    bb = SwinConfig(image_size=64, embed_dim=16, depths=[1, 2, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                    out_features=["stage2", "stage3", "stage4"])
    tc = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=1,
                    intermediate_size=64, max_position_embeddings=256)
    return GroundingDinoConfig(backbone_config=bb.to_dict(), text_config=tc.to_dict(), d_model=32, encoder_layers=2,
                               decoder_layers=2, encoder_attention_heads=8, decoder_attention_heads=8,
                               encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=8, num_feature_levels=4,
                               encoder_n_points=2, decoder_n_points=3, max_text_len=256, use_timm_backbone=False)


def bert_tokenizer_cache(hub: Path) -> Path:
    """A Hugging Face hub cache folder holding a tiny 'google-bert/bert-base-uncased' tokenizer (WORDS)."""
    from transformers import BertTokenizer

    snap = hub / "models--google-bert--bert-base-uncased" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(snap)
    (hub / "models--google-bert--bert-base-uncased" / "refs").mkdir()
    (hub / "models--google-bert--bert-base-uncased" / "refs" / "main").write_text("0123abcd")
    return hub


def _cat(sd: dict, prefix: str, parts=("query", "key", "value")) -> dict:
    import torch

    return {s: torch.cat([sd[f"{prefix}.{p}.{s}"] for p in parts]) for s in ("weight", "bias")}


def dino_to_original(folder: Path, out: Path, seed: int = 0) -> Path:
    """Write the transformers Grounding DINO in `folder` as the original repository saves it: `module.`-prefixed
    keys under 'model', its own module names (written out here by hand from the original code's parameter
    names, not from the loader's rename table), fused qkv / in_proj matrices, the shared box head under both
    `bbox_embed.N` and `transformer.decoder.bbox_embed.N`, buffers, and BERT's pooler."""
    import argparse
    import json

    import torch
    from safetensors.torch import load_file

    cfg = json.loads((folder / "config.json").read_text())
    hf = load_file(str(folder / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    o: dict = {}
    S = "model.backbone.conv_encoder.model."
    o["backbone.0.patch_embed.proj.weight"] = hf[S + "embeddings.patch_embeddings.projection.weight"]
    o["backbone.0.patch_embed.proj.bias"] = hf[S + "embeddings.patch_embeddings.projection.bias"]
    o["backbone.0.patch_embed.norm.weight"] = hf[S + "embeddings.norm.weight"]
    o["backbone.0.patch_embed.norm.bias"] = hf[S + "embeddings.norm.bias"]
    depths = cfg["backbone_config"]["depths"]
    win = cfg["backbone_config"]["window_size"]
    for i, depth in enumerate(depths):
        for b in range(depth):
            h, p = f"{S}encoder.layers.{i}.blocks.{b}.", f"backbone.0.layers.{i}.blocks.{b}."
            for s in ("weight", "bias"):
                o[p + f"norm1.{s}"] = hf[h + f"layernorm_before.{s}"]
                o[p + f"norm2.{s}"] = hf[h + f"layernorm_after.{s}"]
                o[p + f"attn.proj.{s}"] = hf[h + f"attention.output.dense.{s}"]
                o[p + f"mlp.fc1.{s}"] = hf[h + f"intermediate.dense.{s}"]
                o[p + f"mlp.fc2.{s}"] = hf[h + f"output.dense.{s}"]
                o[p + f"attn.qkv.{s}"] = _cat(hf, h + "attention.self")[s]
            o[p + "attn.relative_position_bias_table"] = hf[h + "attention.self.relative_position_bias_table"]
            o[p + "attn.relative_position_index"] = torch.zeros(win * win, win * win, dtype=torch.long)  # a buffer
        if i < len(depths) - 1:
            for s in ("reduction.weight", "norm.weight", "norm.bias"):
                o[f"backbone.0.layers.{i}.downsample.{s}"] = hf[f"{S}encoder.layers.{i}.downsample.{s}"]
    for stage in (2, 3, 4):
        for s in ("weight", "bias"):
            o[f"backbone.0.norm{stage - 1}.{s}"] = hf[f"{S}hidden_states_norms.stage{stage}.{s}"]
    enc = {"self_attn.sampling_offsets": "deformable_layer.self_attn.sampling_offsets",
           "self_attn.attention_weights": "deformable_layer.self_attn.attention_weights",
           "self_attn.value_proj": "deformable_layer.self_attn.value_proj",
           "self_attn.output_proj": "deformable_layer.self_attn.output_proj",
           "norm1": "deformable_layer.self_attn_layer_norm", "linear1": "deformable_layer.fc1",
           "linear2": "deformable_layer.fc2", "norm2": "deformable_layer.final_layer_norm"}
    text = {"self_attn.out_proj": "text_enhancer_layer.self_attn.out_proj", "linear1": "text_enhancer_layer.fc1",
            "linear2": "text_enhancer_layer.fc2", "norm1": "text_enhancer_layer.layer_norm_before",
            "norm2": "text_enhancer_layer.layer_norm_after"}
    fusion = {"layer_norm_v": "layer_norm_vision", "layer_norm_l": "layer_norm_text", "attn.v_proj": "attn.vision_proj",
              "attn.l_proj": "attn.text_proj", "attn.values_v_proj": "attn.values_vision_proj",
              "attn.values_l_proj": "attn.values_text_proj", "attn.out_v_proj": "attn.out_vision_proj",
              "attn.out_l_proj": "attn.out_text_proj"}
    for n in range(cfg["encoder_layers"]):
        h = f"model.encoder.layers.{n}."
        for s in ("weight", "bias"):
            for a, b in enc.items():
                o[f"transformer.encoder.layers.{n}.{a}.{s}"] = hf[f"{h}{b}.{s}"]
            for a, b in text.items():
                o[f"transformer.encoder.text_layers.{n}.{a}.{s}"] = hf[f"{h}{b}.{s}"]
            for a, b in fusion.items():
                o[f"transformer.encoder.fusion_layers.{n}.{a}.{s}"] = hf[f"{h}fusion_layer.{b}.{s}"]
            o[f"transformer.encoder.text_layers.{n}.self_attn.in_proj_{s}"] = _cat(
                hf, h + "text_enhancer_layer.self_attn")[s]
        o[f"transformer.encoder.fusion_layers.{n}.gamma_v"] = hf[h + "fusion_layer.vision_param"]
        o[f"transformer.encoder.fusion_layers.{n}.gamma_l"] = hf[h + "fusion_layer.text_param"]
    dec = {"cross_attn.sampling_offsets": "encoder_attn.sampling_offsets",
           "cross_attn.attention_weights": "encoder_attn.attention_weights", "cross_attn.value_proj": "encoder_attn.value_proj",
           "cross_attn.output_proj": "encoder_attn.output_proj", "norm1": "encoder_attn_layer_norm",
           "ca_text.out_proj": "encoder_attn_text.out_proj", "catext_norm": "encoder_attn_text_layer_norm",
           "self_attn.out_proj": "self_attn.out_proj", "norm2": "self_attn_layer_norm", "linear1": "fc1", "linear2": "fc2",
           "norm3": "final_layer_norm"}
    for n in range(cfg["decoder_layers"]):
        h = f"model.decoder.layers.{n}."
        for s in ("weight", "bias"):
            for a, b in dec.items():
                o[f"transformer.decoder.layers.{n}.{a}.{s}"] = hf[f"{h}{b}.{s}"]
            o[f"transformer.decoder.layers.{n}.self_attn.in_proj_{s}"] = _cat(hf, h + "self_attn")[s]
            o[f"transformer.decoder.layers.{n}.ca_text.in_proj_{s}"] = _cat(hf, h + "encoder_attn_text")[s]
    for k, v in hf.items():
        for a, b in (("model.decoder.reference_points_head.", "transformer.decoder.ref_point_head."),
                     ("model.decoder.layer_norm.", "transformer.decoder.norm."), ("model.enc_output.", "transformer.enc_output."),
                     ("model.enc_output_norm.", "transformer.enc_output_norm."),
                     ("model.encoder_output_bbox_embed.", "transformer.enc_out_bbox_embed."),
                     ("model.text_backbone.", "bert."), ("model.text_projection.", "feat_map."),
                     ("model.input_proj_vision.", "input_proj.")):
            if k.startswith(a):
                o[b + k[len(a):]] = v
        if k.startswith("bbox_embed.0."):  # one shared head, saved under every decoder layer and both owners
            for n in range(cfg["decoder_layers"]):
                o[f"bbox_embed.{n}.{k[len('bbox_embed.0.'):]}"] = v
                o[f"transformer.decoder.bbox_embed.{n}.{k[len('bbox_embed.0.'):]}"] = v
    o["transformer.level_embed"] = hf["model.level_embed"]
    o["transformer.tgt_embed.weight"] = hf["model.query_position_embeddings.weight"]
    hid = cfg["text_config"]["hidden_size"]
    o["bert.pooler.dense.weight"] = torch.randn(hid, hid, generator=g)
    o["bert.pooler.dense.bias"] = torch.randn(hid, generator=g)
    o["bert.embeddings.position_ids"] = torch.arange(cfg["text_config"]["max_position_embeddings"])[None]
    torch.save({"model": {"module." + k: v.clone() for k, v in o.items()}, "epoch": 11,
                "args": argparse.Namespace(modelname="groundingdino")}, out)
    return out


def tiny_dino_original(out: Path, hf_folder: Path, seed: int = 0) -> Path:
    """A tiny Grounding DINO saved as a transformers folder (hf_folder, the reference) and in the original
    layout (out, a .pth), with the same weights."""
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(dino_original_config()).eval().save_pretrained(hf_folder)
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
                           tokenizer=BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)})).save_pretrained(hf_folder)
    return dino_to_original(hf_folder, out, seed)


# -- SAM 3 video (detector + tracker in one model) ------------------------------------------------------------
CLIP_WORDS = ["<|startoftext|>", "<|endoftext|>", *[c + "</w>" for c in "abcdefghijklmnopqrstuvwxyz"],
              *"abcdefghijklmnopqrstuvwxyz"]


def sam3_config(tiny: bool = True, size: int = 112):
    """A Sam3VideoConfig: a tiny one (ViT of 1 block, 2 queries, `size` px; widths the tracker needs: its hidden
    size must exceed the 64-channel memory) that keeps every detection (thresholds 0), or the real sizes."""
    from transformers import Sam3VideoConfig

    if not tiny:
        return Sam3VideoConfig()
    s, p, h = size, 14, 128
    vit = dict(model_type="sam3_vit_model", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=s,
               patch_size=p, window_size=4, global_attn_indexes=[0], pretrain_image_size=s)
    layer = dict(hidden_size=h, num_layers=1, num_attention_heads=2, intermediate_size=64)
    det = dict(vision_config=dict(backbone_config=vit, fpn_hidden_size=h),
               text_config=dict(vocab_size=len(CLIP_WORDS), hidden_size=32, intermediate_size=64, projection_dim=32,
                                num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32,
                                bos_token_id=0, eos_token_id=1, pad_token_id=1),
               geometry_encoder_config=layer, detr_encoder_config=layer,
               detr_decoder_config={**layer, "num_queries": 2},
               mask_decoder_config=dict(hidden_size=h, num_upsampling_stages=2, num_attention_heads=2))
    trk = dict(vision_config=dict(backbone_config=vit, fpn_hidden_size=h),
               prompt_encoder_config=dict(hidden_size=h, image_size=s, patch_size=p, mask_input_channels=4),
               mask_decoder_config=dict(hidden_size=h, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=h),
               memory_attention_hidden_size=h, memory_attention_num_layers=1, memory_attention_feed_forward_hidden_size=64,
               memory_encoder_hidden_size=h, mask_downsampler_embed_dim=h, memory_fuser_embed_dim=h,
               memory_fuser_intermediate_dim=64, num_maskmem=3)
    cfg = Sam3VideoConfig(detector_config=det, tracker_config=trk, low_res_mask_size=4 * s // p,
                          score_threshold_detection=0.0, new_det_thresh=0.0, hotstart_delay=0)
    cfg.image_size = s
    return cfg


def tiny_sam3(out: Path, tiny: bool = True) -> Path:
    """A random-weight Sam3VideoModel folder with its processor (an offline CLIP tokenizer of letters)."""
    import torch
    from transformers import (
        CLIPTokenizer,
        Sam2VideoVideoProcessor,
        Sam3ImageProcessor,
        Sam3VideoModel,
        Sam3VideoProcessor,
    )

    torch.manual_seed(0)
    cfg = sam3_config(tiny)
    model = Sam3VideoModel(cfg).eval()
    if tiny:  # random weights: bias the tracker's object-score head so tracked objects stay present between frames
        with torch.no_grad():
            model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(5.0)
    model.save_pretrained(out)
    s = {"height": cfg.image_size, "width": cfg.image_size}
    Sam3VideoProcessor(image_processor=Sam3ImageProcessor(size=s), video_processor=Sam2VideoVideoProcessor(size=s),
                       tokenizer=CLIPTokenizer(vocab={w: i for i, w in enumerate(CLIP_WORDS)}, merges=[])
                       ).save_pretrained(out)
    return out
