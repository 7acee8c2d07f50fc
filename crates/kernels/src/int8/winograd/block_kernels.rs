//! Register-block tile transforms of the INT8 Winograd kernel for channel counts that are
//! multiples of 16: one tile × 16 channels at a time, read straight from the padded
//! channel-last input and written straight into the per-tap GEMM rows (input side), or read
//! from the per-tap products and written straight into the output (output side). Nothing
//! streams through intermediate lane arrays, and the transform loops have compile-time sizes.
//!
//! The output side must round exactly like training's `sandwich_lanes`: it performs the same
//! f32 operations in the same order (products by nonzero coefficients, summed from zero in
//! ascending index order).

use crate::int8::to_code;
use crate::TileGrid;
use winq_quant::simd::Isa;

/// Channels per block (i32/f32 lanes of a 512-bit vector).
pub const CB: usize = 16;

/// Nonzero coefficients of a row-major a×b matrix, row by row: (column, value), ascending.
pub fn nonzeros<T: Copy + Default + PartialEq>(l: &[T], a: usize, b: usize) -> Vec<Vec<(usize, T)>> {
    (0..a)
        .map(|i| {
            (0..b)
                .filter(|&j| l[i * b + j] != T::default())
                .map(|j| (j, l[i * b + j]))
                .collect()
        })
        .collect()
}

/// out[q] = Σ over a row's nonzeros (p, l) of l·x[p][q], for every q: the accumulators of
/// all q advance together (independent chains), each summing from zero in ascending p — the
/// order training's lane-wise kernel adds in.
#[inline(always)]
fn combine<T: Copy + Default, const R: usize, const P: usize>(
    row: &[(usize, T)],
    x: &[[[T; CB]; R]; P],
    madd: impl Fn(T, T, T) -> T,
) -> [[T; CB]; R] {
    let mut acc = [[T::default(); CB]; R];
    for &(p, l) in row {
        // One flat contiguous loop: LLVM vectorizes it along the lanes (nested loops over
        // power-of-two R were vectorized across q with gathers).
        for (a, &v) in acc.as_flattened_mut().iter_mut().zip(x[p].as_flattened()) {
            *a = madd(*a, l, v);
        }
    }
    acc
}

/// out[i] = Σ over a row's nonzeros (q, l) of l·x[i][q], for every i < S: the second pass of
/// a sandwich on the first pass's rows as they come (no transposed copy).
#[inline(always)]
fn combine_cols<T: Copy + Default, const R: usize, const S: usize>(
    row: &[(usize, T)],
    x: &[[[T; CB]; R]; S],
    madd: impl Fn(T, T, T) -> T,
) -> [[T; CB]; S] {
    let mut acc = [[T::default(); CB]; S];
    for &(q, l) in row {
        for (a, xi) in acc.iter_mut().zip(x) {
            for (a, &v) in a.iter_mut().zip(&xi[q]) {
                *a = madd(*a, l, v);
            }
        }
    }
    acc
}

/// y[q][i] = x[i][q].
#[inline(always)]
fn transposed<T: Copy + Default, const R: usize, const S: usize>(x: &[[[T; CB]; R]; S]) -> [[[T; CB]; S]; R] {
    let mut y = [[[T::default(); CB]; S]; R];
    for (i, row) in x.iter().enumerate() {
        for (q, v) in row.iter().enumerate() {
            y[q][i] = *v;
        }
    }
    y
}

/// The tiles one call transforms (p0..p1, image-major) and the first output row (image ·
/// H + row) of the output slice it writes.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub p0: usize,
    pub p1: usize,
    pub y_row0: usize,
}

/// An element type for the exact input transform: i32, or f32 when every partial sum is an
/// integer below 2^24 (then f32 arithmetic is exact and a multiply-add is one instruction).
pub trait Lane: Copy + Default + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
    fn from_i32(v: i32) -> Self;
    fn to_f32(self) -> f32;
    /// acc + l·x, fused for f32: exact on codes; on values (per-tap Hadamard scales) one
    /// rounding, as training's `sandwich_lanes_fused`.
    fn madd(acc: Self, l: Self, x: Self) -> Self;
}

