//! The stages of a Winograd F(m×m, 3×3) convolution on an N×C×H×W batch, tiles as vector
//! lanes: input transform V = Bᵀ d B, the per-tap channel sums M = U·V (one GEMM per tap), the
//! output transform Y = Aᵀ M A. Layouts, with T = t² taps and P = N·tiles columns: U [T][K][C],
//! V [C][T][P], M [T][K][P]. The `_codes` variants compute on 8-bit codes held in f32/i32 and
//! give exact integer sums (what the integer engine computes). Training's Winograd-aware layer
//! is built from these, and the engine runs FP32 Winograd layers with [`forward_f32`], so both
//! compute the same numbers.

use super::NchwTiles;
use crate::gemm::{code_gemm, sgemm_view, View};
use crate::tile::{sandwich_lanes, sandwich_lanes_fused, sandwich_lanes_i32};
use rayon::prelude::*;

/// [A][B][inner] -> [B][A][inner].
pub fn swap_outer(x: &[f32], a: usize, b: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(a * inner).enumerate().for_each(|(bi, o)| {
        for ai in 0..a {
            o[ai * inner..(ai + 1) * inner].copy_from_slice(&x[(ai * b + bi) * inner..][..inner]);
        }
    });
    out
}

/// Tiles transformed together: enough to vectorize, small enough to stay in cache.
pub const LANES: usize = 256;

/// Blocks of `LANES` columns out of `total`.
pub fn blocks(total: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..total)
        .step_by(LANES)
        .map(move |p0| (p0, LANES.min(total - p0)))
}

