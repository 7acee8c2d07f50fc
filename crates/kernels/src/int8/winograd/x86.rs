//! AVX-512 VNNI input transform of the INT8 Winograd kernel: the first pass of V = Bᵀ d B
//! as byte dot products instead of f32 multiply-adds.
//!
//! tmp[i][q] = Σ_p B[i][p]·d[p][q] is, per channel, a dot product over the window's rows p.
//! With the input stored as "row quads" — for every tile row and group of 4 window rows, each
//! (column, channel) holds its 4 rows as 4 consecutive bytes (x + 128) — one vpdpbusd adds 4
//! such products into each of 16 channel lanes, against a broadcast 4-byte group of Bᵀ's row
//! (rows past t are multiplied by zero coefficients). The +128 costs a constant per row i,
//! 128·Σ_p B[i][p]. The sums are exact; the second pass and the requantization are the f32
//! ones of the portable path (exact under the same bound, so the results are identical).

use super::block_kernels::{Span, CB};
use crate::TileGrid;
use std::arch::x86_64::*;

/// Bᵀ as 4-byte groups for the dot products, and as the f32 coefficients of the second pass.
#[derive(Debug, Clone)]
pub struct QuadB {
    /// Bᵀ's codes, t×t.
    codes: Vec<i32>,
    /// groups[i·q + g] = B[i][4g..4g+4] as little-endian bytes.
    groups: Vec<i32>,
    /// 128·Σ_p B[i][p], removed from every first-pass sum of row i.
    corr: Vec<i32>,
    /// Quads per window: ⌈t / 4⌉.
    pub q: usize,
}

/// Where the quads of a span's tile rows live in its buffer. With m a multiple of 4 a quad is
/// shared by neighbouring tile rows of one image (F4: quad 1 of tile row y is quad 0 of row
/// y + 1) and built once.
struct Slots {
    shared: bool,
    m: usize,
    q: usize,
    tiles_y: usize,
    /// Quads per image when shared.
    per_image: usize,
    base: usize,
}

impl Slots {
    fn new(g: &TileGrid, q: usize, r0: usize) -> Slots {
        let tiles_y = g.tiles_y;
        let shared = g.m.is_multiple_of(4);
        let per_image = g.m * (tiles_y - 1) / 4 + q;
        let mut s = Slots {
            shared,
            m: g.m,
            q,
            tiles_y,
            per_image,
            base: 0,
        };
        s.base = s.slot(r0, 0);
        s
    }

    /// Slot of quad `gq` of global tile row `rr` (image · tiles_y + row).
    fn slot(&self, rr: usize, gq: usize) -> usize {
        let (ni, ty) = (rr / self.tiles_y, rr % self.tiles_y);
        let abs = if self.shared {
            ni * self.per_image + self.m * ty / 4 + gq
        } else {
            rr * self.q + gq
        };
        abs - self.base
    }
}

impl QuadB {
    /// None when a code of Bᵀ does not fit in i8 or the second pass would not be exact in
    /// f32 ((row L1)²·128 ≥ 2^24).
    pub fn new(qb: &[i32], t: usize) -> Option<QuadB> {
        let l1 = qb
            .chunks(t)
            .map(|r| r.iter().map(|v| v.unsigned_abs() as u64).sum::<u64>())
            .max()?;
        if l1 * l1 * 128 >= 1 << 24 {
            return None;
        }
        let q = t.div_ceil(4);
        let byte = |i: usize, p: usize| {
            if p < t {
                i8::try_from(qb[i * t + p]).ok()
            } else {
                Some(0)
            }
        };
        let mut groups = Vec::with_capacity(t * q);
        for i in 0..t {
            for g in 0..q {
                let mut b = [0u8; 4];
                for (r, v) in b.iter_mut().enumerate() {
                    *v = byte(i, 4 * g + r)? as u8;
                }
                groups.push(i32::from_le_bytes(b));
            }
        }
        let corr = (0..t)
            .map(|i| 128 * qb[i * t..(i + 1) * t].iter().sum::<i32>())
            .collect();
        Some(QuadB {
            codes: qb.to_vec(),
            groups,
            corr,
            q,
        })
    }
}

