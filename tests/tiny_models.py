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


def sam2_config(size: int = 256, tiny: bool = True):
    """A Sam2VideoConfig: tiny Hiera (6.9M parameters) at `size` px, or the default (hiera-tiny) sizes."""
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
