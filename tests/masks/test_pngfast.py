"""The fast PNG encoder decodes bit-exactly in Pillow and OpenCV."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from avsbench_tools.pngfast import encode_png


@pytest.mark.parametrize("shape", [(97, 131, 3), (1, 1, 3), (64, 48), (3, 200)])
def test_roundtrip(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    img[: shape[0] // 2] //= 7  # some smooth, some noisy rows
    data = encode_png(img)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(back[..., ::-1] if back.ndim == 3 else back, img)


def test_rejects_other_dtypes():
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 4), np.uint8))