/// Row quads of the tile rows of `span` from the unpadded N×H×W×C codes `x`: [tile row][quad
/// g][padded column][channel][4 rows], x + 128 per byte; padding (outside the image) is x = 0.
///
/// # Safety
/// The CPU must support AVX-512F/BW; c must be a multiple of 16.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn build_quads(g: &TileGrid, span: Span, x: &[i8], c: usize, qb: &QuadB, out: &mut Vec<u8>) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        let tiles_y = g.tiles_y;
        let (r0, r1) = (span.p0 / g.tiles_x, span.p1 / g.tiles_x);
        // Whole tile rows, at least one; 16-byte loads of every row's channel blocks.
        assert!(
            r1 > r0
                && span.p0.is_multiple_of(g.tiles_x)
                && span.p1.is_multiple_of(g.tiles_x)
                && c.is_multiple_of(CB)
        );
        assert!(x.len() >= (r1 - 1) / tiles_y * g.h * g.w * c + g.h * g.w * c);
        let plane = g.padded_in().1 * c * 4;
        let slots = Slots::new(g, qb.q, r0);
        out.resize((slots.slot(r1 - 1, qb.q - 1) + 1) * plane, 0);
        let (top, left) = (1 + g.before.0, 1 + g.before.1);
        let flip = _mm_set1_epi8(-128);
        let zero = _mm_setzero_si128();
        let mut built = None;
        for rr in r0..r1 {
            let (ni, ty) = (rr / tiles_y, rr % tiles_y);
            for gq in 0..qb.q {
                // Slots only grow along this loop: a slot at or below the last one is built.
                let slot = slots.slot(rr, gq);
                if built.is_some_and(|b| slot <= b) {
                    continue;
                }
                built = Some(slot);
                let dst = out.as_mut_ptr().add(slot * plane);
                // The 4 image rows of this quad (None: padding).
                let rows: [Option<&[i8]>; 4] = std::array::from_fn(|r| {
                    let rp = ty * g.m + 4 * gq + r;
                    let iy = rp.checked_sub(top).filter(|&v| v < g.h)?;
                    Some(&x[(ni * g.h + iy) * g.w * c..][..g.w * c])
                });
                for col in 0..g.padded_in().1 {
                    let ix = col.checked_sub(left).filter(|&v| v < g.w);
                    for c0 in (0..c).step_by(CB) {
                        let load = |r: usize| match (rows[r], ix) {
                            (Some(row), Some(ix)) => {
                                _mm_loadu_si128(row.as_ptr().add(ix * c + c0) as *const _)
                            }
                            _ => zero,
                        };
                        let (a, b, cc, d) = (load(0), load(1), load(2), load(3));
                        // Bytes of rows 0..3 interleaved per channel: 4 channels per 16 bytes.
                        let (ab_lo, ab_hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
                        let (cd_lo, cd_hi) = (_mm_unpacklo_epi8(cc, d), _mm_unpackhi_epi8(cc, d));
                        let o = dst.add((col * c + c0) * 4) as *mut __m128i;
                        _mm_storeu_si128(o, _mm_xor_si128(_mm_unpacklo_epi16(ab_lo, cd_lo), flip));
                        _mm_storeu_si128(o.add(1), _mm_xor_si128(_mm_unpackhi_epi16(ab_lo, cd_lo), flip));
                        _mm_storeu_si128(o.add(2), _mm_xor_si128(_mm_unpacklo_epi16(ab_hi, cd_hi), flip));
                        _mm_storeu_si128(o.add(3), _mm_xor_si128(_mm_unpackhi_epi16(ab_hi, cd_hi), flip));
                    }
                }
            }
        }
    }
}

