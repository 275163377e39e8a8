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


@pytest.mark.parametrize("shape", [(97, 131, 3), (1, 1, 3), (64, 48), (3, 200), (720, 1280)])
def test_decode_png_reads_what_encode_png_writes_and_declines_other_pngs(shape, tmp_path):
    from avsbench_tools.pngfast import decode_png, read_png

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(img)), img)
    other = io.BytesIO()
    Image.fromarray(img).save(other, format="PNG", optimize=True)  # Pillow picks its own row filters
    p = tmp_path / "pil.png"
    p.write_bytes(other.getvalue())
    assert np.array_equal(read_png(p), img)  # decoded exactly, by decode_png when it can, else Pillow
    assert decode_png(b"not a png") is None and decode_png(encode_png(img)[:40]) is None
    damaged = bytearray(encode_png(img))
    damaged[45] ^= 1  # a bit of the image data: its chunk's CRC no longer matches
    assert decode_png(bytes(damaged)) is None
