#!/usr/bin/env python3
"""Decode sketchd's sketch exports with the Python standard library only.

    python3 decode_sketch.py users.sketch            # sketchd wire format (GET .../sketch)
    python3 decode_sketch.py latency.td --tdigest    # t-digest exchange format (GET .../sketch?format=tdigest)

prints one JSON object: the kind, the count, the parameters and
  - hll: the distinct-count estimate (the same number sketchd answers:
    linear counting while sparse, LogLog-Beta once dense) and the registers;
  - tdigest (either format): min, max, the centroids and quantiles
    q = 0.01 ... 0.99, interpolated between centroid midpoints.

The formats are documented in docs/format-sketches.md. Other kinds print
their envelope only. A malformed blob raises ValueError.
"""

import json
import math
import struct
import sys

# ---------------------------------------------------------------- envelope

_CRC32C = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C.append(_c)


def crc32c(data):
    """CRC-32C (Castagnoli), the envelope's checksum."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def uvarint(b, off):
    """Reads an unsigned LEB128 varint; returns (value, next offset)."""
    x = shift = 0
    while True:
        if off >= len(b):
            raise ValueError("truncated varint")
        c = b[off]
        off += 1
        x |= (c & 0x7F) << shift
        if c < 0x80:
            return x, off
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


KINDS = {1: "hll", 2: "cms", 3: "tdigest", 4: "reservoir", 5: "theta", 6: "ddsketch"}


def envelope(b):
    """Splits a sketchd blob: (kind, count, params {tag: bytes}, payload)."""
    if len(b) < 22 or b[:2] != b"SK":
        raise ValueError("not a sketchd sketch (magic 'SK')")
    if b[2] != 1:
        raise ValueError("envelope version %d" % b[2])
    if struct.unpack_from("<I", b, len(b) - 4)[0] != crc32c(b[:-4]):
        raise ValueError("CRC-32C mismatch")
    kind = KINDS.get(b[3], "kind(%d)" % b[3])
    count = struct.unpack_from("<Q", b, 8)[0]
    plen, off = uvarint(b, 16)
    params, p = {}, off
    while p < off + plen:
        tag, p = uvarint(b, p)
        n, p = uvarint(b, p)
        params[tag] = b[p:p + n]
        p += n
    n, p = uvarint(b, off + plen)
    payload = b[p:p + n]
    if p + n != len(b) - 4:
        raise ValueError("payload length does not match the blob")
    return kind, count, params, payload


# --------------------------------------------------------------------- hll

# LogLog-Beta bias correction (Qin et al. 2016), github.com/axiomhq/hyperloglog
# beta.go: beta(p, z) = c0*z + sum(c_i * ln(z+1)^i, i = 1..7), z = zero registers.
BETA = {
    4: (-0.582581413904517, -1.935300357560050, 11.079323758035073, -22.131357446444323, 22.505391846630037, -12.000723834917984, 3.220579408194167, -0.342225302271235),
    5: (-0.7518999460733967, -0.9590030077748760, 5.5997371322141607, -8.2097636999765520, 6.5091254894472037, -2.6830293734323729, 0.5612891113138221, -0.0463331622196545),
    6: (29.8257900969619634, -31.3287083337725925, -10.5942523036582283, -11.5720125689099618, 3.8188754373907492, -2.4160130328530811, 0.4542208940970826, -0.0575155452020420),
    7: (2.8102921290820060, -3.9780498518175995, 1.3162680041351582, -3.9252486335805901, 2.0080835753946471, -0.7527151937556955, 0.1265569894242751, -0.0109946438726240),
    8: (1.00633544887550519, -2.00580666405112407, 1.64369749366514117, -2.70560809940566172, 1.39209980244222598, -0.46470374272183190, 0.07384282377269775, -0.00578554885254223),
    9: (-0.09415657458167959, -0.78130975924550528, 1.71514946750712460, -1.73711250406516338, 0.86441508489048924, -0.23819027465047218, 0.03343448400269076, -0.00207858528178157),
    10: (-0.25935400670790054, -0.52598301999805808, 1.48933034925876839, -1.29642714084993571, 0.62284756217221615, -0.15672326770251041, 0.02054415903878563, -0.00112488483925502),
    11: (-0.432325553856025, -0.108450736399632, 0.609156550741120, -0.0165687801845180, -0.0795829341087617, 0.0471830602102918, -0.00781372902346934, 0.000584268708489995),
    12: (-0.384979202588598, 0.183162233114364, 0.130396688841854, 0.0704838927629266, -0.0089589397146453, 0.0113010036741605, -0.00194285569591290, 0.000225435774024964),
    13: (-0.41655270946462997, -0.22146677040685156, 0.38862131236999947, 0.45340979746062371, -0.36264738324476375, 0.12304650053558529, -0.01701540384555510, 0.00102750367080838),
    14: (-0.371009760230692, 0.00978811941207509, 0.185796293324165, 0.203015527328432, -0.116710521803686, 0.0431106699492820, -0.00599583540511831, 0.000449704299509437),
    15: (-0.38215145543875273, -0.89069400536090837, 0.37602335774678869, 0.99335977440682377, -0.65577441638318956, 0.18332342129703610, -0.02241529633062872, 0.00121399789330194),
    16: (-0.37331876643753059, -1.41704077448122989, 0.40729184796612533, 1.56152033906584164, -0.99242233534286128, 0.26064681399483092, -0.03053811369682807, 0.00155770210179105),
    17: (-0.36775502299404605, 0.53831422351377967, 0.76970289278767923, 0.55002583586450560, -0.74575588261146941, 0.25711835785821952, -0.03437902606864149, 0.00185949146371616),
    18: (-0.36479623325960542, 0.99730412328635032, 1.55354386230081221, 1.25932677198028919, -1.53325948209110163, 0.47801042200056593, -0.05951025172951174, 0.00291076804642205),
}


def hll(payload, precision):
    """Decodes the HLL payload (axiomhq/hyperloglog encoding version 2)."""
    version, p, _b, sparse = payload[0], payload[1], payload[2], payload[3]
    if version != 2 or p != precision:
        raise ValueError("hll payload version %d precision %d" % (version, p))
    m = 1 << p
    if sparse:
        # tmp set: u32 n, n × u32 keys; then the sorted list: u32 count,
        # u32 last, u32 L, L bytes of varint deltas (all big-endian).
        n = struct.unpack_from(">I", payload, 4)[0]
        keys = set(struct.unpack_from(">%dI" % n, payload, 8))
        off = 8 + 4 * n
        count, _last, size = struct.unpack_from(">III", payload, off)
        off += 12
        x, end = 0, off + size
        while off < end:
            d, off = uvarint(payload, off)
            x += d
            keys.add(x)
        if len(keys) < count:
            raise ValueError("sparse list shorter than its count")
        # Linear counting over 2^25 buckets, truncated as the Go library does.
        mp = 1 << 25
        v = mp - min(len(keys), mp - 1)
        return {"representation": "sparse", "sparse_keys": len(keys),
                "estimate": math.floor(mp * math.log(mp / v))}
    size = struct.unpack_from(">I", payload, 4)[0]
    regs = payload[8:8 + size]
    if size != m or len(regs) != m:
        raise ValueError("dense hll with %d registers, want %d" % (size, m))
    s = sum(2.0 ** -r for r in regs)
    z = float(regs.count(0))
    alpha = {16: 0.673, 32: 0.697, 64: 0.709}.get(m, 0.7213 / (1 + 1.079 / m))
    zl = math.log(z + 1)
    c = BETA[p]
    beta = c[0] * z + sum(c[i] * zl ** i for i in range(1, 8))
    est = alpha * m * (m - z) / (s + beta)
    return {"representation": "dense", "zero_registers": int(z),
            "estimate": math.floor(est + 0.5)}


# ----------------------------------------------------------------- tdigest

def tdigest(payload, count):
    """Decodes sketchd's t-digest payload into (min, max, [(mean, weight)])."""
    nc, off = uvarint(payload, 0)
    nb, off = uvarint(payload, off)
    if count == 0:
        return None, None, []
    lo, hi = struct.unpack_from("<dd", payload, off)
    off += 16
    cs = []
    for _ in range(nc + nb):  # compressed centroids, then buffered values
        mean = struct.unpack_from("<d", payload, off)[0]
        w, off = uvarint(payload, off + 8)
        cs.append((mean, w))
    cs.sort()
    return lo, hi, cs