/// V = Bᵀ d B of every tile of `span` and 16-channel block, requantized per tap with
/// `v_mul[e]` into `rows[e][tile][channel]` (rows `kp` bytes apart) — the same codes as the
/// portable f32 path.
///
/// # Safety
/// The CPU must support AVX-512F/BW and VNNI; `quads` from `build_quads` for this span; T
/// and Q = ⌈T/4⌉ the layer's tile size.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub unsafe fn input_vnni<const T: usize, const Q: usize>(
    g: &TileGrid,
    span: Span,
    quads: &[u8],
    c: usize,
    qb: &QuadB,
    v_mul: &[f32],
    rows: &mut [&mut [i8]],
    kp: usize,
) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        assert!(qb.q == Q && qb.codes.len() == T * T && rows.len() == T * T && v_mul.len() == T * T);
        let pc = span.p1 - span.p0;
        assert!(rows.iter().all(|r| r.len() >= pc * kp) && c.is_multiple_of(CB) && kp >= c);
        // Per-call constants, broadcast once (no index checks or broadcasts in the block loop).
        let corr: [__m512i; T] = std::array::from_fn(|i| _mm512_set1_epi32(-qb.corr[i]));
        let groups: [[__m512i; Q]; T] =
            std::array::from_fn(|i| std::array::from_fn(|gq| _mm512_set1_epi32(qb.groups[i * Q + gq])));
        let plane = g.padded_in().1 * c * 4;
        let slots = Slots::new(g, Q, span.p0 / g.tiles_x);
        // The quads `build_quads` made for this span, every window inside the padded width.
        assert!(span.p1 > span.p0 && quads.len() >= (slots.slot(span.p1 / g.tiles_x - 1, Q - 1) + 1) * plane);
        assert!(g.padded_in().1 >= g.tiles_x * g.m + 2);
        let cap = _mm512_set1_ps(1073741824.0);
        let bm: [[__m512; T]; T] =
            std::array::from_fn(|j| std::array::from_fn(|q| _mm512_set1_ps(qb.codes[j * T + q] as f32)));
        for p in span.p0..span.p1 {
            let (ni, tile) = (p / g.tiles, p % g.tiles);
            let (ty, tx) = (tile / g.tiles_x, tile % g.tiles_x);
            let rr = ni * slots.tiles_y + ty;
            let quad: [*const u8; Q] =
                std::array::from_fn(|gq| quads.as_ptr().add(slots.slot(rr, gq) * plane));
            let at = (p - span.p0) * kp;
            for c0 in (0..c).step_by(CB) {
                // Row by row of V: the first pass's row i (window columns q, exact, as f32), then
                // V[i][j] = Σ_q B[j][q]·tmp[q] over all of Bᵀ (straight-line, in registers),
                // requantized: clamp above, round half to even, narrow with saturation (= `to_code`).
                for i in 0..T {
                    let tmp: [__m512; T] = std::array::from_fn(|q| {
                        let col = (tx * g.m + q) * c + c0;
                        let mut acc = corr[i];
                        for gq in 0..Q {
                            let d = _mm512_loadu_si512(quad[gq].add(col * 4) as *const _);
                            acc = _mm512_dpbusd_epi32(acc, d, groups[i][gq]);
                        }
                        _mm512_cvtepi32_ps(acc)
                    });
                    for j in 0..T {
                        let mut v = _mm512_setzero_ps();
                        for q in 0..T {
                            v = _mm512_fmadd_ps(bm[j][q], tmp[q], v);
                        }
                        let e = i * T + j;
                        let scaled = _mm512_min_ps(_mm512_mul_ps(v, _mm512_set1_ps(v_mul[e])), cap);
                        let codes = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(scaled));
                        // In bounds: rows hold pc rows of kp ≥ c bytes (checked above).
                        _mm_storeu_si128(rows[e].as_mut_ptr().add(at + c0) as *mut _, codes);
                    }
                }
            }
        }
    }
}

