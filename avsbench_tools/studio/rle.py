"""Label Studio brush RLE: a vectorised encoder and decoder (numpy only).

The format (label-studio-sdk ``converter/brush.py``, the editor's ``@thi.ng/rle-pack``) is a bit
stream, most significant bit first, over the flattened RGBA array (H*W*4 values) of a mask:

* header: 32-bit value count, 5-bit word size - 1, four 4-bit run-length sizes - 1 (3, 4, 8, 16);
* records: 1 repeat bit, 2-bit size class, count - 1 in that class's bits, then one word (repeat)
  or ``count`` words (literal).

The SDK writes every lone value as a length-1 literal and pads with an extra byte; the editor
writes multi-value literals, a trailing lone value as a repeat, no extra byte, and anti-aliased
alpha values 1..254. :func:`decode` reads both; :func:`encode` writes only repeat records (a mask
repeats each pixel over its four channels, so no run is shorter than 4).

No Python loop runs per pixel or per run. The encoder finds runs with ``flatnonzero`` and ORs each
record's left-aligned code into 64-bit words (records never share bits, so a sum is an OR). The
decoder looks up, for every bit position at once, how long a record starting there would be (a
table indexed by its first 19 bits), cuts the stream into segments and follows every possible
entry into every segment at once (numpy lanes in lockstep), then stitches the true chain with one
Python step per segment (see ``_record_starts``) and fills the alpha channel with ``np.repeat``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ALPHA_THRESHOLD = 128
"""Alpha at or above this counts as painted when a decoded mask is binarised."""

RLE_SIZES = (3, 4, 8, 16)
"""Bits of the run-length field for the four size classes (the SDK's and the editor's)."""

WORD_SIZE = 8
HEADER_BITS = 32 + 5 + 4 * 4
MAX_RUN = 1 << 16

_U64 = np.uint64
_SIZES = np.array(RLE_SIZES, dtype=np.int64)
_CLASS_SHIFT = np.array([61 - s for s in RLE_SIZES], dtype=_U64)  # where count-1 goes in a record code


def _header_code(num: int) -> int:
    """The 53 header bits, left-aligned in a 64-bit word."""
    sizes = 0
    for s in RLE_SIZES:
        sizes = (sizes << 4) | (s - 1)
    return ((num << 32) | ((WORD_SIZE - 1) << 27) | (sizes << 11)) & 0xFFFF_FFFF_FFFF_FFFF


def _pack(codes: np.ndarray, lengths: np.ndarray, first_word: int) -> bytes:
    """Concatenate variable-length bit fields (left-aligned in uint64 ``codes``), after the 53
    header bits held left-aligned in ``first_word``, into bytes."""
    ends = np.cumsum(lengths, dtype=np.int64)
    ends += HEADER_BITS
    total = int(ends[-1]) if ends.size else HEADER_BITS
    offsets = (ends - lengths).astype(_U64)
    word = (offsets >> _U64(6)).astype(np.int64)
    shift = offsets & _U64(63)
    words = np.zeros(total // 64 + 2, dtype=_U64)
    if codes.size:
        group = np.flatnonzero(word[1:] != word[:-1])
        group += 1
        group = np.concatenate(([0], group))
        target = word[group]
        words[target] = np.add.reduceat(codes >> shift, group)  # disjoint bits: sum == OR
        spill = codes << (_U64(64) - shift)  # the bits that spill into the next word (numpy: x << 64 == 0)
        words[target + 1] |= np.add.reduceat(spill, group)
    words[0] |= _U64(first_word)
    return words.astype(">u8").tobytes()[: (total + 7) // 8]


_BOUNDS = np.array([8, 16, 256])  # longest run of each size class but the last
_PREFIX = np.array([(1 << 63) | (c << 61) for c in range(4)], dtype=_U64)  # repeat bit, class
_VALUE = np.array([255 << (61 - s - WORD_SIZE) for s in RLE_SIZES], dtype=_U64)  # the value 255
_RECORD_BITS = np.array([3 + s + WORD_SIZE for s in RLE_SIZES], dtype=np.int64)


class Rle(list):
    """A brush RLE this module wrote: a plain list of byte values (ints 0..255) that request encoders may write
    without looking at each value (studio.project.encode)."""

    __slots__ = ()


def encode(mask) -> list[int]:
    """Encode a 2-D mask (bool, or any number: nonzero = painted) as Label Studio brush RLE.

    The stream decodes, with the SDK's ``decode_rle`` or :func:`decode`, to the same RGBA array as
    the SDK's ``mask2rle((mask > 0).astype(uint8) * 255)``: all four channels 0 or 255. The bytes
    differ (repeat records only, no extra pad byte), which every decoder accepts.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (height x width), got shape {m.shape}")
    flat = m.reshape(-1)
    if flat.dtype != np.bool_:
        flat = flat != 0
    n = flat.size
    if n == 0:
        return Rle(_pack(np.zeros(0, _U64), np.zeros(0, np.int64), _header_code(0)))
    change = np.flatnonzero(flat[1:] != flat[:-1])
    change += 1
    return _encode_changes(change, n, bool(flat[0]))


