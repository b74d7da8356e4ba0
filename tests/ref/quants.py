#!/usr/bin/python3
"""quants.py — independent numpy reference for the GGUF/ggml block formats.

Dequantization is written from the block layouts of the GGUF spec / ggml-common.h, vectorized over
blocks the way gguf-py's quants.py does it (every arithmetic step in float32, in the order ggml's
dequantize_row_* uses, so results are bit-exact). Quantization ports llama.cpp's quantize_row_*_ref
(q8_0, q4_0, q4_1, q5_0, q5_1, q8_K, q4_K, q5_K, q6_K) with float32 scalars and sequential sums.

Usage (driven by tests/kernels_matmul/test_quant_ref.c):
  quants.py dequant TYPE IN.bin N OUT.f32     raw blocks -> float32
  quants.py quant   TYPE IN.f32 N OUT.bin     float32 -> raw blocks
"""
import sys

import numpy as np

F32 = np.float32
QK_K = 256

# name: (elements per block, bytes per block)
TYPES = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2),
    "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34),
    "q2_K": (256, 84), "q3_K": (256, 110), "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210),
    "q8_K": (256, 292),
}


def f16(b):  # uint8 [..., 2] -> float32
    return np.ascontiguousarray(b).view(np.float16).astype(F32)[..., 0]


# ------------------------------------------------------------------ dequantize (vectorized over blocks)

def dq_q4_0(b):
    d = f16(b[:, 0:2])[:, None]
    qs = b[:, 2:18]
    q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int32) - 8
    return q.astype(F32) * d


def dq_q4_1(b):
    d, m = f16(b[:, 0:2])[:, None], f16(b[:, 2:4])[:, None]
    qs = b[:, 4:20]
    q = np.concatenate([qs & 0xF, qs >> 4], axis=1)
    return q.astype(F32) * d + m


def q5_high(qh4):  # 4 bytes little-endian -> bit j for j in 0..31
    qh = qh4.astype(np.uint32)
    word = qh[:, 0] | (qh[:, 1] << 8) | (qh[:, 2] << 16) | (qh[:, 3] << 24)
    return ((word[:, None] >> np.arange(32, dtype=np.uint32)[None, :]) & 1).astype(np.int32)


def dq_q5_0(b):
    d = f16(b[:, 0:2])[:, None]
    h = q5_high(b[:, 2:6])
    qs = b[:, 6:22]
    q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int32) | (h << 4)
    return (q - 16).astype(F32) * d


def dq_q5_1(b):
    d, m = f16(b[:, 0:2])[:, None], f16(b[:, 2:4])[:, None]
    h = q5_high(b[:, 4:8])
    qs = b[:, 8:24]
    q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int32) | (h << 4)
    return q.astype(F32) * d + m


def dq_q8_0(b):
    d = f16(b[:, 0:2])[:, None]
    return b[:, 2:34].view(np.int8).astype(F32) * d


def unpack_2bit(qs):  # [nb, 64] -> [nb, 256]: element 128*h + 32*s + l = (qs[32*h + l] >> 2s) & 3
    out = np.empty((qs.shape[0], 256), dtype=np.int32)
    for h in range(2):
        for s in range(4):
            out[:, 128 * h + 32 * s:128 * h + 32 * s + 32] = (qs[:, 32 * h:32 * h + 32] >> (2 * s)) & 3
    return out


def dq_q2_K(b):
    scales, qs = b[:, 0:16], b[:, 16:80]
    d, dmin = f16(b[:, 80:82])[:, None], f16(b[:, 82:84])[:, None]
    # 16 groups of 16; group g uses scales[g]
    q = unpack_2bit(qs).reshape(-1, 16, 16)
    dl = d * (scales & 0xF).astype(F32)
    ml = dmin * (scales >> 4).astype(F32)
    return (dl[:, :, None] * q.astype(F32) - ml[:, :, None]).reshape(-1, 256)