def tdigest_exchange(b):
    """Decodes the t-digest exchange ("small") encoding, big-endian."""
    enc, compression, n = struct.unpack_from(">idi", b, 0)
    if enc != 2 or n < 0:
        raise ValueError("t-digest encoding %d with %d centroids" % (enc, n))
    deltas = struct.unpack_from(">%df" % n, b, 16)
    off, mean, cs = 16 + 4 * n, 0.0, []
    for d in deltas:
        mean += d
        w, off = uvarint(b, off)
        cs.append((mean, w))
    if off != len(b):
        raise ValueError("trailing bytes")
    return compression, cs


def quantile(cs, lo, hi, q):
    """Interpolates quantile q between centroid midpoints (clamped to min/max)."""
    total = sum(w for _, w in cs)
    target, cum = q * total, 0.0
    prev_mid, prev_mean = 0.0, lo
    for mean, w in cs:
        mid = cum + w / 2.0
        if target <= mid:
            if mid == prev_mid:
                return mean
            t = (target - prev_mid) / (mid - prev_mid)
            return prev_mean + t * (mean - prev_mean)
        prev_mid, prev_mean, cum = mid, mean, cum + w
    if total == prev_mid:
        return hi
    t = (target - prev_mid) / (total - prev_mid)
    return prev_mean + t * (hi - prev_mean)


QS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def digest_summary(lo, hi, cs):
    out = {"min": lo, "max": hi, "centroids": len(cs)}
    if cs:
        out["quantiles"] = {str(q): quantile(cs, lo, hi, q) for q in QS}
    return out


# --------------------------------------------------------------------- main

def decode(b, exchange=False):
    if exchange:
        compression, cs = tdigest_exchange(b)
        lo = cs[0][0] if cs else None
        hi = cs[-1][0] if cs else None
        out = {"kind": "tdigest", "format": "tdigest-exchange", "compression": compression,
               "count": sum(w for _, w in cs)}
        out.update(digest_summary(lo, hi, cs))
        return out
    kind, count, params, payload = envelope(b)
    out = {"kind": kind, "format": "sketchd", "count": count}
    if kind == "hll":
        out["precision"] = params[1][0]
        out.update(hll(payload, out["precision"]))
    elif kind == "tdigest":
        out["compression"] = struct.unpack("<d", params[1])[0]
        out.update(digest_summary(*tdigest(payload, count)))
    return out


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: decode_sketch.py FILE [--tdigest]")
    with open(argv[1], "rb") as f:
        b = f.read()
    print(json.dumps(decode(b, "--tdigest" in argv[2:]), sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
