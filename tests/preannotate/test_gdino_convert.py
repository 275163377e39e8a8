"""Original Grounding DINO checkpoints (the repository's .pth layout) load into transformers' model: the key
mapping on a tiny model saved in the original layout, the cache of converted weights, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cli_here
from tests.helpers.tiny_models import (
    bert_tokenizer_cache,
    dino_to_original,
    tiny_dino_original,
    tiny_hf_sam,
    tiny_orig_sam,
)

torch = pytest.importorskip("torch")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the CLI children too: a shared 2-core box is far faster single-threaded


pytestmark = pytest.mark.usefixtures("torch_one_thread")

# names from a published parameter listing of the original model (IDEA-Research/GroundingDINO), one per
# kind of module: the tiny original-layout file must use the same ones
PUBLISHED = ["backbone.0.patch_embed.proj.weight", "backbone.0.layers.0.blocks.0.attn.qkv.weight",
             "backbone.0.layers.0.blocks.0.attn.relative_position_bias_table", "backbone.0.layers.0.downsample.norm.bias",
             "transformer.level_embed", "transformer.encoder.layers.0.self_attn.sampling_offsets.weight",
             "transformer.encoder.text_layers.0.self_attn.in_proj_weight", "transformer.encoder.fusion_layers.0.gamma_v",
             "transformer.encoder.fusion_layers.0.attn.values_l_proj.bias", "transformer.decoder.layers.0.ca_text.in_proj_bias",
             "transformer.decoder.layers.0.catext_norm.weight", "transformer.decoder.layers.1.norm3.weight",
             "transformer.decoder.ref_point_head.layers.1.bias", "transformer.decoder.bbox_embed.0.layers.2.weight",
             "transformer.tgt_embed.weight", "transformer.enc_output_norm.bias", "transformer.enc_out_bbox_embed.layers.0.weight",
             "bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.attention.self.query.weight",
             "bert.pooler.dense.weight", "feat_map.weight", "input_proj.3.1.weight"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("gdino")
    return {"pth": tiny_dino_original(d / "groundingdino_tiny.pth", d / "hf"), "hf": d / "hf",
            "hub": bert_tokenizer_cache(d / "hub"), "dir": d}


@pytest.fixture
def env(tiny, tmp_path, monkeypatch) -> dict[str, str]:
    """A fresh converted-weights cache and the hub cache with the (tiny) bert-base-uncased tokenizer."""
    import huggingface_hub.constants

    monkeypatch.setenv("AVS_TOOLS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tiny["hub"]))
    return {"AVS_TOOLS_CACHE": str(tmp_path / "cache"), "HF_HUB_CACHE": str(tiny["hub"]), "HF_HUB_OFFLINE": "1",
            **ONE_THREAD}


def test_the_tiny_file_uses_the_published_names(tiny):
    sd = torch.load(tiny["pth"], map_location="cpu", weights_only=False)["model"]
    assert all(k.startswith("module.") for k in sd)
    missing = [k for k in PUBLISHED if "module." + k not in sd]
    assert not missing, missing


def test_original_layout_loads_into_transformers_exactly(tiny, env):
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

    from avsbench_tools.preannotate.models import load_dino

    dino = load_dino(str(tiny["pth"]), "cpu")
    assert dino.name == str(tiny["pth"]) and len(dino.sha) == 16
    ref = GroundingDinoForObjectDetection.from_pretrained(tiny["hf"]).eval()
    got, want = dino.model.state_dict(), ref.state_dict()
    assert set(got) == set(want) and not [k for k in want if not torch.equal(got[k], want[k])]
    proc = GroundingDinoProcessor.from_pretrained(tiny["hf"])
    img = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    inputs = proc(images=img, text="red circle . blue square .", return_tensors="pt")
    with torch.inference_mode():
        a, b = ref(**inputs), dino.model(**inputs)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.pred_boxes, b.pred_boxes)
    # and the handle detects through the converted folder's own processor (made small: the original
    # model's 800 px input would cost seconds per frame on a CPU even for this tiny model)
    assert dino.processor.image_processor.size["shortest_edge"] == 800
    dino.processor.image_processor.size = {"shortest_edge": 64, "longest_edge": 96}
    assert dino.detect(img, {"guitar": "red circle"}, 0, 0.0, 0.0)


def test_conversion_is_cached_and_keyed_by_content(tiny, env, tmp_path, monkeypatch):
    from avsbench_tools.preannotate import gdino_convert

    folder, sha = gdino_convert.converted_folder(tiny["pth"])
    assert folder.parent == Path(env["AVS_TOOLS_CACHE"]) / "grounding-dino" and folder.name == f"{sha}-v1"
    src = json.loads((folder / "source.json").read_text())
    assert src["sha256"] == sha and src["size"] == tiny["pth"].stat().st_size

    def no_conversion(*a, **k):
        raise AssertionError("converted again")

    convert = gdino_convert.convert
    monkeypatch.setattr(gdino_convert, "convert", no_conversion)
    assert gdino_convert.converted_folder(tiny["pth"]) == (folder, sha)
    monkeypatch.setattr(gdino_convert, "convert", convert)
    changed = dino_to_original(tiny["hf"], tmp_path / "groundingdino_tiny.pth", seed=1)  # other pooler weights
    folder2, sha2 = gdino_convert.converted_folder(changed)
    assert sha2 != sha and folder2 != folder and folder.is_dir()
    assert not list(folder.parent.glob(".*"))  # no temporary folder left behind


def test_wrong_files_fail_in_one_line(tiny, env, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from avsbench_tools.preannotate import check_models

    sam = tmp_path / "sam_vit_b.pth"
    torch.save(tiny_orig_sam().state_dict(), sam)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    folder = tiny_hf_sam(tmp_path / "sam-folder")
    for spec, msg in ((sam, "not an original Grounding DINO checkpoint"), (garbage, "not a readable checkpoint"),
                      (folder, "not a Grounding DINO checkpoint")):
        (row, _) = check_models(str(spec), None, "cpu")
        assert not row["loads"] and msg in row["detail"] and "\n" not in row["detail"], row
    r = cli_here("models", "check", "--dino", sam, "--device", "cpu", env=env)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("dino"))
    assert r.returncode == 1 and "FAILED" in line and "not an original Grounding DINO" in line
    assert "Traceback" not in r.stderr
    # the tokenizer is looked up in the local cache only; without it, one line says what is missing
    empty = tmp_path / "empty-hub"
    empty.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(empty))
    (row, _) = check_models(str(tiny["pth"]), None, "cpu")
    assert not row["loads"] and "bert-base-uncased tokenizer" in row["detail"] and "--allow-download" in row["detail"]


def test_models_check_and_the_run_settings_take_the_original_file(tiny, env, tmp_path):
    from avsbench_tools.checkpoints import checkpoint_hash
    from avsbench_tools.preannotate import Models, PreannotateOptions, settings_for

    r = cli_here("models", "check", "--dino", tiny["pth"], "--device", "cpu", env=env)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("dino"))
    assert r.returncode == 0 and " ok " in line and "GroundingDinoForObjectDetection" in line, r.stdout + r.stderr
    opts = PreannotateOptions(dino=str(tiny["pth"]), sam=str(tiny_hf_sam(tmp_path / "sam")), device="cpu")
    s = settings_for(opts, "grounded-sam", Models(opts), "recipe")  # what every mask version of the run records
    assert s["dino"] == {"id": str(tiny["pth"]), "sha256": checkpoint_hash(tiny["pth"])}