def encode_bits(bits: np.ndarray, width: int) -> list[int]:
    """`encode` of a mask given as its rows' packed bits (uint8 [H, ceil(W/8)], most significant bit first, as a
    1-bit PNG stores them: pngfast.decode_mask_bits): the same bytes, ~3x faster, since the pixel changes are
    found on an eighth of the bytes (a row's change from the one before: one shift and one XOR of the bit stream)."""
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.ndim != 2 or bits.shape[1] != (width + 7) // 8:
        raise ValueError(f"packed rows of a {width} px wide mask must be {(width + 7) // 8} bytes, got {bits.shape}")
    if width % 8:  # rows end in padding bits: unpack (a frame width is nearly always a multiple of 8)
        return encode(np.unpackbits(bits, axis=1, count=width).view(np.bool_))
    x = bits.reshape(-1)
    n = x.size * 8
    if n == 0:
        return encode(np.zeros((0, 0), bool))
    prev = x >> 1  # bit k of the stream moved to k + 1 within its byte ...
    prev[1:] |= x[:-1] << 7  # ... and a byte's last bit to the next byte's first
    prev[0] |= x[0] & 0x80  # bit 0 is compared with itself: no change there
    prev ^= x
    where = np.flatnonzero(prev != 0)
    on = np.unpackbits(prev[where]).reshape(-1, 8).view(np.bool_)
    change = (where[:, None] * 8 + np.arange(8))[on]
    return _encode_changes(change, n, bool(x[0] & 0x80))


def _encode_changes(change: np.ndarray, n: int, first: bool) -> list[int]:
    """The RLE of n pixels whose value changes at the sorted positions `change` (> 0), pixel 0 painted if `first`."""
    runs = np.diff(change, prepend=0, append=n)
    runs *= 4  # RGBA values per run
    painted = (np.arange(runs.size) & 1).astype(bool)  # runs alternate
    if first:
        painted = ~painted
    if runs.max() > MAX_RUN:  # split long runs into 65,536-value records
        pieces = (runs + MAX_RUN - 1) // MAX_RUN
        owner = np.repeat(np.arange(runs.size), pieces)
        last = np.cumsum(pieces) - 1
        split = np.full(owner.size, MAX_RUN, dtype=np.int64)
        split[last] = runs - MAX_RUN * (pieces - 1)
        runs, painted = split, painted[owner]
    cls = np.searchsorted(_BOUNDS, runs)
    codes = _PREFIX[cls] | ((runs - 1).astype(_U64) << _CLASS_SHIFT[cls])
    codes |= np.where(painted, _VALUE[cls], _U64(0))
    return Rle(_pack(codes, _RECORD_BITS[cls], _header_code(4 * n)))


def _as_bytes(rle) -> np.ndarray:
    if isinstance(rle, np.ndarray):
        if rle.dtype == np.uint8:
            return rle.reshape(-1)
        if rle.dtype.kind not in "iu" or (rle.size and (rle.min() < 0 or rle.max() > 255)):
            raise ValueError("RLE must be a list of byte values 0..255")
        return rle.reshape(-1).astype(np.uint8)
    if isinstance(rle, str):
        raise ValueError("RLE must be a list of byte values 0..255, got a string")
    try:
        return np.frombuffer(bytes(rle), dtype=np.uint8)
    except (TypeError, ValueError):
        raise ValueError("RLE must be a list of byte values 0..255") from None


