"""The bundled TPAVI baseline (AVSBench): model, weights, training, evaluation and prediction.

Modules import torch inside functions or at their own import; this package file stays light.
"""
