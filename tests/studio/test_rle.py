"""The brush RLE codec against label-studio-sdk's mask2rle/decode_rle and an emulated editor encoder.

The editor (Label Studio's frontend, @thi.ng/rle-pack) encodes differently from the SDK: literal
records holding several values, a trailing lone value as a repeat of 1, no extra pad byte, and
anti-aliased alpha. `editor_encode` below writes that style from the format description (it is an
independent reference, bit by bit in plain Python), so the decoder is checked on both styles.
"""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from avsbench_tools.studio import rle

SIZES = (3, 4, 8, 16)


# --- an independent reference encoder in the editor's style --------------------------------------

def _field(value: int, bits: int) -> str:
    assert 0 <= value < (1 << bits)
    return format(value, f"0{bits}b")


def _class_of(count: int) -> int:
    """Size class for a record of `count` values (count - 1 must fit the class's bits)."""
    return next(i for i, s in enumerate(SIZES) if count - 1 < (1 << s))


def editor_encode(values) -> list[int]:
    """Encode a flat uint8 array like the Label Studio editor: runs of 2+ equal values as repeat
    records (split at 65,536), lone values gathered into literal records (up to 65,536 values), a
    lone last value after a repeat written as a repeat of 1, and only the bits needed (no pad byte)."""
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    out = [_field(len(vals), 32), _field(7, 5), *(_field(s - 1, 4) for s in SIZES)]
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(vals):
        j = i
        while j < len(vals) and vals[j] == vals[i]:
            j += 1
        length = j - i
        while length > 1 << 16:  # a full repeat record, then the rest
            runs.append((vals[i], 1 << 16))
            length -= 1 << 16
        runs.append((vals[i], length))
        i = j
    chunk: list[int] = []

    def flush() -> None:
        if chunk:
            c = _class_of(len(chunk))
            out.append("0" + _field(c, 2) + _field(len(chunk) - 1, SIZES[c]) + "".join(_field(v, 8) for v in chunk))
            chunk.clear()

    for k, (v, n) in enumerate(runs):
        if n == 1 and (chunk or k < len(runs) - 1):
            chunk.append(v)
            if len(chunk) == 1 << 16:
                flush()
            continue
        flush()
        c = _class_of(n)
        out.append("1" + _field(c, 2) + _field(n - 1, SIZES[c]) + _field(v, 8))
    flush()
    bits = "".join(out)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def _record_kinds(stream: list[int]) -> list[tuple[int, int]]:
    """(repeat bit, count) of each record, parsed bit by bit (to check the reference's style)."""
    bits = "".join(format(b, "08b") for b in stream)
    num, at, kinds, done = int(bits[:32], 2), 53, [], 0
    while done < num:
        rep, c = int(bits[at]), int(bits[at + 1: at + 3], 2)
        n = int(bits[at + 3: at + 3 + SIZES[c]], 2) + 1
        at += 3 + SIZES[c] + 8 * (1 if rep else n)
        kinds.append((rep, n))
        done += n
    return kinds


def rgba_of(alpha: np.ndarray, color=(255, 0, 0)) -> np.ndarray:
    """The editor's RGBA for a brush layer: the label colour where painted, zero elsewhere."""
    rgba = np.zeros(alpha.shape + (4,), np.uint8)
    rgba[alpha > 0, :3] = color
    rgba[..., 3] = alpha
    return rgba


def sdk_alpha(stream, h: int, w: int) -> np.ndarray:
    return decode_rle(stream).reshape(h, w, 4)[..., 3]


