//! Small-matrix transforms applied to many Winograd tiles at once.
//!
//! Tiles are stored lane-wise: element (i, j) of every tile in a block is one contiguous row
//! of `lanes` values, so each transform step is an axpy over a row and vectorizes across
//! tiles. Rows of an operand are `rs` values apart, which lets the same kernels read and
//! write the strided Winograd-domain layouts directly.

use winq_quant::multiversion;

/// out = L·X·Lᵀ for every lane, for any element type (f32 in training, i32 codes in the
/// engine). Inlined into each ISA's wrapper below so it vectorizes per instruction set.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sandwich_body<T>(
    l: &[T],
    a: usize,
    b: usize,
    x: &[T],
    x_rs: usize,
    out: &mut [T],
    out_rs: usize,
    lanes: usize,
    tmp: &mut [T],
    madd: impl Fn(T, T, T) -> T,
) where
    T: Copy + Default + PartialEq,
{
    let zero = T::default();
    // tmp[i][q] = Σ_p L[i][p] X[p][q]
    for i in 0..a {
        for q in 0..b {
            let t = &mut tmp[(i * b + q) * lanes..][..lanes];
            t.fill(zero);
            for p in 0..b {
                let lv = l[i * b + p];
                if lv != zero {
                    let xr = &x[(p * b + q) * x_rs..][..lanes];
                    for (o, &v) in t.iter_mut().zip(xr) {
                        *o = madd(*o, lv, v);
                    }
                }
            }
        }
    }
    // out[i][j] = Σ_q L[j][q] tmp[i][q]
    for i in 0..a {
        for j in 0..a {
            let o = &mut out[(i * a + j) * out_rs..][..lanes];
            o.fill(zero);
            for q in 0..b {
                let lv = l[j * b + q];
                if lv != zero {
                    let tr = &tmp[(i * b + q) * lanes..][..lanes];
                    for (o, &v) in o.iter_mut().zip(tr) {
                        *o = madd(*o, lv, v);
                    }
                }
            }
        }
    }
}

multiversion! {
    /// out = L·X·Lᵀ for every lane: L is a×b, X is b×b (row (p, q) at x[(p·b + q)·x_rs..]),
    /// out is a×a (row (i, j) at out[(i·a + j)·out_rs..]). Zeros of L are skipped.
    /// `tmp` holds a·b·lanes values.
    pub fn sandwich_lanes / sandwich_lanes_isa(
        l: &[f32],
        a: usize,
        b: usize,
        x: &[f32],
        x_rs: usize,
        out: &mut [f32],
        out_rs: usize,
        lanes: usize,
        tmp: &mut [f32],
    ) {
        sandwich_body(l, a, b, x, x_rs, out, out_rs, lanes, tmp, |o, l, v| o + l * v)
    }
}

multiversion! {
    /// `sandwich_lanes` with fused multiply-adds (one rounding per term): the output transform
    /// of per-tap INT8 layers in eval, which the engine reproduces on every instruction set
    /// (a fused multiply-add is exactly specified; a vector kernel with separate multiplies
    /// and adds costs twice the instructions).
    pub fn sandwich_lanes_fused / sandwich_lanes_fused_isa(
        l: &[f32],
        a: usize,
        b: usize,
        x: &[f32],
        x_rs: usize,
        out: &mut [f32],
        out_rs: usize,
        lanes: usize,
        tmp: &mut [f32],
    ) {
        sandwich_body(l, a, b, x, x_rs, out, out_rs, lanes, tmp, |o, l, v| l.mul_add(v, o))
    }
}

multiversion! {
    /// `sandwich_lanes` in exact integer arithmetic (the INT8 engine's input transform).
    pub fn sandwich_lanes_i32 / sandwich_lanes_i32_isa(
        l: &[i32],
        a: usize,
        b: usize,
        x: &[i32],
        x_rs: usize,
        out: &mut [i32],
        out_rs: usize,
        lanes: usize,
        tmp: &mut [i32],
    ) {
        sandwich_body(l, a, b, x, x_rs, out, out_rs, lanes, tmp, |o, l, v| o + l * v)
    }
}