def q3_scales(s):  # [nb, 12] -> [nb, 16] signed
    s = s.astype(np.int32)
    out = np.empty((s.shape[0], 16), dtype=np.int32)
    for j in range(16):
        lo = s[:, j] & 0xF if j < 8 else s[:, j - 8] >> 4
        hi = (s[:, 8 + j % 4] >> (2 * (j // 4))) & 3
        out[:, j] = (lo | (hi << 4)) - 32
    return out


def dq_q3_K(b):
    hmask, qs, sc12 = b[:, 0:32], b[:, 32:96], b[:, 96:108]
    d = f16(b[:, 108:110])[:, None]
    low = unpack_2bit(qs)
    # element 128*h + 32*s + l takes its high bit from hmask[l] bit (4h + s)
    high = np.empty_like(low)
    for h in range(2):
        for s in range(4):
            high[:, 128 * h + 32 * s:128 * h + 32 * s + 32] = (hmask >> (4 * h + s)) & 1
    q = low - np.where(high == 1, 0, 4)
    dl = d * q3_scales(sc12).astype(F32)
    return (dl[:, :, None] * q.reshape(-1, 16, 16).astype(F32)).reshape(-1, 256)


def k4_scale_min(s):  # [nb, 12] -> sc [nb, 8], m [nb, 8] (6-bit)
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), dtype=np.int32)
    mn = np.empty_like(sc)
    for j in range(8):
        if j < 4:
            sc[:, j], mn[:, j] = s[:, j] & 63, s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
            mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc, mn


def unpack_4bit_k(qs):  # [nb, 128] -> [nb, 256]: sub-block 2c = low nibbles of qs[32c:32c+32], 2c+1 = high
    out = np.empty((qs.shape[0], 256), dtype=np.int32)
    for c in range(4):
        out[:, 64 * c:64 * c + 32] = qs[:, 32 * c:32 * c + 32] & 0xF
        out[:, 64 * c + 32:64 * c + 64] = qs[:, 32 * c:32 * c + 32] >> 4
    return out


def dq_q4_K(b):
    d, dmin = f16(b[:, 0:2])[:, None], f16(b[:, 2:4])[:, None]
    sc, mn = k4_scale_min(b[:, 4:16])
    q = unpack_4bit_k(b[:, 16:144]).reshape(-1, 8, 32)
    d1 = d * sc.astype(F32)
    m1 = dmin * mn.astype(F32)
    return (d1[:, :, None] * q.astype(F32) - m1[:, :, None]).reshape(-1, 256)


def dq_q5_K(b):
    d, dmin = f16(b[:, 0:2])[:, None], f16(b[:, 2:4])[:, None]
    sc, mn = k4_scale_min(b[:, 4:16])
    qh = b[:, 16:48]
    q = unpack_4bit_k(b[:, 48:176])
    for j in range(8):  # sub-block j takes bit j of qh[l]
        q[:, 32 * j:32 * j + 32] += ((qh >> j) & 1).astype(np.int32) * 16
    q = q.reshape(-1, 8, 32)
    d1 = d * sc.astype(F32)
    m1 = dmin * mn.astype(F32)
    return (d1[:, :, None] * q.astype(F32) - m1[:, :, None]).reshape(-1, 256)


def dq_q6_K(b):
    ql, qh, sc = b[:, 0:128], b[:, 128:192], b[:, 192:208].view(np.int8)
    d = f16(b[:, 208:210])[:, None]
    q = np.empty((b.shape[0], 256), dtype=np.int32)
    for h in range(2):
        L, H = ql[:, 64 * h:64 * h + 64], qh[:, 32 * h:32 * h + 32]
        base = 128 * h
        q[:, base + 0:base + 32] = (L[:, 0:32] & 0xF) | (((H >> 0) & 3) << 4)
        q[:, base + 32:base + 64] = (L[:, 32:64] & 0xF) | (((H >> 2) & 3) << 4)
        q[:, base + 64:base + 96] = (L[:, 0:32] >> 4) | (((H >> 4) & 3) << 4)
        q[:, base + 96:base + 128] = (L[:, 32:64] >> 4) | (((H >> 6) & 3) << 4)
    q -= 32
    ds = d * sc.astype(F32)  # [nb, 16], one per 16 elements
    return (ds[:, :, None] * q.reshape(-1, 16, 16).astype(F32)).reshape(-1, 256)


def dq_q8_K(b):
    d = np.ascontiguousarray(b[:, 0:4]).view(F32)
    return d * b[:, 4:260].view(np.int8).astype(F32)


def dequantize(name, raw, n):
    bs, ts = TYPES[name]
    if name == "f32":
        return np.frombuffer(raw, dtype=F32, count=n).copy()
    if name == "f16":
        return np.frombuffer(raw, dtype=np.float16, count=n).astype(F32)
    if name == "bf16":
        u = np.frombuffer(raw, dtype=np.uint16, count=n).astype(np.uint32) << 16
        return u.view(F32)
    b = np.frombuffer(raw, dtype=np.uint8, count=n // bs * ts).reshape(-1, ts)
    return globals()["dq_" + name](b).reshape(-1).astype(F32)


# ------------------------------------------------------------------ quantize (llama.cpp *_ref, float32 scalar)

def to_f16_bytes(v):
    return np.array([v], dtype=F32).astype(np.float16).tobytes()


def rint(v):  # ggml's nearest_int: round half to even
    return int(np.rint(F32(v)))


def seqsum(a):  # sequential float32 sum (C's `s += a[i]` loop)
    a = np.asarray(a, dtype=F32)
    return F32(np.add.accumulate(a, dtype=F32)[-1]) if a.size else F32(0)


def trunc_i8(v):  # C (int8_t) conversion of a float in range: truncation toward zero
    return int(np.trunc(F32(v)))


def signed_absmax(x):
    amax, mx = F32(0), F32(0)
    for v in x:
        if abs(v) > amax:
            amax, mx = abs(v), v
    return mx, amax


def qz_q8_0(x):
    out = bytearray()
    for blk in x.reshape(-1, 32):
        amax = F32(np.max(np.abs(blk)))
        d = F32(amax / F32(127))
        idd = F32(F32(1) / d) if d else F32(0)
        q = np.round(blk * idd)  # np.round is half-even; C roundf is half away from zero
        v = blk * idd
        q = np.where(np.abs(v - np.trunc(v)) == F32(0.5), np.trunc(v) + np.sign(v), q)
        out += to_f16_bytes(d) + q.astype(np.int8).tobytes()
    return bytes(out)


def pack_nibbles(L):
    return bytes((int(L[j]) | (int(L[16 + j]) << 4)) & 0xFF for j in range(16))


def pack_q5(L):
    qs = bytes(((int(L[j]) & 0xF) | ((int(L[16 + j]) & 0xF) << 4)) for j in range(16))
    qh = 0
    for j in range(32):
        qh |= ((int(L[j]) >> 4) & 1) << j
    return qh.to_bytes(4, "little"), qs


def qz_sym(x, half, five):
    out = bytearray()
    for blk in x.reshape(-1, 32):
        mx, _ = signed_absmax(blk)
        d = F32(mx / F32(-half))
        idd = F32(F32(1) / d) if d else F32(0)
        L = [min(2 * half - 1, trunc_i8(F32(F32(v * idd) + F32(half + 0.5)))) for v in blk]
        if five:
            qh, qs = pack_q5(L)
            out += to_f16_bytes(d) + qh + qs
        else:
            out += to_f16_bytes(d) + pack_nibbles(L)
    return bytes(out)


def qz_min(x, levels, five):
    out = bytearray()
    for blk in x.reshape(-1, 32):
        mn, mx = F32(np.min(blk)), F32(np.max(blk))
        d = F32(F32(mx - mn) / F32(levels - 1))
        idd = F32(F32(1) / d) if d else F32(0)
        L = []
        for v in blk:
            t = F32(F32(F32(v - mn) * idd) + F32(0.5))
            L.append(int(np.trunc(t)) & 0xFF if five else min(15, trunc_i8(t)))
        if five:
            qh, qs = pack_q5(L)
            out += to_f16_bytes(d) + to_f16_bytes(mn) + qh + qs
        else:
            out += to_f16_bytes(d) + to_f16_bytes(mn) + pack_nibbles(L)
    return bytes(out)


def qz_q8_K(x):
    out = bytearray()
    for blk in x.reshape(-1, 256):
        mx, amax = signed_absmax(blk)
        if not amax:
            out += bytes(292)
            continue
        iscale = F32(F32(-127) / mx)
        q = [min(127, rint(F32(iscale * v))) for v in blk]
        bsums = [sum(q[16 * j:16 * j + 16]) for j in range(16)]
        out += np.array([F32(1) / iscale], dtype=F32).tobytes() + np.array(q, dtype=np.int8).tobytes()
        out += np.array(bsums, dtype=np.int16).tobytes()
    return bytes(out)


def make_qkx2_quants(x, nmax, weights, rmin, rdelta, nstep, use_mad):
    """ggml make_qkx2_quants; returns (scale, the_min, L)."""
    n = len(x)
    mn, mx = x[0], x[0]
    sum_w = weights[0]
    sum_x = F32(sum_w * x[0])
    for i in range(1, n):
        if x[i] < mn:
            mn = x[i]
        if x[i] > mx:
            mx = x[i]
        sum_w = F32(sum_w + weights[i])
        sum_x = F32(sum_x + F32(weights[i] * x[i]))
    if mn > 0:
        mn = F32(0)
    if mx == mn:
        return F32(0), F32(-mn), [0] * n
    iscale = F32(F32(nmax) / F32(mx - mn))
    scale = F32(F32(1) / iscale)
    L = [max(0, min(nmax, rint(F32(iscale * F32(v - mn))))) for v in x]
    best_error = F32(0)
    for i in range(n):
        diff = F32(F32(F32(scale * F32(L[i])) + mn) - x[i])
        diff = abs(diff) if use_mad else F32(diff * diff)
        best_error = F32(best_error + F32(weights[i] * diff))
    if nstep < 1:
        return scale, F32(-mn), L
    for st in range(nstep + 1):
        iscale = F32(F32(F32(rmin + F32(rdelta * F32(st))) + F32(nmax)) / F32(mx - mn))
        sum_l = sum_l2 = sum_xl = F32(0)
        Laux = []
        for i in range(n):
            l = max(0, min(nmax, rint(F32(iscale * F32(x[i] - mn)))))
            Laux.append(l)
            w = weights[i]
            fl = F32(l)
            sum_l = F32(sum_l + F32(w * fl))
            sum_l2 = F32(sum_l2 + F32(F32(w * fl) * fl))
            sum_xl = F32(sum_xl + F32(F32(w * fl) * x[i]))
        D = F32(F32(sum_w * sum_l2) - F32(sum_l * sum_l))
        if D > 0:
            this_scale = F32(F32(F32(sum_w * sum_xl) - F32(sum_x * sum_l)) / D)
            this_min = F32(F32(F32(sum_l2 * sum_x) - F32(sum_l * sum_xl)) / D)
            if this_min > 0:
                this_min = F32(0)
                this_scale = F32(sum_xl / sum_l2)
            cur_error = F32(0)
            for i in range(n):
                diff = F32(F32(F32(this_scale * F32(Laux[i])) + this_min) - x[i])
                diff = abs(diff) if use_mad else F32(diff * diff)
                cur_error = F32(cur_error + F32(weights[i] * diff))
            if cur_error < best_error:
                L = list(Laux)
                best_error = cur_error
                scale = this_scale
                mn = this_min
    return scale, F32(-mn), L


def qz_k45(x, five):
    """quantize_row_q4_K_ref / quantize_row_q5_K_ref."""
    out = bytearray()
    nmax, rmin, nstep = (31, -0.5, 15) if five else (15, -1.0, 20)
    for blk in x.reshape(-1, 256):
        scales, mins, L = [], [], []
        for j in range(8):
            xs = blk[32 * j:32 * j + 32]
            sum_x2 = seqsum(xs * xs)
            av_x = F32(np.sqrt(F32(sum_x2 / F32(32))))
            weights = [F32(av_x + abs(v)) for v in xs]
            sc_j, m_j, L_j = make_qkx2_quants(list(xs), nmax, weights, F32(rmin), F32(0.1), nstep, False)
            scales.append(sc_j)
            mins.append(m_j)
            L += L_j
        max_scale = max_min = F32(0)
        for sc_j, m_j in zip(scales, mins):
            if sc_j > max_scale:
                max_scale = sc_j
            if m_j > max_min:
                max_min = m_j
        inv_scale = F32(F32(63) / max_scale) if max_scale > 0 else F32(0)
        inv_min = F32(F32(63) / max_min) if max_min > 0 else F32(0)
        s12 = [0] * 12
        for j in range(8):
            ls = min(63, rint(F32(inv_scale * scales[j])) & 0xFF)
            lm = min(63, rint(F32(inv_min * mins[j])) & 0xFF)
            if j < 4:
                s12[j], s12[j + 4] = ls, lm
            else:
                s12[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
                s12[j - 4] |= (ls >> 4) << 6
                s12[j] |= (lm >> 4) << 6
        d16, dmin16 = to_f16_bytes(F32(max_scale / F32(63))), to_f16_bytes(F32(max_min / F32(63)))
        d = f16(np.frombuffer(d16, np.uint8)[None, :])[0]
        dmin = f16(np.frombuffer(dmin16, np.uint8)[None, :])[0]
        sc, mn = k4_scale_min(np.array([s12], dtype=np.uint8))
        for j in range(8):
            dd = F32(d * F32(sc[0, j]))
            if not dd:
                continue  # this sub-block keeps the quants of the search
            dm = F32(dmin * F32(mn[0, j]))
            for ii in range(32):
                L[32 * j + ii] = max(0, min(nmax, rint(F32(F32(blk[32 * j + ii] + dm) / dd))))
        if five:
            qh = [0] * 32
            ql = []
            for c in range(4):
                for j in range(32):
                    l1, l2 = L[64 * c + j], L[64 * c + j + 32]
                    if l1 > 15:
                        l1 -= 16
                        qh[j] |= 1 << (2 * c)
                    if l2 > 15:
                        l2 -= 16
                        qh[j] |= 2 << (2 * c)
                    ql.append(l1 | (l2 << 4))
            out += d16 + dmin16 + bytes(s12) + bytes(qh) + bytes(ql)
        else:
            qs = [L[64 * c + l] | (L[64 * c + l + 32] << 4) for c in range(4) for l in range(32)]
            out += d16 + dmin16 + bytes(s12) + bytes(qs)
    return bytes(out)


def make_qx_quants_rmse1(x, nmax):
    """ggml make_qx_quants(rmse_type=1, qw=NULL); returns (scale, L with offset nmax)."""
    mx, amax = signed_absmax(x)
    if amax < F32(1e-15):
        return F32(0), [0] * len(x)

    def pass_(iscale):
        sumlx = suml2 = F32(0)
        Ls = []
        for v in x:
            l = max(-nmax, min(nmax - 1, rint(F32(iscale * v))))
            Ls.append(l + nmax)
            w = F32(v * v)
            sumlx = F32(sumlx + F32(F32(w * v) * F32(l)))
            suml2 = F32(suml2 + F32(F32(w * F32(l)) * F32(l)))
        return sumlx, suml2, Ls

    sumlx, suml2, L = pass_(F32(F32(-nmax) / mx))
    scale = F32(sumlx / suml2) if suml2 else F32(0)
    best = F32(scale * sumlx)
    for st in range(-9, 10):
        if st == 0:
            continue
        iscale = F32(F32(-F32(F32(nmax) + F32(F32(0.1) * F32(st)))) / mx)
        sumlx, suml2, Ls = pass_(iscale)
        if suml2 > 0 and F32(sumlx * sumlx) > F32(best * suml2):
            L = Ls
            scale = F32(sumlx / suml2)
            best = F32(scale * sumlx)
    return scale, L


def qz_q6_K(x):
    out = bytearray()
    for blk in x.reshape(-1, 256):
        scales, L = [], []
        for ib in range(16):
            s, Ls = make_qx_quants_rmse1(list(blk[16 * ib:16 * ib + 16]), 32)
            scales.append(s)
            L += Ls
        max_scale, max_abs = signed_absmax(scales)
        if max_abs < F32(1e-15):
            out += bytes(210)
            continue
        iscale = F32(F32(-128) / max_scale)
        d16 = to_f16_bytes(F32(F32(1) / iscale))
        d = f16(np.frombuffer(d16, np.uint8)[None, :])[0]
        sc = [min(127, rint(F32(iscale * s))) for s in scales]
        for j in range(16):
            dd = F32(d * F32(sc[j]))
            if not dd:
                continue
            for ii in range(16):
                L[16 * j + ii] = max(-32, min(31, rint(F32(blk[16 * j + ii] / dd)))) + 32
        ql, qh = [0] * 128, [0] * 64
        for h in range(2):
            j = 128 * h
            for l in range(32):
                q1, q2, q3, q4 = L[j + l], L[j + l + 32], L[j + l + 64], L[j + l + 96]
                ql[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
                ql[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
                qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
        out += bytes(ql) + bytes(qh) + np.array(sc, dtype=np.int8).tobytes() + d16
    return bytes(out)


def quantize(name, x):
    if name == "f16":
        return x.astype(np.float16).tobytes()
    if name == "bf16":
        u = x.view(np.uint32).astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        nan = np.isnan(x)
        r[nan] = ((u[nan] >> 16) | 64).astype(np.uint16)
        return r.tobytes()
    fns = {
        "q8_0": qz_q8_0, "q4_0": lambda v: qz_sym(v, 8, False), "q5_0": lambda v: qz_sym(v, 16, True),
        "q4_1": lambda v: qz_min(v, 16, False), "q5_1": lambda v: qz_min(v, 32, True), "q8_K": qz_q8_K,
        "q4_K": lambda v: qz_k45(v, False), "q5_K": lambda v: qz_k45(v, True), "q6_K": qz_q6_K,
    }
    return fns[name](x)


def main(argv):
    if len(argv) != 6 or argv[1] not in ("dequant", "quant") or argv[2] not in TYPES:
        sys.stderr.write(__doc__)
        return 2
    mode, name, src, n, dst = argv[1], argv[2], argv[3], int(argv[4]), argv[5]
    raw = open(src, "rb").read()
    if mode == "dequant":
        out = dequantize(name, raw, n).astype(F32).tobytes()
    else:
        out = quantize(name, np.frombuffer(raw, dtype=F32, count=n).copy())
    with open(dst, "wb") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