def antialiased(h: int, w: int, seed: int) -> np.ndarray:
    """A soft-edged blob: alpha 255 inside, 1..254 over a few pixels at the edge, 0 outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, max(h, w) / 2)
    d = np.hypot(yy - cy, xx - cx)
    return np.clip((r - d) * 255 / 3, 0, 255).astype(np.uint8)


def random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        return rng.random((h, w)) < rng.uniform(0, 1)
    if kind == 1:  # blocks: long runs
        m = np.zeros((h, w), bool)
        for _ in range(rng.integers(1, 4)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0: y0 + rng.integers(1, h + 1), x0: x0 + rng.integers(1, w + 1)] ^= True
        return m
    if kind == 2:
        return np.zeros((h, w), bool) if rng.random() < 0.5 else np.ones((h, w), bool)
    return np.repeat(rng.random((h, 1)) < 0.5, w, axis=1)  # whole rows


# --- the reference itself ---------------------------------------------------------------------------

def test_reference_writes_the_editor_style():
    vals = np.array([5, 5, 5, 1, 2, 3, 9, 9, 4], np.uint8)
    stream = editor_encode(vals)
    assert _record_kinds(stream) == [(1, 3), (0, 3), (1, 2), (1, 1)]  # literal of 3; lone last = repeat 1
    assert np.array_equal(decode_rle(stream), vals)
    assert (53 + 14 + (3 + 3 + 24) + 14 + 14 + 7) // 8 == len(stream)  # no extra pad byte
    assert _record_kinds(editor_encode(np.array([1, 1, 2, 3], np.uint8))) == [(1, 2), (0, 2)]  # lone last joins a literal


# --- encode: same image as the SDK ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (3, 7), (7, 3), (13, 17), (64, 1)])
def test_encode_odd_sizes_random(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        m = random_mask(rng, *shape)
        ours = rle.encode(m)
        assert np.array_equal(decode_rle(ours), decode_rle(mask2rle(m.astype(np.uint8) * 255)))
        assert np.array_equal(rle.decode(ours, *shape), m.astype(np.uint8) * 255)


def test_encode_many_random_masks_match_the_sdk():
    rng = np.random.default_rng(14)
    for _ in range(150):
        h, w = rng.integers(1, 48, size=2)
        m = random_mask(rng, h, w)
        ours = rle.encode(m)
        theirs = mask2rle(m.astype(np.uint8) * 255)
        assert np.array_equal(decode_rle(ours), decode_rle(theirs))
        assert np.array_equal(rle.decode(theirs, h, w), sdk_alpha(theirs, h, w))
        assert np.array_equal(rle.decode(ours, h, w), m.astype(np.uint8) * 255)


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_720p_runs_over_65536(fill):
    h, w = 720, 1280  # 3,686,400 equal values: 57 records of 65,536 and a remainder
    m = np.full((h, w), fill)
    ours = rle.encode(m)
    assert len(ours) < 250
    assert np.array_equal(decode_rle(ours), decode_rle(mask2rle(m.astype(np.uint8) * 255)))
    assert np.array_equal(rle.decode(ours, h, w), m.astype(np.uint8) * 255)
    assert np.array_equal(rle.decode(mask2rle(m.astype(np.uint8) * 255), h, w), m.astype(np.uint8) * 255)


@pytest.mark.parametrize("run", [16383, 16384, 16385, 32768, 32769, 50000])
def test_runs_around_the_65536_split(run):
    """Pixel runs of 16,384 pixels are exactly 65,536 RGBA values: one more splits the record."""
    h, w = 3, 40000
    m = np.zeros(h * w, bool)
    m[1000: 1000 + run] = True
    m = m.reshape(h, w)
    ours = rle.encode(m)
    assert np.array_equal(decode_rle(ours), decode_rle(mask2rle(m.astype(np.uint8) * 255)))
    assert np.array_equal(rle.decode(ours, h, w), m.astype(np.uint8) * 255)


def test_odd_large_size_smooth_and_noisy():
    h, w = 719, 1281
    yy, xx = np.mgrid[:h, :w]
    smooth = ((yy - 300) / 200.0) ** 2 + ((xx - 640) / 400.0) ** 2 < 1
    theirs = mask2rle(smooth.astype(np.uint8) * 255)
    assert np.array_equal(decode_rle(rle.encode(smooth)), decode_rle(theirs))
    assert np.array_equal(rle.decode(theirs, h, w), smooth.astype(np.uint8) * 255)
    noisy = np.random.default_rng(5).random((h, w)) < 0.5  # ~460,000 runs: our codec both ways
    assert np.array_equal(rle.decode(rle.encode(noisy), h, w), noisy.astype(np.uint8) * 255)


def test_noisy_matches_the_sdk():
    m = np.random.default_rng(9).random((90, 160)) < 0.5
    ours, theirs = rle.encode(m), mask2rle(m.astype(np.uint8) * 255)
    assert np.array_equal(decode_rle(ours), decode_rle(theirs))
    assert np.array_equal(rle.decode(theirs, 90, 160), sdk_alpha(theirs, 90, 160))


def test_encode_accepts_any_nonzero_as_painted():
    m = np.array([[0, 1, 255], [7, 0, 0]], np.uint8)
    expect = decode_rle(mask2rle((m > 0).astype(np.uint8) * 255))
    for arr in (m, m.astype(np.int64), m.astype(np.float32), m > 0, np.asfortranarray(m), m.T.copy().T):
        assert np.array_equal(decode_rle(rle.encode(arr)), expect)
    assert np.array_equal(decode_rle(rle.encode(np.repeat(np.repeat(m, 3, 0), 3, 1)[::3, ::3])), expect)  # not contiguous


# --- decode: the editor's style -----------------------------------------------------------------------

def test_decode_editor_antialiased_masks():
    rng = np.random.default_rng(3)
    for k in range(60):
        h, w = (int(v) for v in rng.integers(1, 40, size=2))
        alpha = antialiased(h, w, k)
        stream = editor_encode(rgba_of(alpha, tuple(int(c) for c in rng.integers(1, 256, 3))))
        assert np.array_equal(sdk_alpha(stream, h, w), alpha)  # the reference is right
        assert np.array_equal(rle.decode(stream, h, w), alpha)
        assert np.array_equal(rle.to_mask(stream, h, w), alpha >= 128)
        assert np.array_equal(rle.to_mask(stream, h, w, threshold=1), alpha > 0)
    assert rle.ALPHA_THRESHOLD == 128


def test_decode_editor_literals_crossing_many_segments():
    """Noisy RGBA (every value different from the next): literal records thousands of bits long,
    longer than the decoder's segments; then an anti-aliased stroke and long repeats."""
    rng = np.random.default_rng(11)
    h, w = 60, 200
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[:20] = rng.integers(0, 256, (20, w, 4))
    rgba[20:40] = rgba_of(antialiased(20, w, 1))
    rgba[45:50, :, 3] = rng.integers(0, 256, (5, w))
    stream = editor_encode(rgba)
    assert any(not rep and n > 1000 for rep, n in _record_kinds(stream))
    assert np.array_equal(sdk_alpha(stream, h, w), rgba[..., 3])
    assert np.array_equal(rle.decode(stream, h, w), rgba[..., 3])