/// The arithmetic of `output_avx512`, one value per kernel call:
/// - `F32Arith<false>`: the codes of M and Aᵀ, f32 fused multiply-adds (exact when Aᵀ's codes
///   meet the f32 bound);
/// - `I32Arith`: the same in i32 (always exact: |S| ≤ (8·128)²·128 < 2^31);
/// - `F32Arith<true>`: per-tap Hadamard scales, M dequantized per tap (code × s_m[e]) and Aᵀ's
///   values, f32 fused multiply-adds in the order of training's `sandwich_lanes` (a zero
///   coefficient adds ±0, which changes at most the sign of a zero sum, and so no code).
pub trait OutArith {
    type V: Copy;
    /// # Safety
    /// AVX-512F (all methods).
    unsafe fn zero() -> Self::V;
    /// Aᵀ's entry `i` (row-major M×T), broadcast.
    unsafe fn coeff(&self, i: usize) -> Self::V;
    /// 16 codes of M at tap `e`.
    unsafe fn load(&self, codes: __m128i, e: usize) -> Self::V;
    unsafe fn madd(acc: Self::V, a: Self::V, x: Self::V) -> Self::V;
    /// The sum as f32 (rounded like `v as f32`).
    unsafe fn to_ps(v: Self::V) -> __m512;
}

/// f32 arithmetic on Aᵀ's codes (`SCALED` false, M the codes of the products) or on values
/// (`SCALED` true: Aᵀ's values and M dequantized per tap, code × `s_m[e]`); M×T row-major.
pub struct F32Arith<'a, const SCALED: bool> {
    pub a: &'a [f32],
    /// One Hadamard scale per tap (unused on codes).
    pub s_m: &'a [f32],
}
/// Aᵀ's codes (M×T row-major).
pub struct I32Arith<'a>(pub &'a [i32]);

impl<const SCALED: bool> OutArith for F32Arith<'_, SCALED> {
    type V = __m512;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: the caller upholds this function's safety contract (the CPU features it
        // enables, the operand sizes documented on it), which every operation below relies on.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn coeff(&self, i: usize) -> __m512 {
        // SAFETY: as above.
        unsafe { _mm512_set1_ps(self.a[i]) }
    }
    #[inline(always)]
    unsafe fn load(&self, codes: __m128i, e: usize) -> __m512 {
        // SAFETY: as above.
        unsafe {
            let c = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(codes));
            if SCALED {
                _mm512_mul_ps(c, _mm512_set1_ps(self.s_m[e]))
            } else {
                c
            }
        }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512, a: __m512, x: __m512) -> __m512 {
        // SAFETY: as above.
        unsafe { _mm512_fmadd_ps(a, x, acc) }
    }
    #[inline(always)]
    unsafe fn to_ps(v: __m512) -> __m512 {
        v
    }
}

impl OutArith for I32Arith<'_> {
    type V = __m512i;
    #[inline(always)]
    unsafe fn zero() -> __m512i {
        // SAFETY: the caller upholds this function's safety contract (the CPU features it
        // enables, the operand sizes documented on it), which every operation below relies on.
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    unsafe fn coeff(&self, i: usize) -> __m512i {
        // SAFETY: as above.
        unsafe { _mm512_set1_epi32(self.0[i]) }
    }
    #[inline(always)]
    unsafe fn load(&self, codes: __m128i, _: usize) -> __m512i {
        // SAFETY: as above.
        unsafe { _mm512_cvtepi8_epi32(codes) }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512i, a: __m512i, x: __m512i) -> __m512i {
        // SAFETY: as above.
        unsafe { _mm512_add_epi32(acc, _mm512_mullo_epi32(a, x)) }
    }
    #[inline(always)]
    unsafe fn to_ps(v: __m512i) -> __m512 {
        // SAFETY: as above.
        unsafe { _mm512_cvtepi32_ps(v) }
    }
}

/// Image, and output rows and columns inside the crop (None: cropped away), of tile `p`.
#[inline(always)]
fn tile_place<const M: usize>(g: &TileGrid, p: usize) -> (usize, [Option<usize>; M], [Option<usize>; M]) {
    let (ni, tile) = (p / g.tiles, p % g.tiles);
    let (ty, tx) = (tile / g.tiles_x, tile % g.tiles_x);
    (
        ni,
        std::array::from_fn(|i| (ty * M + i).checked_sub(g.before.0).filter(|&v| v < g.h)),
        std::array::from_fn(|j| (tx * M + j).checked_sub(g.before.1).filter(|&v| v < g.w)),
    )
}