@lru_cache(maxsize=4)
def _length_table(word_size: int, sizes: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Bits of a record given its first 19 bits (repeat bit, class, up to 16 count bits): exact
    (int64), and capped at 65,535 (uint16)."""
    head = np.arange(1 << 19, dtype=np.int64)
    nb = np.array(sizes, dtype=np.int64)[(head >> 16) & 3]
    count = ((head & 0xFFFF) >> (16 - nb)) + 1
    table = 3 + nb + word_size * np.where(head >> 18, 1, count)
    return table, np.minimum(table, 65_535).astype(np.uint16)


def _windows(data: np.ndarray) -> np.ndarray:
    """Big-endian 32-bit word starting at every byte (zero past the end)."""
    buf = np.zeros(data.size + 4, dtype=np.uint8)
    buf[: data.size] = data
    view = np.ndarray(shape=(data.size,), dtype=">u4", buffer=buf, strides=(1,))
    return view.astype(np.uint32)


def _heads(win: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The first 19 bits (repeat bit, class, count field) of a record at each bit position."""
    return (win.take(pos >> 3) >> (13 - (pos & 7)).astype(np.uint32)) & np.uint32(0x7FFFF)


def _read(win: np.ndarray, pos: np.ndarray, bits: int) -> np.ndarray:
    """``bits`` (<= 25) bits at each bit position ``pos``."""
    shift = (32 - bits - (pos & 7)).astype(np.uint32)
    return ((win.take(pos >> 3) >> shift) & np.uint32((1 << bits) - 1)).astype(np.int64)


def _settle(local: np.ndarray, pos: np.ndarray, keep: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """Step every lane (``pos += local[pos]``: one record per step, all lanes at once) until none
    moves. With ``keep``, also return the positions after each step; without, only the lanes that
    still move are stepped (most lanes started off the true chain stop within a few records)."""
    pos = pos.copy()
    if keep:
        rows = [pos.copy()]
        while True:
            for _ in range(8):
                pos = pos + local.take(pos)
                rows.append(pos)
            if not local.take(pos).any():
                return pos, rows
    live = np.flatnonzero(local.take(pos))
    cur = pos[live]
    while live.size:
        for _ in range(8):
            cur += local.take(cur)
        pos[live] = cur
        moving = local.take(cur) != 0
        live, cur = live[moving], cur[moving]
    return pos, []


def _record_starts(win: np.ndarray, tables: tuple[np.ndarray, np.ndarray], nbits: int, longest: int) -> np.ndarray:
    """Bit positions of the records chained from the header, in order.

    Where a record starts depends on every record before it. The length of a record starting at
    every bit position is looked up at once; the stream is cut into segments, and from each of the
    first ``longest`` bits of every segment (one of them is where the true chain enters the
    segment, unless a record longer than ``longest`` bits crosses the cut) a lane follows its
    chain to the last record starting in the segment, all lanes in lockstep. Stitching lanes end
    to start gives the true chain with one Python step per segment; a segment entered past its
    first ``longest`` bits (after a long literal record) is followed record by record.
    """
    body = nbits - HEADER_BITS
    if body <= 0:
        return np.zeros(0, dtype=np.int64)
    table, short = tables
    seg = max(-(-body // max(1, int(np.sqrt(body / 30)))), 2 * longest)  # measured best: ~500 lanes at 720p
    seg = min(seg, 60_000)  # in-segment steps fit uint16
    segments = -(-body // seg)
    lo = HEADER_BITS + seg * np.arange(segments, dtype=np.int64)
    hi = np.minimum(lo + seg, nbits)
    heads = (win[:, None] >> np.arange(13, 5, -1, dtype=np.uint32)) & np.uint32(0x7FFFF)
    step = np.zeros(HEADER_BITS + segments * seg, dtype=np.uint16)  # 0: the next record leaves the segment
    grid = step[HEADER_BITS:].reshape(segments, seg)
    flat = grid.reshape(-1)
    flat[:body] = short.take(heads.reshape(-1)[HEADER_BITS:].astype(np.intp))
    room = seg - np.arange(seg, dtype=np.int64)  # bits left in a full segment
    np.multiply(grid, grid < room, out=grid)
    room = int(hi[-1] - lo[-1]) - np.arange(seg, dtype=np.int64)
    np.multiply(grid[-1], grid[-1] < room, out=grid[-1])
    # Where the true chain can enter a segment: one record after one of the `longest` bits before
    # its cut, landing within its first `longest` bits (a longer record is handled below).
    before = (lo[1:, None] - longest + np.arange(longest)).reshape(-1)
    after = before + table.take(_heads(win, before).astype(np.intp))
    keys = np.flatnonzero((after >= np.repeat(lo[1:], longest)) & (after < np.repeat(lo[1:], longest) + longest))
    keys = np.unique(np.concatenate(([0], longest * (keys // longest + 1) + after[keys] - np.repeat(lo[1:], longest)[keys])))
    starts = lo[keys // longest] + keys % longest
    lane_of = np.full(segments * longest, -1, dtype=np.int64)
    lane_of[keys] = np.arange(keys.size)
    ends = _settle(step, starts, keep=False)[0]
    exits = ends + table.take(_heads(win, np.minimum(ends, nbits - 1)).astype(np.intp))
    exits, lane_of, lo_at, hi_at = exits.tolist(), lane_of.tolist(), lo.tolist(), hi.tolist()
    path, loose = [], []
    at = HEADER_BITS
    while at < nbits:
        s = (at - HEADER_BITS) // seg
        offset = at - lo_at[s]
        lane = lane_of[s * longest + offset] if offset < longest else -1
        if lane >= 0:
            path.append(lane)
            at = exits[lane]
        else:  # a long record crossed the cut: follow this segment record by record
            end = hi_at[s]
            while at < end:
                loose.append(at)
                at += int(table[(int(win[at >> 3]) >> (13 - (at & 7))) & 0x7FFFF])
    _, rows = _settle(step, starts[np.array(path, dtype=np.int64)], keep=True)
    grid = np.stack(rows, axis=1)
    fresh = np.ones(grid.shape, dtype=bool)
    fresh[:, 1:] = grid[:, 1:] != grid[:, :-1]
    chain = grid[fresh]
    if loose:
        chain = np.sort(np.concatenate((chain, np.array(loose, dtype=np.int64))))
    return chain


def decode(rle, height: int, width: int) -> np.ndarray:
    """Decode brush RLE (the SDK's or the editor's) to the alpha channel, uint8 ``[height, width]``.

    Equals ``label_studio_sdk.converter.brush.decode_rle(rle).reshape(height, width, 4)[..., 3]``.
    A truncated or garbled stream, or one of another size, raises ValueError with the cause.
    """
    data = _as_bytes(rle)
    need = int(height) * int(width) * 4
    if data.size < 7:
        raise ValueError(f"RLE is truncated: {data.size} bytes, the header alone needs 7")
    num = int.from_bytes(data[:4].tobytes(), "big")
    rest = int.from_bytes(data[4:7].tobytes(), "big")  # bits 32..55
    word_size = (rest >> 19) + 1
    sizes = tuple(((rest >> (15 - 4 * i)) & 15) + 1 for i in range(4))
    if num != need:
        raise ValueError(f"RLE holds {num} values, a {width}x{height} RGBA mask needs {need}")
    if word_size > 8:
        raise ValueError(f"RLE word size {word_size} is not supported (brush masks use 8)")
    if num == 0:
        return np.zeros((int(height), int(width)), dtype=np.uint8)
    nbits = data.size * 8
    win = _windows(data)
    tables = _length_table(word_size, sizes)
    table = tables[0]
    chain = _record_starts(win, tables, nbits, 3 + max(sizes) + word_size)
    head = _read(win, chain, 19)
    repeat = (head >> 18).astype(bool)
    nb = np.array(sizes, dtype=np.int64)[(head >> 16) & 3]
    count = ((head & 0xFFFF) >> (16 - nb)) + 1
    done = np.cumsum(count)
    last = int(np.searchsorted(done, num))
    if last == done.size:
        covered = int(done[-1]) if done.size else 0
        raise ValueError(f"RLE is truncated: its records cover {covered} of {num} values")
    if done[last] != num:
        raise ValueError(f"RLE is garbled: a run crosses the end of the {num} values")
    if chain[last] + table[_heads(win, chain[last : last + 1])[0]] > nbits:
        raise ValueError("RLE is truncated: its last record is cut off")
    keep = slice(0, last + 1)
    repeat, count, done = repeat[keep], count[keep], done[keep]
    value_at = chain[keep] + 3 + nb[keep]
    begin = done - count
    pixels = done // 4 - begin // 4  # alpha values (index % 4 == 3) inside each record
    fill = np.where(repeat, _read(win, value_at, word_size), 0).astype(np.uint8)
    out = np.repeat(fill, pixels)
    lit = np.flatnonzero(~repeat & (pixels > 0))
    if lit.size:
        per = pixels[lit]
        first = np.cumsum(per) - per
        j = np.arange(int(per.sum())) - np.repeat(first, per)
        rec = np.repeat(lit, per)
        offset = (3 - begin[rec]) % 4 + 4 * j  # index of the value inside its literal record
        out[begin[rec] // 4 + j] = _read(win, value_at[rec] + word_size * offset, word_size)
    return out.reshape(int(height), int(width))


def to_mask(rle, height: int, width: int, threshold: int = ALPHA_THRESHOLD) -> np.ndarray:
    """Decode brush RLE to a bool mask: alpha >= ``threshold`` (default 128) counts as painted."""
    return decode(rle, height, width) >= threshold