/// Runs `f(j0, lanes, block)` on lane blocks of a [rows][total] output in parallel, each block
/// computed into its own [rows][lanes] buffer, then copies the blocks into `out`. Returns the
/// per-block accumulators `f` produced, summed.
pub fn lane_blocks_par(
    total: usize,
    rows: usize,
    out: &mut [f32],
    acc_len: usize,
    f: impl Fn(usize, usize, &mut [f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let starts: Vec<(usize, usize)> = blocks(total).collect();
    let results: Vec<(Vec<f32>, Vec<f32>)> = starts
        .par_iter()
        .map(|&(j0, lanes)| {
            let mut blk = vec![0.0f32; rows * lanes];
            let mut acc = vec![0.0f32; acc_len];
            f(j0, lanes, &mut blk, &mut acc);
            (blk, acc)
        })
        .collect();
    let mut total_acc = vec![0.0f32; acc_len];
    for (&(j0, lanes), (blk, acc)) in starts.iter().zip(&results) {
        for r in 0..rows {
            out[r * total + j0..][..lanes].copy_from_slice(&blk[r * lanes..][..lanes]);
        }
        total_acc.iter_mut().zip(acc).for_each(|(a, b)| *a += b);
    }
    total_acc
}

/// V[c][e][p] = (Bᵀ d B)[e] for column p = n·tiles + tile, in f32.
pub fn input_stage_f32(geo: &NchwTiles, x: &[f32], bt: &[f32]) -> Vec<f32> {
    let (c, t, tt, p) = (geo.c, geo.m + 2, geo.tt(), geo.p());
    let mut v = vec![0.0f32; c * tt * p];
    v.par_chunks_mut(tt * p).enumerate().for_each_init(
        || (vec![0.0f32; tt * LANES], vec![0.0f32; tt * LANES]),
        |(d, tmp), (ci, vc)| {
            for (p0, lanes) in blocks(p) {
                geo.gather_in(x, c, ci, p0, lanes, d);
                sandwich_lanes(bt, t, t, d, lanes, &mut vc[p0..], p, lanes, tmp);
            }
        },
    );
    v
}

/// The same on codes: x holds the input's 8-bit codes (as f32), bc Bᵀ's codes; V = Bᵀ d B is
/// computed exactly in i32 and returned as f32 (exact: |V| < 2^24).
pub fn input_stage_codes(geo: &NchwTiles, xc: &[f32], bc: &[i32]) -> Vec<f32> {
    let (c, t, tt, p) = (geo.c, geo.m + 2, geo.tt(), geo.p());
    let mut v = vec![0.0f32; c * tt * p];
    v.par_chunks_mut(tt * p).enumerate().for_each_init(
        || (vec![0.0f32; tt * LANES], vec![0i32; 3 * tt * LANES]),
        |(d, ints), (ci, vc)| {
            let (di, rest) = ints.split_at_mut(tt * LANES);
            let (vi, tmp) = rest.split_at_mut(tt * LANES);
            for (p0, lanes) in blocks(p) {
                geo.gather_in(xc, c, ci, p0, lanes, d);
                di.iter_mut().zip(d.iter()).for_each(|(o, &x)| *o = x as i32);
                sandwich_lanes_i32(bc, t, t, di, lanes, vi, lanes, lanes, tmp);
                for e in 0..tt {
                    let dst = &mut vc[e * p + p0..e * p + p0 + lanes];
                    dst.iter_mut()
                        .zip(&vi[e * lanes..])
                        .for_each(|(o, &x)| *o = x as f32);
                }
            }
        },
    );
    v
}

/// M[e] = U[e] (K×C) · V[e] (C×P), one GEMM per tile position: [T][K][P]. `codes`: U and V
/// hold 8-bit codes and the sums are exact integers (`code_gemm`).
pub fn hadamard_stage(geo: &NchwTiles, u: &[f32], v: &[f32], codes: bool) -> Vec<f32> {
    let (c, k, tt, p) = (geo.c, geo.k, geo.tt(), geo.p());
    let mut mh = vec![0.0f32; tt * k * p];
    mh.par_chunks_mut(k * p).enumerate().for_each(|(e, me)| {
        let a = View {
            data: &u[e * k * c..],
            rs: c,
            cs: 1,
        };
        let b = View {
            data: &v[e * p..],
            rs: tt * p,
            cs: 1,
        };
        if codes {
            code_gemm(k, p, c, a, b, me, p);
        } else {
            sgemm_view(k, p, c, a, b, me, p, false, 1);
        }
    });
    mh
}

/// Y = Aᵀ M A per tile, cropped to N×K×H×W (returned NCHW) (computed per output channel as [K][N][H][W]):
/// `tile(scratch, ko, p0, lanes, yt)` fills yt [m·m][lanes] for output channel ko, tiles p0...
pub fn output_tiles<S>(
    geo: &NchwTiles,
    scratch: impl Fn() -> S + Sync + Send,
    tile: impl Fn(&mut S, usize, usize, usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let (k, m, p) = (geo.k, geo.m, geo.p());
    let (n, h, w) = (geo.n, geo.h, geo.w);
    let mut yk = vec![0.0f32; k * n * h * w];
    yk.par_chunks_mut(n * h * w).enumerate().for_each_init(
        || (vec![0.0f32; m * m * LANES], scratch()),
        |(yt, s), (ko, planes)| {
            for (p0, lanes) in blocks(p) {
                tile(s, ko, p0, lanes, yt);
                geo.scatter_out(yt, p0, lanes, planes);
            }
        },
    );
    swap_outer(&yk, k, n, h * w)
}

/// The output stage on dequantized values M [T][K][P] and Aᵀ.
pub fn output_stage(geo: &NchwTiles, mh: &[f32], at: &[f32]) -> Vec<f32> {
    output_stage_with(geo, mh, at, sandwich_lanes)
}

/// `output_stage` with fused multiply-adds (`sandwich_lanes_fused`): the eval output transform
/// of INT8 layers with one Hadamard scale per tap, on the dequantized M, as the engine runs it.
pub fn output_stage_fused(geo: &NchwTiles, mh: &[f32], at: &[f32]) -> Vec<f32> {
    output_stage_with(geo, mh, at, sandwich_lanes_fused)
}

type Sandwich = fn(&[f32], usize, usize, &[f32], usize, &mut [f32], usize, usize, &mut [f32]);

fn output_stage_with(geo: &NchwTiles, mh: &[f32], at: &[f32], sandwich: Sandwich) -> Vec<f32> {
    let (k, m, p, t) = (geo.k, geo.m, geo.p(), geo.m + 2);
    output_tiles(
        geo,
        || vec![0.0f32; m * t * LANES],
        |tmp, ko, p0, lanes, yt| sandwich(at, m, t, &mh[ko * p + p0..], k * p, yt, lanes, lanes, tmp),
    )
}

/// The same on 8-bit codes of M (f32 holding integers, [T][K][P]) and of Aᵀ: exact integer
/// sums (|S| ≤ (row L1 of Aᵀ)²·128 < 2^31), returned as f32.
pub fn output_stage_codes(geo: &NchwTiles, mh: &[f32], ac: &[i32]) -> Vec<f32> {
    let (k, m, p, t) = (geo.k, geo.m, geo.p(), geo.m + 2);
    let tt = t * t;
    output_tiles(
        geo,
        || {
            (
                vec![0i32; tt * LANES],
                vec![0i32; m * m * LANES],
                vec![0i32; m * t * LANES],
            )
        },
        |(mi, yi, tmp), ko, p0, lanes, yt| {
            for e in 0..tt {
                let src = &mh[(e * k + ko) * p + p0..][..lanes];
                mi[e * lanes..(e + 1) * lanes]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(o, &v)| *o = v as i32);
            }
            sandwich_lanes_i32(ac, m, t, mi, lanes, yi, lanes, lanes, tmp);
            yt.iter_mut()
                .zip(&yi[..m * m * lanes])
                .for_each(|(o, &v)| *o = v as f32);
        },
    )
}

/// The forward of an FP32 Winograd layer from its pre-transformed weights U [T][K][C], Aᵀ
/// and Bᵀ on an N×C×H×W input (returns N×K×H×W): the stages training's FP32 forward runs, so
/// the same numbers.
#[allow(clippy::too_many_arguments)]
pub fn forward_f32(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    u: &[f32],
    at: &[f32],
    bt: &[f32],
    k: usize,
    m: usize,
) -> Vec<f32> {
    let t = m + 2;
    assert!(
        x.len() == n * c * h * w && u.len() == t * t * k * c && at.len() == m * t && bt.len() == t * t,
        "FP32 Winograd: x, U, Aᵀ or Bᵀ has the wrong size"
    );
    let geo = NchwTiles::new(n, c, h, w, k, m);
    let v = input_stage_f32(&geo, x, bt);
    output_stage(&geo, &hadamard_stage(&geo, u, &v, false), at)
}