impl Lane for i32 {
    #[inline(always)]
    fn from_i32(v: i32) -> i32 {
        v
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn madd(acc: i32, l: i32, x: i32) -> i32 {
        acc + l * x
    }
}

impl Lane for f32 {
    #[inline(always)]
    fn from_i32(v: i32) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn madd(acc: f32, l: f32, x: f32) -> f32 {
        l.mul_add(x, acc)
    }
}

/// Bᵀ's nonzeros as f32 when the f32 transform is exact (`f32_exact`).
pub fn f32_nonzeros(nz_b: &[Vec<(usize, i32)>]) -> Option<Vec<Vec<(usize, f32)>>> {
    f32_exact(nz_b).then(|| {
        nz_b.iter()
            .map(|r| r.iter().map(|&(j, v)| (j, v as f32)).collect())
            .collect()
    })
}

/// Whether V = Bᵀ d B is exact in f32 for any 8-bit d: |partial sums| ≤ (max row L1 of
/// Bᵀ)² · 128 < 2^24.
pub fn f32_exact(nz_b: &[Vec<(usize, i32)>]) -> bool {
    let l1 = nz_b
        .iter()
        .map(|r| r.iter().map(|&(_, v)| v.unsigned_abs() as u64).sum::<u64>())
        .max()
        .unwrap_or(0);
    l1 * l1 * 128 < 1 << 24
}

/// V = Bᵀ d B (exact) of every tile and 16-channel block, requantized per tap with
/// `v_mul[e]` into `rows[e][tile][channel]` (rows `kp` bytes apart).
#[allow(clippy::too_many_arguments)]
pub fn input_stage(
    isa: Isa,
    g: &TileGrid,
    span: Span,
    t: usize,
    xpad: &[i8],
    c: usize,
    nz_b: &[Vec<(usize, i32)>],
    nz_b_f32: Option<&[Vec<(usize, f32)>]>,
    v_mul: &[f32],
    rows: &mut [&mut [i8]],
    kp: usize,
) {
    if let Some(nz) = nz_b_f32 {
        match t {
            4 => input4f_isa(isa, g, span, xpad, c, nz, v_mul, rows, kp),
            6 => input6f_isa(isa, g, span, xpad, c, nz, v_mul, rows, kp),
            8 => input8f_isa(isa, g, span, xpad, c, nz, v_mul, rows, kp),
            _ => panic!("no tile transform for t = {t}"),
        }
    } else {
        match t {
            4 => input4i_isa(isa, g, span, xpad, c, nz_b, v_mul, rows, kp),
            6 => input6i_isa(isa, g, span, xpad, c, nz_b, v_mul, rows, kp),
            8 => input8i_isa(isa, g, span, xpad, c, nz_b, v_mul, rows, kp),
            _ => panic!("no tile transform for t = {t}"),
        }
    }
}

/// How the output stage computes Y = Aᵀ M A and requantizes it.
pub enum OutTransform<'a> {
    /// On the dequantized products (code × s_m[e]) with training's f32 fused multiply-adds,
    /// times `mul` = 1/s_out (per-tap Hadamard scales).
    Values {
        nz_a: &'a [Vec<(usize, f32)>],
        s_m: &'a [f32],
        mul: f32,
    },
    /// On codes (exact integer sums, in f32 when exact), times one multiplier.
    CodesF32 {
        nz: &'a [Vec<(usize, f32)>],
        mul: f32,
    },
    CodesI32 {
        nz: &'a [Vec<(usize, i32)>],
        mul: f32,
    },
}

/// Y = Aᵀ M A per tile and 16-channel block, requantized and written into the cropped
/// N×H×W×K output; `qm[e]` starts at e·qs (qs ≥ tiles·k).
#[allow(clippy::too_many_arguments)]
pub fn output_stage(
    isa: Isa,
    g: &TileGrid,
    span: Span,
    t: usize,
    qm: &[i8],
    qs: usize,
    k: usize,
    how: &OutTransform,
    y: &mut [i8],
) {
    match (t, how) {
        (4, OutTransform::Values { nz_a, s_m, mul }) => {
            output4v_isa(isa, g, span, qm, qs, k, nz_a, s_m, *mul, y)
        }
        (6, OutTransform::Values { nz_a, s_m, mul }) => {
            output6v_isa(isa, g, span, qm, qs, k, nz_a, s_m, *mul, y)
        }
        (8, OutTransform::Values { nz_a, s_m, mul }) => {
            output8v_isa(isa, g, span, qm, qs, k, nz_a, s_m, *mul, y)
        }
        (4, OutTransform::CodesF32 { nz, mul }) => output4f_isa(isa, g, span, qm, qs, k, nz, *mul, y),
        (6, OutTransform::CodesF32 { nz, mul }) => output6f_isa(isa, g, span, qm, qs, k, nz, *mul, y),
        (8, OutTransform::CodesF32 { nz, mul }) => output8f_isa(isa, g, span, qm, qs, k, nz, *mul, y),
        (4, OutTransform::CodesI32 { nz, mul }) => output4i_isa(isa, g, span, qm, qs, k, nz, *mul, y),
        (6, OutTransform::CodesI32 { nz, mul }) => output6i_isa(isa, g, span, qm, qs, k, nz, *mul, y),
        (8, OutTransform::CodesI32 { nz, mul }) => output8i_isa(isa, g, span, qm, qs, k, nz, *mul, y),
        _ => panic!("no tile transform for t = {t}"),
    }
}