def test_decode_editor_literal_over_65536_values():
    h, w = 130, 130  # 67,600 random values: a literal record of 65,536, then another
    steps = np.random.default_rng(12).integers(1, 256, h * w * 4)  # no value equals the one before
    rgba = (np.cumsum(steps) % 256).astype(np.uint8).reshape(h, w, 4)
    stream = editor_encode(rgba)
    assert (0, 65536) in _record_kinds(stream)
    assert np.array_equal(rle.decode(stream, h, w), rgba[..., 3])


def test_decode_editor_binary_and_mixed():
    rng = np.random.default_rng(4)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 30, size=2))
        m = random_mask(rng, h, w)
        rgba = rgba_of(m.astype(np.uint8) * 255, (0, 0, 0) if rng.random() < 0.3 else (10, 200, 30))
        if rng.random() < 0.5:  # channels varying per pixel: lone values and literals everywhere
            rgba[..., :3] = rng.integers(0, 3, (h, w, 3))
        stream = editor_encode(rgba)
        assert np.array_equal(rle.decode(stream, h, w), sdk_alpha(stream, h, w))
        assert np.array_equal(rle.decode(stream, h, w), rgba[..., 3])


def test_decode_accepts_bytes_and_arrays():
    m = np.random.default_rng(1).random((5, 9)) < 0.5
    stream = rle.encode(m)
    for form in (bytes(stream), bytearray(stream), np.array(stream, np.uint8), np.array(stream, np.int64), tuple(stream)):
        assert np.array_equal(rle.decode(form, 5, 9), m.astype(np.uint8) * 255)


