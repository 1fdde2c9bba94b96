"""A chunk of GeoJSON Features whose coordinates never become Python objects.

Decoding a store-size fence's coordinates with a JSON library creates a list and two floats per
position (25M positions at a million fences), which then have to be walked again to check and
build the rings. :func:`decode_chunk` instead cuts every geometry's ``coordinates`` value out of
the chunk's JSON text, lets orjson decode the rest exactly as before (the values become ``0``),
and reads the cut-out texts with array operations on their bytes:

* Only the common, machine-written form is read here: every number has a decimal point, at most
  7 digits before it and at most 7 after it, and no exponent; no whitespace but around brackets
  and commas; every position is two such numbers. Then every byte of a coordinates text is
  accounted for: positions ``[x,y]``, and between them ``,``, ``],[`` or ``]],[[``, with
  ``[``s before the first and ``]``s after the last (their count is the nesting depth: 1 for a
  Point, 3 for a Polygon, 4 for a MultiPolygon).
* Each number is its digits read eight bytes at a time (SWAR: the digits before the point and
  the digits after it, each padded to eight), an integer ``M < 2**53``, and ``M / 1e8``: one
  correctly rounded division of two exact doubles, so the double nearest the decimal, which is
  what orjson decodes.

A feature whose coordinates hold an ``e`` or ``E`` (an exponent: orjson writes ``-1.2e-06``
for a longitude just west of Greenwich) keeps them in the text: orjson decodes them with the
rest of its feature, which the caller then parses alone. A chunk with anything else (an integer
anywhere in the coordinates read here, a backslash anywhere, two ``coordinates`` keys in a
feature, bytes orjson refuses) is not read here: the caller decodes it as before, so results
and errors are exactly those of decoding it whole. A feature whose
coordinates were cut out but that needs a closer look (a wrong depth for its type, a ring that
fails a check) is decoded again from its own slice by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec
import numpy as np
import orjson

# The key of a member "coordinates" and the whitespace and colon after it (no backslash in the
# chunk, so this is never inside a string: a string cannot hold an unescaped quote).
_KEY = re.compile(rb'"coordinates"[ \t\n\r]*:[ \t\n\r]*')
_WS = b" \t\n\r"
_U = np.uint64
_LOW7 = _U(0x7F7F7F7F7F7F7F7F)
_HIGH = _U(0x8080808080808080)
_ZERO = _U(0x3030303030303030)
_ADD = _U(0x7676767676767676)  # a byte (c ^ '0') & 0x7F plus 0x76 reaches 0x80 unless c is a digit
# Gap text between two positions by its length (8: across two regions, not checked here).
_GAP_OK = np.array([False, True, False, True, False, True, False, False, True])
_GAP_MASK = np.array([0, 0xFF, 0, 0xFFFFFF, 0, 0xFFFFFFFFFF, 0, 0, 0], np.uint64)
_GAP_TEXT = np.array(
    [0, ord(","), 0, int.from_bytes(b"],[", "little"), 0, int.from_bytes(b"]],[[", "little"), 0, 0, 0], np.uint64
)


@dataclass(frozen=True)
class Coords:
    """The coordinates cut out of a chunk's features, as arrays.

    ``depth[i]`` is feature i's nesting depth (1: a position, 3: a Polygon's, 4: a MultiPolygon's,
    2: neither), or 0 when its coordinates were left in the decoded feature. ``point[i]`` is the
    position of a depth-1 feature. The positions of depth-3 and depth-4 features are ``xy`` (in
    order), ``ring_len`` the positions of each ring, ``ring_poly`` each ring's polygon and
    ``poly_feat`` each polygon's feature.
    """

    depth: np.ndarray
    point: np.ndarray
    xy: np.ndarray
    ring_len: np.ndarray
    ring_poly: np.ndarray
    poly_feat: np.ndarray


def decode_chunk(raws: list[msgspec.Raw]) -> tuple[list, Coords] | None:
    """The features of ``raws`` (each one JSON value) decoded by orjson with their coordinates
    cut out and read as arrays; None when the chunk does not fit (decode it as before)."""
    return decode_joined(b"[" + b",".join(raws) + b"]", np.fromiter(map(len, raws), np.int64, len(raws)))


def decode_joined(joined: bytes, lens: np.ndarray) -> tuple[list, Coords] | None:
    """:func:`decode_chunk` of the features joined as one JSON array, ``b"[" + b",".join(raws)
    + b"]"``, whose lengths are ``lens`` (what a worker process gets: one bytes object)."""
    n = len(lens)
    if b"\\" in joined:
        return None
    starts = [m.end() for m in _KEY.finditer(joined)]
    if not starts:
        return None
    base = np.frombuffer(joined, np.uint8)
    vs = np.array(starts, np.int64)
    feat_start = np.cumsum(lens + 1) - lens
    feat = np.searchsorted(feat_start, vs, "right") - 1
    if len(feat) > 1 and (feat[1:] == feat[:-1]).any():
        return None  # two "coordinates" members in a feature: which one is the geometry's?
    arr = base[vs] == ord("[")
    vs, feat = vs[arr], feat[arr]
    if len(vs) == 0:
        return None
    # A value ends at the last ']' before the next '}' (the geometry's end when "coordinates" is
    # its last member; otherwise the text holds more than the value and the chunk is refused).
    braces = np.flatnonzero(base == ord("}"))
    nxt = np.searchsorted(braces, vs)
    if nxt[-1] >= len(braces):
        return None
    ve = braces[nxt]
    tight = base[ve - 1] == ord("]")
    if not tight.all():
        loose = np.flatnonzero(~tight)
        ve[loose] = [joined.rfind(b"]", s, e) + 1 for s, e in zip(vs[loose].tolist(), ve[loose].tolist())]
        if (ve <= vs).any():
            return None
    b, texts = _cut(joined, vs, ve)
    # An exponent ("-1.2e-06": orjson's way with a longitude near 0) is not this form: that
    # feature's coordinates stay in the text for orjson, and the rest of the chunk is read here.
    odd = [k for k, t in enumerate(texts) if b"e" in t or b"E" in t]
    if odd:
        keep = np.ones(len(vs), bool)
        keep[odd] = False
        vs, ve, feat = vs[keep], ve[keep], feat[keep]
        if len(vs) == 0:
            return None
        b, texts = _cut(joined, vs, ve)
    text = b"".join(texts)
    region_len = ve - vs
    if any(w in text for w in (b" ", b"\n", b"\r", b"\t")):  # memchr: cheaper than translating
        text = text.translate(None, _WS)
        region_len = np.fromiter((len(t.translate(None, _WS)) for t in texts), np.int64, len(texts))
    del texts
    read = _read(text, region_len)
    if read is None:
        return None
    try:
        decoded = orjson.loads(b"0".join([joined[b[k] : b[k + 1]] for k in range(0, len(b), 2)]))
    except orjson.JSONDecodeError:
        return None
    depth, point, xy, ring_len, ring_poly, poly_region = read
    feat_depth = np.zeros(n, np.int8)
    feat_depth[feat] = depth
    feat_point = np.zeros((n, 2))
    feat_point[feat] = point
    return decoded, Coords(feat_depth, feat_point, xy, ring_len, ring_poly, feat[poly_region])


def _cut(joined: bytes, vs: np.ndarray, ve: np.ndarray) -> tuple[list[int], list[bytes]]:
    """(bounds, texts): the offsets 0, vs[0], ve[0], vs[1], ... len(joined), and the texts
    between each ``vs`` and its ``ve`` (the values cut out)."""
    bounds = np.empty(2 * len(vs) + 2, np.int64)
    bounds[0], bounds[-1] = 0, len(joined)
    bounds[1:-1:2], bounds[2:-1:2] = vs, ve
    b = bounds.tolist()
    return b, [joined[b[k] : b[k + 1]] for k in range(1, len(b) - 1, 2)]


def _swar8(v: np.ndarray) -> np.ndarray:
    """Eight digit bytes (zeros for none; the first byte the most significant) as an integer."""
    v = ((v & _U(0x0F0F0F0F0F0F0F0F)) * _U(2561)) >> _U(8)
    v = ((v & _U(0x00FF00FF00FF00FF)) * _U(6553601)) >> _U(16)
    return ((v & _U(0x0000FFFF0000FFFF)) * _U(42949672960001)) >> _U(32)


def _nondigit(v: np.ndarray) -> np.ndarray:
    """0x80 in each byte of ``v`` that is not an ASCII digit (no carries between bytes)."""
    t = v ^ _ZERO
    return (t | ((t & _LOW7) + _ADD)) & _HIGH


def _read(t: bytes, region_len: np.ndarray):
    """(depth, point per region; xy, ring_len, ring_poly, poly_region) of whitespace-free array
    texts laid end to end, or None unless every byte fits the form in the module docstring."""
    m = len(region_len)
    pad = np.zeros(len(t) + 16, np.uint8)  # 8 bytes either side: positions below are pad's
    pad[8 : 8 + len(t)] = np.frombuffer(t, np.uint8)
    dots = np.flatnonzero(pad == ord("."))
    k = len(dots)
    if k == 0 or k % 2:
        return None
    at = np.ndarray((len(pad) - 7,), np.uint64, pad, 0, (1,))  # at[i]: the 8 bytes from i
    ib, fb = at[dots - 8], at[dots + 1]  # the 8 bytes before each point and after it
    nd = _nondigit(ib)  # the digits before a point run down to the highest non-digit byte
    nd |= nd >> _U(8)
    nd |= nd >> _U(16)
    nd |= nd >> _U(32)
    ikeep = ~((nd >> _U(7)) * _U(0xFF))
    fd = _nondigit(fb)  # the digits after it run up to the lowest non-digit byte
    fd |= fd << _U(8)
    fd |= fd << _U(16)
    fd |= fd << _U(32)
    fkeep = ~((fd >> _U(7)) * _U(0xFF))
    ilen = (np.bitwise_count(ikeep) >> 3).astype(np.int64)
    flen = (np.bitwise_count(fkeep) >> 3).astype(np.int64)
    # 1-7 digits on each side (eight would need the next eight bytes: not this form).
    if not ((ilen >= 1) & (ilen <= 7) & (flen >= 1) & (flen <= 7)).all():
        return None
    first = dots - ilen
    neg = pad[first - 1] == ord("-")
    tok_start = first - neg
    tok_end = dots + 1 + flen  # the byte after the number
    xs, ys = slice(0, None, 2), slice(1, None, 2)
    leaf_open, leaf_close = tok_start[xs] - 1, tok_end[ys]  # '[' and ']' of each position
    if not (
        (pad[leaf_open] == ord("[")).all()
        and (pad[tok_end[xs]] == ord(",")).all()
        and (tok_start[ys] == tok_end[xs] + 1).all()
        and (pad[leaf_close] == ord("]")).all()
    ):
        return None
    v = (_swar8(ib & ikeep) * _U(100_000_000) + _swar8(fb & fkeep)).astype(np.float64) / 1e8
    values = np.where(neg, -v, v)
    # Regions: each one value; its positions tile it with gaps, head and tail checked below.
    r_start = np.cumsum(region_len) - region_len + 8
    r_end = r_start + region_len  # exclusive
    first_leaf = np.searchsorted(leaf_open, r_start)
    last_leaf = np.searchsorted(leaf_open, r_end) - 1
    if not (first_leaf <= last_leaf).all():
        return None
    depth = leaf_open[first_leaf] - r_start + 1
    if not ((depth <= 4) & (r_end - 1 - leaf_close[last_leaf] == depth - 1)).all():
        return None
    for j in range(3):  # the head's '['s and the tail's ']'s
        has = depth - 1 > j
        if not ((pad[r_start[has] + j] == ord("[")).all() and (pad[r_end[has] - 1 - j] == ord("]")).all()):
            return None
    # Between two positions of a region: ",", "],[" or "]],[[" (the 8 bytes after a ']' are
    # compared with the pattern its gap's length calls for; code 8: the next region's first).
    gap = leaf_open[1:] - leaf_close[:-1] - 1
    code = np.minimum(gap, 7)
    code[last_leaf[:-1]] = 8
    after = at[leaf_close[:-1] + 1]
    if not (_GAP_OK[code].all() and ((after & _GAP_MASK[code]) == _GAP_TEXT[code]).all()):
        return None
    xy_all = values.reshape(-1, 2)
    point = np.zeros((m, 2))
    is_pt = depth == 1
    point[is_pt] = xy_all[first_leaf[is_pt]]
    # Rings and polygons of the depth-3 and depth-4 regions.
    leaf_region = np.repeat(np.arange(m), last_leaf - first_leaf + 1)
    new_ring = np.zeros(k // 2, bool)
    new_ring[1:] = (code == 3) | (code == 5)
    new_poly = np.zeros(k // 2, bool)
    new_poly[1:] = code == 5
    new_ring[first_leaf] = new_poly[first_leaf] = True
    sel = depth[leaf_region] >= 3
    xy = np.ascontiguousarray(xy_all[sel])
    ring_starts = np.flatnonzero(new_ring[sel])
    ring_len = np.diff(np.append(ring_starts, len(xy)))
    poly_id = np.cumsum(new_poly[sel]) - 1
    ring_poly = poly_id[ring_starts]
    poly_region = leaf_region[sel][np.flatnonzero(new_poly[sel])]
    return depth.astype(np.int8), point, xy, ring_len, ring_poly, poly_region
