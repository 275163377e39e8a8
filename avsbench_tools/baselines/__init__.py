"""The bundled TPAVI baseline (AVSBench): model, weights, training, evaluation and prediction.

Modules import torch inside functions or at their own import; this package file stays light.
"""

# The names other stages use (release_check), imported on first use (PEP 562) so this package file stays light.
_HOME = {"SIZE": "dataset", "ClipDataset": "dataset", "open_release": "dataset", "palette_lookup": "dataset",
         "read_binary_mask": "dataset", "read_rgb": "dataset", "avss_image": "dataset", "FIXED_VGGISH": "weights",
         "TrainOptions": "train", "train_baseline": "train", "PredictOptions": "predict",
         "predict_baseline": "predict", "frame_paths": "predict"}
# the entry points under names that do not clash with their modules (baselines.train is the module once imported)
_NAME = {"train_baseline": "train", "predict_baseline": "predict"}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), _NAME.get(name, name))