/// Stores 16 output codes of channels k0.. at image `ni`, row `yy`, column `xx` of the span's
/// N×H×W×K output.
#[inline(always)]
fn store_codes(
    y: &mut [i8],
    g: &TileGrid,
    span: Span,
    (ni, yy, xx): (usize, usize, usize),
    k: usize,
    k0: usize,
    codes: __m128i,
) {
    let dst = &mut y[((ni * g.h + yy - span.y_row0) * g.w + xx) * k + k0..][..CB];
    // SAFETY: `dst` holds CB = 16 bytes, what an unaligned 128-bit store writes (SSE2 is
    // part of x86_64).
    unsafe { _mm_storeu_si128(dst.as_mut_ptr() as *mut __m128i, codes) }
}

/// Y = Aᵀ M A (per tap e: `qm[e][tile][channel]` from e·qs, tiles of `span`) in the arithmetic
/// `arith` (see `OutArith`), requantized as `to_code(Y·mul)` into the cropped N×H×W×K output —
/// the same codes as the portable path. Straight-line code over all coefficients (zeros
/// included): the accumulators stay in registers.
///
/// # Safety
/// The CPU must support AVX-512F/BW; k a multiple of 16; T = M + 2 the layer's tile size;
/// `arith` holds M×T coefficients (and T·T scales); with `F32Arith`, Aᵀ's codes must meet the
/// f32 bound.
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub unsafe fn output_avx512<A: OutArith, const T: usize, const M: usize>(
    g: &TileGrid,
    span: Span,
    qm: &[i8],
    qs: usize,
    k: usize,
    arith: &A,
    mul: f32,
    y: &mut [i8],
) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        let pc = span.p1 - span.p0;
        assert!(g.m == M && k.is_multiple_of(CB) && qs >= pc * k && qm.len() >= (T * T - 1) * qs + pc * k);
        let a: [[A::V; T]; M] = std::array::from_fn(|i| std::array::from_fn(|p| arith.coeff(i * T + p)));
        // Clamped above only: cvtps_epi32 turns anything beyond i32 into i32::MIN, which the
        // saturating narrow then maps to -128 as `to_code` does for large negative values.
        let (mulv, cap) = (_mm512_set1_ps(mul), _mm512_set1_ps(1073741824.0));
        for p in span.p0..span.p1 {
            let (ni, yy, xx) = tile_place::<M>(g, p);
            let pl = p - span.p0;
            for k0 in (0..k).step_by(CB) {
                // First pass, row by row of M: tmp[i][q] = Σ_p A[i][p]·M[p][q].
                let mut tmp = [[A::zero(); T]; M];
                for pp in 0..T {
                    let row: [A::V; T] = std::array::from_fn(|q| {
                        let e = pp * T + q;
                        let src = qm.as_ptr().add(e * qs + pl * k + k0);
                        arith.load(_mm_loadu_si128(src as *const _), e)
                    });
                    for i in 0..M {
                        for q in 0..T {
                            tmp[i][q] = A::madd(tmp[i][q], a[i][pp], row[q]);
                        }
                    }
                }
                // Second pass Y[i][j] = Σ_q A[j][q]·tmp[i][q], requantized (see `input_vnni`).
                for i in 0..M {
                    let Some(yy) = yy[i] else { continue };
                    for j in 0..M {
                        let Some(xx) = xx[j] else { continue };
                        let mut v = A::zero();
                        for q in 0..T {
                            v = A::madd(v, a[j][q], tmp[i][q]);
                        }
                        let scaled = _mm512_min_ps(_mm512_mul_ps(A::to_ps(v), mulv), cap);
                        let codes = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(scaled));
                        store_codes(y, g, span, (ni, yy, xx), k, k0, codes);
                    }
                }
            }
        }
    }
}