multiversion! {
    /// dL (a×b) += Σ_lanes dOutᵀ·(L·X) + dOut·(L·Xᵀ): the gradient of out = L·X·Lᵀ with
    /// respect to L, summed over lanes. X rows as in `sandwich_lanes`; dOut (a×a) rows
    /// `d_rs` apart. `tmp` holds a·b·lanes values.
    pub fn sandwich_grad_lanes / sandwich_grad_lanes_isa(
        l: &[f32],
        a: usize,
        b: usize,
        x: &[f32],
        x_rs: usize,
        dout: &[f32],
        d_rs: usize,
        lanes: usize,
        dl: &mut [f32],
        tmp: &mut [f32],
    ) {
        for transposed in [false, true] {
            // tmp[i][j] = Σ_q L[i][q] X[q][j]   (or X[j][q] when transposed)
            for i in 0..a {
                for j in 0..b {
                    let t = &mut tmp[(i * b + j) * lanes..][..lanes];
                    t.fill(0.0);
                    for q in 0..b {
                        let lv = l[i * b + q];
                        if lv != 0.0 {
                            let row = if transposed { j * b + q } else { q * b + j };
                            let xr = &x[row * x_rs..][..lanes];
                            for (o, v) in t.iter_mut().zip(xr) {
                                *o += lv * v;
                            }
                        }
                    }
                }
            }
            // dL[p][j] += Σ_i <dOut[i][p], tmp[i][j]>   (or dOut[p][i] when transposed)
            for p in 0..a {
                for j in 0..b {
                    let mut acc = [0.0f32; 16];
                    for i in 0..a {
                        let row = if transposed { p * a + i } else { i * a + p };
                        let dr = &dout[row * d_rs..][..lanes];
                        let tr = &tmp[(i * b + j) * lanes..][..lanes];
                        let mut dc = dr.chunks_exact(16);
                        let mut tc = tr.chunks_exact(16);
                        for (d16, t16) in (&mut dc).zip(&mut tc) {
                            for k in 0..16 {
                                acc[k] += d16[k] * t16[k];
                            }
                        }
                        for (d, t) in dc.remainder().iter().zip(tc.remainder()) {
                            acc[0] += d * t;
                        }
                    }
                    dl[p * b + j] += acc.iter().sum::<f32>();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use winq_quant::simd;

    fn rnd(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// Plain per-tile L·X·Lᵀ in f64.
    fn naive(l: &[f32], a: usize, b: usize, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; a * a];
        for i in 0..a {
            for j in 0..a {
                for p in 0..b {
                    for q in 0..b {
                        out[i * a + j] += l[i * b + p] as f64 * x[p * b + q] * l[j * b + q] as f64;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn lanes_match_per_tile_sandwich_on_every_isa() {
        let mut seed = 3;
        for (a, b, lanes) in [(6, 6, 37), (4, 6, 1), (8, 3, 64), (2, 4, 17), (3, 8, 5)] {
            let mut l: Vec<f32> = (0..a * b).map(|_| rnd(&mut seed)).collect();
            l[1] = 0.0; // exercise the zero skip
            let x_rs = lanes + 3;
            let x: Vec<f32> = (0..b * b * x_rs).map(|_| rnd(&mut seed)).collect();
            for isa in simd::available().iter().copied() {
                let out_rs = lanes + 1;
                let mut out = vec![f32::NAN; a * a * out_rs];
                let mut tmp = vec![0.0; a * b * lanes];
                sandwich_lanes_isa(isa, &l, a, b, &x, x_rs, &mut out, out_rs, lanes, &mut tmp);
                for lane in 0..lanes {
                    let xt: Vec<f64> = (0..b * b).map(|r| x[r * x_rs + lane] as f64).collect();
                    let want = naive(&l, a, b, &xt);
                    for (r, w) in want.iter().enumerate() {
                        let got = out[r * out_rs + lane] as f64;
                        assert!(
                            (got - w).abs() < 1e-5,
                            "{isa:?} a{a} b{b} lane {lane}: {got} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn integer_lanes_match_f64_on_every_isa() {
        let (a, b, lanes) = (6, 6, 21);
        let l: Vec<i32> = (0..a * b).map(|i| (i as i32 * 37 % 255) - 127).collect();
        let x: Vec<i32> = (0..b * b * lanes).map(|i| (i as i32 * 91 % 256) - 128).collect();
        for isa in simd::available().iter().copied() {
            let mut out = vec![0i32; a * a * lanes];
            let mut tmp = vec![0i32; a * b * lanes];
            sandwich_lanes_i32_isa(isa, &l, a, b, &x, lanes, &mut out, lanes, lanes, &mut tmp);
            let lf: Vec<f32> = l.iter().map(|&v| v as f32).collect();
            for lane in 0..lanes {
                let xt: Vec<f64> = (0..b * b).map(|r| x[r * lanes + lane] as f64).collect();
                for (r, w) in naive(&lf, a, b, &xt).iter().enumerate() {
                    assert_eq!(out[r * lanes + lane] as f64, *w, "{isa:?}");
                }
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences_of_the_sandwich() {
        let mut seed = 5;
        let (a, b, lanes) = (4, 6, 19);
        let l: Vec<f32> = (0..a * b).map(|_| rnd(&mut seed)).collect();
        let x: Vec<f32> = (0..b * b * lanes).map(|_| rnd(&mut seed)).collect();
        let d: Vec<f32> = (0..a * a * lanes).map(|_| rnd(&mut seed)).collect();
        // loss = Σ_lanes <dOut, L X Lᵀ>, in f64.
        let loss = |l: &[f32]| -> f64 {
            (0..lanes)
                .map(|lane| {
                    let xt: Vec<f64> = (0..b * b).map(|r| x[r * lanes + lane] as f64).collect();
                    naive(l, a, b, &xt)
                        .iter()
                        .enumerate()
                        .map(|(r, v)| v * d[r * lanes + lane] as f64)
                        .sum::<f64>()
                })
                .sum()
        };
        for isa in simd::available().iter().copied() {
            let mut dl = vec![0.0f32; a * b];
            let mut tmp = vec![0.0; a * b * lanes];
            sandwich_grad_lanes_isa(isa, &l, a, b, &x, lanes, &d, lanes, lanes, &mut dl, &mut tmp);
            for idx in 0..a * b {
                let (mut lp, mut lm) = (l.clone(), l.clone());
                lp[idx] += 1e-2;
                lm[idx] -= 1e-2;
                let num = (loss(&lp) - loss(&lm)) / 2e-2;
                assert!(
                    (dl[idx] as f64 - num).abs() < 1e-3 * (1.0 + num.abs()),
                    "{isa:?} dL[{idx}] {} vs {num}",
                    dl[idx]
                );
            }
        }
    }
}