// One compiled function per tile size and element type: inlined together into one function,
// LLVM left the loops of some sizes unvectorized.
macro_rules! input_fn {
    ($name:ident / $isa:ident, $t:literal, $l:ty) => {
        winq_quant::multiversion! {
            #[allow(dead_code)] // the layer always names its ISA
            fn $name / $isa(g: &TileGrid, span: Span, xpad: &[i8], c: usize, nz: &[Vec<(usize, $l)>],
                v_mul: &[f32], rows: &mut [&mut [i8]], kp: usize) {
                input_t::<$t, $l>(g, span, xpad, c, nz, v_mul, rows, kp)
            }
        }
    };
}
input_fn!(input4f / input4f_isa, 4, f32);
input_fn!(input6f / input6f_isa, 6, f32);
input_fn!(input8f / input8f_isa, 8, f32);
input_fn!(input4i / input4i_isa, 4, i32);
input_fn!(input6i / input6i_isa, 6, i32);
input_fn!(input8i / input8i_isa, 8, i32);

macro_rules! output_fn {
    ($name:ident / $isa:ident, $t:literal, values) => {
        winq_quant::multiversion! {
            #[allow(dead_code)]
            fn $name / $isa(g: &TileGrid, span: Span, qm: &[i8], qs: usize, k: usize, nz_a: &[Vec<(usize, f32)>],
                s_m: &[f32], mul: f32, y: &mut [i8]) {
                // Training's order and arithmetic: fused multiply-adds of the dequantized products.
                let load = |q: i8, e: usize| q as f32 * s_m[e];
                output_t::<$t, { $t - 2 }, f32>(g, span, qm, qs, k, nz_a, load, <f32 as Lane>::madd, |v| to_code(v * mul), y)
            }
        }
    };
    ($name:ident / $isa:ident, $t:literal, codes $l:ty) => {
        winq_quant::multiversion! {
            #[allow(dead_code)]
            fn $name / $isa(g: &TileGrid, span: Span, qm: &[i8], qs: usize, k: usize, nz: &[Vec<(usize, $l)>],
                mul: f32, y: &mut [i8]) {
                let load = |q: i8, _: usize| <$l as Lane>::from_i32(q as i32);
                output_t::<$t, { $t - 2 }, $l>(g, span, qm, qs, k, nz, load, <$l as Lane>::madd, |v| to_code(v.to_f32() * mul), y)
            }
        }
    };
}
output_fn!(output4v / output4v_isa, 4, values);
output_fn!(output6v / output6v_isa, 6, values);
output_fn!(output8v / output8v_isa, 8, values);
output_fn!(output4f / output4f_isa, 4, codes f32);
output_fn!(output6f / output6f_isa, 6, codes f32);
output_fn!(output8f / output8f_isa, 8, codes f32);
output_fn!(output4i / output4i_isa, 4, codes i32);
output_fn!(output6i / output6i_isa, 6, codes i32);
output_fn!(output8i / output8i_isa, 8, codes i32);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn input_t<const T: usize, L: Lane>(
    g: &TileGrid,
    span: Span,
    xpad: &[i8],
    c: usize,
    nz_b: &[Vec<(usize, L)>],
    v_mul: &[f32],
    rows: &mut [&mut [i8]],
    kp: usize,
) {
    let m = g.m;
    let (hp, wp) = g.padded_in();
    // Zeroed once per call, not per block (a 2 KiB memset each time; every element is
    // overwritten before it is read).
    let mut d = [[[L::default(); CB]; T]; T];
    for p in span.p0..span.p1 {
        let (ni, tile) = (p / g.tiles, p % g.tiles);
        let origin = ((ni * hp + tile / g.tiles_x * m) * wp + tile % g.tiles_x * m) * c;
        for c0 in (0..c).step_by(CB) {
            for (a, row) in d.iter_mut().enumerate() {
                for (b, v) in row.iter_mut().enumerate() {
                    // A fixed-size copy first keeps the conversion one vector operation.
                    let mut src = [0i8; CB];
                    src.copy_from_slice(&xpad[origin + (a * wp + b) * c + c0..][..CB]);
                    for (o, &x) in v.iter_mut().zip(&src) {
                        *o = L::from_i32(x as i32);
                    }
                }
            }
            // tmp[i][q] = Σ_p B[i][p]·d[p][q]; V[i][j] = Σ_q B[j][q]·tmp[i][q].
            let tmp: [[[L; CB]; T]; T] = std::array::from_fn(|i| combine(&nz_b[i], &d, L::madd));
            let mut put = |e: usize, v: &[L; CB]| {
                let mut codes = [0i8; CB];
                for (o, &x) in codes.iter_mut().zip(v) {
                    *o = to_code(x.to_f32() * v_mul[e]);
                }
                rows[e][(p - span.p0) * kp + c0..][..CB].copy_from_slice(&codes);
            };
            if T.is_power_of_two() {
                // For power-of-two T LLVM vectorizes `combine_cols`' nested loops across the
                // wrong axis (gathers: F6 4x slower); a transposed copy and the flat `combine`.
                let tmp_t: [[[L; CB]; T]; T] = transposed(&tmp);
                for (j, row) in nz_b.iter().enumerate() {
                    for (i, v) in combine(row, &tmp_t, L::madd).iter().enumerate() {
                        put(i * T + j, v);
                    }
                }
            } else {
                for (j, row) in nz_b.iter().enumerate() {
                    for (i, v) in combine_cols(row, &tmp, L::madd).iter().enumerate() {
                        put(i * T + j, v);
                    }
                }
            }
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_t<const T: usize, const M: usize, L: Copy + Default>(
    g: &TileGrid,
    span: Span,
    qm: &[i8],
    qs: usize,
    k: usize,
    nz_a: &[Vec<(usize, L)>],
    load: impl Fn(i8, usize) -> L,
    madd: impl Fn(L, L, L) -> L + Copy,
    code: impl Fn(L) -> i8,
    y: &mut [i8],
) {
    debug_assert!(g.m == M && T == M + 2 && nz_a.len() == M);
    let mut mt = [[[L::default(); CB]; T]; T];
    for p in span.p0..span.p1 {
        let (ni, tile) = (p / g.tiles, p % g.tiles);
        let (ty, tx) = (tile / g.tiles_x, tile % g.tiles_x);
        for k0 in (0..k).step_by(CB) {
            for (a, row) in mt.iter_mut().enumerate() {
                for (b, v) in row.iter_mut().enumerate() {
                    let e = a * T + b;
                    let mut src = [0i8; CB];
                    src.copy_from_slice(&qm[e * qs + (p - span.p0) * k + k0..][..CB]);
                    for (o, &q) in v.iter_mut().zip(&src) {
                        *o = load(q, e);
                    }
                }
            }
            // tmp[i][q] = Σ_p A[i][p]·M[p][q] (i < m); Y[i][j] = Σ_q A[j][q]·tmp[i][q].
            let tmp: [[[L; CB]; T]; M] = std::array::from_fn(|i| combine(&nz_a[i], &mt, madd));
            for (j, row) in nz_a.iter().enumerate() {
                let Some(xx) = (tx * M + j).checked_sub(g.before.1).filter(|&v| v < g.w) else {
                    continue;
                };
                for (i, o) in combine_cols(row, &tmp, madd).iter().enumerate() {
                    let Some(yy) = (ty * M + i).checked_sub(g.before.0).filter(|&v| v < g.h) else {
                        continue;
                    };
                    let mut codes = [0i8; CB];
                    for (c, &v) in codes.iter_mut().zip(o) {
                        *c = code(v);
                    }
                    y[((ni * g.h + yy - span.y_row0) * g.w + xx) * k + k0..][..CB].copy_from_slice(&codes);
                }
            }
        }
    }
}
