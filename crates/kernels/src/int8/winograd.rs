//! INT8 Winograd F(m×m, 3×3) convolution executing the Winograd-aware pipeline in integers:
//! input transform with the quantized Bᵀ (exact in i32), requantization to the Winograd-domain
//! input scale, one INT8 GEMM per tile position (VNNI where available), requantization of the
//! Hadamard sum, output transform with the quantized Aᵀ and requantization to the output scale,
//! all rounding half to even as the training model's fake quantizers do.

use super::{gemm, PackedW, PackedX};
use crate::Tiling;

/// Integer codes and scales of one layer (from a trained model's export).
#[derive(Debug, Clone)]
pub struct WinogradSpec {
    pub c: usize,
    pub k: usize,
    pub m: usize,
    /// Codes of Aᵀ (m×t) and Bᵀ (t×t) and their scales.
    pub qa: Vec<i32>,
    pub qb: Vec<i32>,
    pub s_a: f64,
    pub s_b: f64,
    /// Codes of G g Gᵀ, [T][K][C], and their scales (one per tap, or one for all).
    pub qu: Vec<i8>,
    pub s_u: Vec<f64>,
    pub s_in: f64,
    pub s_v: Vec<f64>,
    pub s_m: Vec<f64>,
    pub s_out: f64,
}

/// A layer ready to run: weights packed per tap.
pub struct WinogradI8 {
    spec: WinogradSpec,
    t: usize,
    u: Vec<PackedW>,
}

/// round-half-even(v) clamped to the signed 8-bit range.
#[inline]
fn requant(v: f64) -> i8 {
    v.round_ties_even().clamp(-128.0, 127.0) as i8
}

fn per_tap(v: &[f64], e: usize) -> f64 {
    if v.len() == 1 {
        v[0]
    } else {
        v[e]
    }
}

impl WinogradI8 {
    pub fn new(spec: WinogradSpec) -> WinogradI8 {
        let t = spec.m + 2;
        let (k, c) = (spec.k, spec.c);
        assert_eq!(spec.qa.len(), spec.m * t, "Aᵀ must be m×t");
        assert_eq!(spec.qb.len(), t * t, "Bᵀ must be t×t");
        assert_eq!(spec.qu.len(), t * t * k * c, "U must be [T][K][C]");
        let u = (0..t * t)
            .map(|e| PackedW::new(&spec.qu[e * k * c..(e + 1) * k * c], k, c))
            .collect();
        WinogradI8 { spec, t, u }
    }

    pub fn spec(&self) -> &WinogradSpec {
        &self.spec
    }

    /// Output codes (scale `s_out`) of an N×C×H×W tensor of input codes (scale `s_in`).
    pub fn forward(&self, x: &[i8], n: usize, h: usize, w: usize) -> Vec<i8> {
        let s = &self.spec;
        let (c, k, m, t) = (s.c, s.k, s.m, self.t);
        assert_eq!(x.len(), n * c * h * w, "input must be N×C×H×W");
        let (ty, tx) = (Tiling::new(h, m, 3), Tiling::new(w, m, 3));
        let tiles = ty.tiles * tx.tiles;
        let p = n * tiles;
        let tt = t * t;

        // V = Bᵀ d B in i32, requantized per tap, written straight into the GEMM's packed X.
        let mut xs: Vec<PackedX> = (0..tt).map(|_| PackedX::zeros(c, p)).collect();
        let v_mul: Vec<f64> = (0..tt)
            .map(|e| s.s_b * s.s_b * s.s_in / per_tap(&s.s_v, e))
            .collect();
        let mut d = vec![0i32; tt];
        let mut tmp = vec![0i32; tt];
        for ni in 0..n {
            for ci in 0..c {
                let plane = &x[(ni * c + ci) * h * w..][..h * w];
                for tile in 0..tiles {
                    let (tyi, txi) = (tile / tx.tiles, tile % tx.tiles);
                    for a in 0..t {
                        let row = ty.source(h, tyi, a);
                        for b in 0..t {
                            d[a * t + b] = match (row, tx.source(w, txi, b)) {
                                (Some(i), Some(j)) => plane[i * w + j] as i32,
                                _ => 0,
                            };
                        }
                    }
                    // tmp = Bᵀ d ; v = tmp B
                    for i in 0..t {
                        for j in 0..t {
                            tmp[i * t + j] = (0..t).map(|q| s.qb[i * t + q] * d[q * t + j]).sum();
                        }
                    }
                    let col = ni * tiles + tile;
                    for i in 0..t {
                        for j in 0..t {
                            let v: i32 = (0..t).map(|q| tmp[i * t + q] * s.qb[j * t + q]).sum();
                            let e = i * t + j;
                            xs[e].set(ci, col, requant(v as f64 * v_mul[e]));
                        }
                    }
                }
            }
        }

        // Per tap: M[e] = U[e] (K×C) · V[e] (C×P) in i32, requantized.
        let mut qm = vec![0i8; tt * k * p];
        let mut acc = vec![0i32; k * p];
        for e in 0..tt {
            gemm(&self.u[e], &xs[e], &mut acc, p);
            let mul = per_tap(&s.s_u, e) * per_tap(&s.s_v, e) / per_tap(&s.s_m, e);
            for (q, &a) in qm[e * k * p..(e + 1) * k * p].iter_mut().zip(&acc) {
                *q = requant(a as f64 * mul);
            }
        }

        // Y = Aᵀ M A per tile with each tap's scale, cropped, requantized to s_out.
        let mut y = vec![0i8; n * k * h * w];
        let mut mt = vec![0f64; tt];
        let mut tmp = vec![0f64; m * t];
        let out_mul = s.s_a * s.s_a / s.s_out;
        for ni in 0..n {
            for ko in 0..k {
                let plane = &mut y[(ni * k + ko) * h * w..][..h * w];
                for tile in 0..tiles {
                    let col = ni * tiles + tile;
                    for e in 0..tt {
                        mt[e] = qm[(e * k + ko) * p + col] as f64 * per_tap(&s.s_m, e);
                    }
                    for i in 0..m {
                        for j in 0..t {
                            tmp[i * t + j] = (0..t).map(|q| s.qa[i * t + q] as f64 * mt[q * t + j]).sum();
                        }
                    }
                    let (tyi, txi) = (tile / tx.tiles, tile % tx.tiles);
                    for a in 0..m {
                        let Some(i) = ty.target(h, tyi, a) else { continue };
                        for b in 0..m {
                            let Some(j) = tx.target(w, txi, b) else { continue };
                            let v: f64 = (0..t).map(|q| tmp[a * t + q] * s.qa[b * t + q] as f64).sum();
                            plane[i * w + j] = requant(v * out_mul);
                        }
                    }
                }
            }
        }
        y
    }
}