# --- bad input: ValueError saying why -------------------------------------------------------------------

def test_truncated_streams_raise():
    m = np.random.default_rng(2).random((6, 10)) < 0.5
    for stream in (rle.encode(m), editor_encode(rgba_of(antialiased(6, 10, 0)))):
        for cut in range(len(stream)):
            with pytest.raises(ValueError, match="RLE is (truncated|garbled)"):
                rle.decode(stream[:cut], 6, 10)


def test_wrong_size_word_size_and_values():
    stream = rle.encode(np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="RLE holds 80 values, a 6x4 RGBA mask needs 96"):
        rle.decode(stream, 4, 6)
    bad = list(stream)
    bad[4] |= 0b11111000  # word size 32
    with pytest.raises(ValueError, match="word size 32 is not supported"):
        rle.decode(bad, 4, 5)
    for junk in ([1, 2, 300], [-1], "abc", [1.5]):
        with pytest.raises(ValueError, match="byte values 0..255"):
            rle.decode(junk, 4, 5)
    with pytest.raises(ValueError, match="2-D"):
        rle.encode(np.zeros((2, 2, 2)))


def test_garbage_bodies_raise_value_error_or_decode():
    """Any body after a valid header: a ValueError or an array of the right shape, nothing else."""
    rng = np.random.default_rng(8)
    head = rle.encode(np.zeros((8, 8), bool))[:7]
    for _ in range(300):
        body = rng.integers(0, 256, int(rng.integers(0, 40))).tolist()
        try:
            out = rle.decode(head + body, 8, 8)
        except ValueError as e:
            assert str(e).startswith("RLE is ")
        else:
            assert out.shape == (8, 8) and out.dtype == np.uint8


def test_zero_size():
    assert rle.decode(rle.encode(np.zeros((0, 5), bool)), 0, 5).shape == (0, 5)


@pytest.mark.parametrize("shape", [(720, 1280), (1, 8), (3, 16), (5, 13), (240, 320), (2, 7)])
def test_encode_bits_writes_what_encode_writes_from_a_stored_masks_bits(shape, tmp_path):
    """push reads a stored mask's packed bits (its 1-bit PNG rows) and encodes them without unpacking: the same RLE
    bytes as `encode` of the mask, for empty, full, sparse, dense and striped masks, widths a multiple of 8 or not
    (those unpack first), and the bits read back from the file the mask store writes."""
    from avsbench_tools.pngfast import decode_mask_bits, encode_png_1bit
    from avsbench_tools.studio.rle import encode_bits

    rng = np.random.default_rng(3)
    for fill in (0.0, 1.0, 0.01, 0.99, None):
        if fill is None:
            m = np.add.outer(np.arange(shape[0]), np.arange(shape[1])) % 13 < 5
        else:
            m = rng.random(shape) < fill
        p = tmp_path / "m.png"
        p.write_bytes(encode_png_1bit(m))
        bits, width = decode_mask_bits(p.read_bytes())
        assert width == shape[1] and bits.shape == (shape[0], (shape[1] + 7) // 8)
        assert encode_bits(bits, width) == rle.encode(m), (shape, fill)
        assert np.array_equal(rle.decode(encode_bits(bits, width), *shape) > 0, m)
    with pytest.raises(ValueError):
        encode_bits(np.zeros((2, 3), np.uint8), 64)
