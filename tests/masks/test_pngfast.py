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


@pytest.mark.parametrize("shape", [(720, 1280), (1, 1), (5, 13), (240, 321)])
def test_masks_are_1_bit_pngs_every_reader_reads_alike(shape, tmp_path):
    """A stored mask is a 1-bit grey PNG (rows unfiltered, widths not a multiple of 8 padded): Pillow, OpenCV and
    `read_mask` read the same painted pixels, `read_png` gives 8-bit 0/255, and a mask stored as 8-bit 0/255 by
    earlier versions reads back the same through `read_mask`."""
    from avsbench_tools.pngfast import decode_mask, encode_png_1bit, read_mask, read_png

    rng = np.random.default_rng(2)
    mask = rng.random(shape) < 0.3
    mask[: shape[0] // 2] = np.add.outer(np.arange(shape[0] // 2), np.arange(shape[1])) % 17 < 6  # runs, not noise
    data = encode_png_1bit(mask)
    assert Image.open(io.BytesIO(data)).mode == "1"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), mask)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) > 0, mask)
    p = tmp_path / "m.png"
    p.write_bytes(data)
    got = read_mask(p)
    assert got.dtype == np.bool_ and np.array_equal(got, mask)
    assert np.array_equal(read_png(p), mask.astype(np.uint8) * 255)
    old = tmp_path / "old.png"
    old.write_bytes(encode_png(mask.astype(np.uint8) * 255))  # the 8-bit 0/255 masks of older workspaces
    assert np.array_equal(read_mask(old), mask)
    pil = tmp_path / "pil.png"
    Image.fromarray(mask).save(pil)  # Pillow's own 1-bit PNG (its row filters): read by Pillow, the same
    assert np.array_equal(read_mask(pil), mask)
    assert decode_mask(data[:40]) is None and decode_mask(encode_png(mask.astype(np.uint8))) is None
    with pytest.raises(ValueError):
        encode_png_1bit(np.zeros((2, 2, 2), bool))
