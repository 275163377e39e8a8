"""push's request bodies: JSON with brush RLEs written by numpy (`encode`), and the prediction check that asks the
SDK once per shape of prediction (`CheckedInterface`)."""

from __future__ import annotations

import json
from typing import Any


def encode(body: Any) -> bytes:
    """A request body as compact JSON bytes (push encodes a chunk in its build thread, off the request's path): the
    same bytes as `json.dumps(body, separators=(",", ":"))`, but a brush RLE our encoder wrote (`rle.Rle` under
    "rle") is written by `_rle_text` (numpy) instead of json's walk over each value, which cost more than the RLE."""
    import secrets

    from avsbench_tools.studio.rle import Rle

    rles: list[bytes] = []
    nonce = "\x00rle" + secrets.token_hex(8) + ":"  # no string of the body can hold it (NUL + 16 random hex digits)
    text = json.dumps(_swap_rles(body, rles, nonce, Rle), separators=(",", ":"))
    if not rles:
        return text.encode()
    mark = json.dumps(nonce)[:-1]  # the token as json writes it, with its opening quote
    parts = text.split(mark)
    out = [parts[0].encode()]
    for part in parts[1:]:
        i, rest = part.split('"', 1)
        out += [b"[", _rle_text(rles[int(i)]), b"]", rest.encode()]
    return b"".join(out)


def _swap_rles(node: Any, rles: list[bytes], nonce: str, ours: type) -> Any:
    """`node` with each RLE our encoder wrote (type `ours`, under "rle") replaced by a token naming its place in
    `rles` (copies only the dicts and lists on the way to one)."""
    if isinstance(node, dict):
        out = None
        for k, v in node.items():
            if k == "rle" and type(v) is ours:  # ints 0..255 (any other list: json writes it)
                new = f"{nonce}{len(rles)}"
                rles.append(bytes(v))
            elif isinstance(v, (dict, list)):
                new = _swap_rles(v, rles, nonce, ours)
                if new is v:
                    continue
            else:
                continue
            out = dict(node) if out is None else out
            out[k] = new
        return node if out is None else out
    if isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        new = [_swap_rles(v, rles, nonce, ours) for v in node]
        return node if all(a is b for a, b in zip(new, node, strict=True)) else new
    return node


def _digits_table():
    import numpy as np

    table = np.zeros((256, 4), np.uint8)
    used = np.zeros((256, 4), bool)
    for v in range(256):
        s = f"{v},".encode()
        table[v, :len(s)] = list(s)
        used[v, :len(s)] = True
    return table, used


_DIGITS: tuple | None = None


def _rle_text(raw: bytes) -> bytes:
    """Byte values as the inside of a JSON array ("0,255,17"), in three numpy calls."""
    import numpy as np

    global _DIGITS
    if _DIGITS is None:
        _DIGITS = _digits_table()
    table, used = _DIGITS
    a = np.frombuffer(raw, np.uint8)
    return table[a][used[a]].tobytes()[:-1]


_CHECKED = {"from_name", "to_name", "type", "value"}  # what the SDK checks of a region (ids: relations, shared ids)


class CheckedInterface:
    """The project's LabelInterface, whose prediction check skips what cannot be wrong: a brush region's RLE is
    our encoder's list of byte values (studio/rle.py), so the SDK's walk over every value in Python (a third
    of the client's time) is done once per shape of prediction on a one-byte stand-in; everything else a
    prediction holds (labels, tags, types, choices, scores) is checked as before, and the server checks the whole
    prediction again on import. The SDK checks of a region its from_name, to_name, type and value, and its id only
    for relations and for a <Labels> region that shares its id with a shape; so, without relations, the check runs
    on those (ids kept where shared) and a score in [0, 1] on a stand-in 0.5: predictions that differ only in
    region ids, meta texts or scores are checked once."""

    def __init__(self, li):
        self._li = li
        self._seen: dict[str, list] = {}

    def __getattr__(self, name):
        return getattr(self._li, name)

    def validate_prediction(self, pred: dict, return_errors: bool = False):
        import json

        def stand_in(r: dict) -> dict:
            v = r.get("value")
            rle = v.get("rle") if isinstance(v, dict) else None
            if not (isinstance(rle, list) and rle and all(type(x) is int and 0 <= x <= 255 for x in rle[:8])):
                return r
            return {**r, "value": {**v, "rle": [rle[0]]}}

        skeleton = dict(pred)
        if isinstance(pred.get("result"), list):
            regions = [stand_in(r) if isinstance(r, dict) else r for r in pred["result"]]
            if all(isinstance(r, dict) and r.get("type") != "relation" for r in regions):
                ids = [r.get("id") for r in regions]
                shared = {i for i in ids if i is not None and ids.count(i) > 1}  # a <Labels> region and its shape
                regions = [{k: r[k] for k in _CHECKED | ({"id"} if r.get("id") in shared else set()) if k in r}
                           for r in regions]
            skeleton["result"] = regions
        score = pred.get("score")
        if type(score) in (int, float) and 0.0 <= score <= 1.0:  # any score in range validates alike
            skeleton["score"] = 0.5
        key = json.dumps(skeleton, sort_keys=True, default=str)
        if key not in self._seen:
            self._seen[key] = self._li.validate_prediction(skeleton, return_errors=True) or []
        errors = self._seen[key]
        return errors if return_errors else not errors
