//! The lane-wise pipeline of the INT8 Winograd layer: any channel count; lanes are (tile,
//! channel) pairs over channel-last zero-padded images.

use super::WinogradI8;
use crate::int8::{gemm_isa, grow, pad_nhwc, requant_isa, to_code, PackedA};
use crate::tile::{sandwich_lanes_fused_isa, sandwich_lanes_i32_isa};
use crate::TileGrid;

impl WinogradI8 {
    /// `forward` on the lane-wise transforms.
    pub(super) fn forward_lanes(&self, x: &[i8], g: &TileGrid, y: &mut [i8]) {
        let s = &self.spec;
        let (c, k, m, t) = (s.c, s.k, s.m, self.t);
        let (n, h, w) = (g.n, g.h, g.w);
        let (p, tt) = (g.p(), t * t);
        let (cp, kp) = (c * p, k * p);
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let Scratch {
                xpad,
                ypad,
                vq,
                d,
                v,
                tmp,
                qm,
                acc,
                vw,
                mt,
                yt,
                tmpf,
            } = &mut *scratch;

            // V = Bᵀ d B exactly in i32, requantized per tap: vq [T][P][C].
            let v_mul = &self.v_mul;
            let vq = grow(vq, tt * cp);
            pad_nhwc(
                x,
                (n, h, w, c),
                g.padded_in(),
                (1 + g.before.0, 1 + g.before.1),
                xpad,
            );
            let (d, v, tmp) = (grow(d, tt * LANES), grow(v, tt * LANES), grow(tmp, tt * LANES));
            for l0 in (0..cp).step_by(LANES) {
                let lanes = LANES.min(cp - l0);
                gather_hwc(g, xpad, c, l0, lanes, d);
                sandwich_lanes_i32_isa(self.isa, &self.qb, t, t, d, lanes, v, lanes, lanes, tmp);
                for e in 0..tt {
                    requant_isa(
                        self.isa,
                        &v[e * lanes..(e + 1) * lanes],
                        v_mul[e],
                        &mut vq[e * cp + l0..e * cp + l0 + lanes],
                    );
                }
            }

            // Per tap: the channel sum as one INT8 GEMM, requantized: qm [T][P][K].
            let qm = grow(qm, tt * kp);
            let acc = grow(acc, kp);
            for e in 0..tt {
                let mul = self.hadamard_mul[e];
                vw.fill(&vq[e * cp..(e + 1) * cp], p, c);
                gemm_isa(self.isa, vw, &self.ut[e], acc, k);
                requant_isa(self.isa, acc, mul, &mut qm[e * kp..(e + 1) * kp]);
            }

            // Y = Aᵀ M A per tile, requantized to s_out: on codes with one Hadamard scale,
            // else on the dequantized values (code × f32 scale) with the same fused f32 kernel
            // and multiplier as the training model's eval forward. Either way both round exactly
            // the same numbers.
            let (a_vals, s_m, out_mul) = (&self.a_vals, &self.s_m_f32, self.out_mul);
            let (hm, wm) = (g.tiles_y * m, g.tiles_x * m);
            let ypad = grow(ypad, n * hm * wm * k);
            let (mt, yt, tmpf) = (
                grow(mt, tt * LANES),
                grow(yt, m * m * LANES),
                grow(tmpf, m * t * LANES),
            );
            // The input stage's i32 buffers (tt·LANES each) serve the integer output transform.
            let (mi, yi, tmpi) = (&mut d[..], &mut v[..m * m * LANES], &mut tmp[..m * t * LANES]);
            for l0 in (0..kp).step_by(LANES) {
                let lanes = LANES.min(kp - l0);
                let src = |e: usize| &qm[e * kp + l0..][..lanes];
                match &self.out_codes {
                    Some(oc) => {
                        for e in 0..tt {
                            let dst = &mut mi[e * lanes..(e + 1) * lanes];
                            dst.iter_mut().zip(src(e)).for_each(|(o, &q)| *o = q as i32);
                        }
                        sandwich_lanes_i32_isa(self.isa, &self.qa, m, t, mi, lanes, yi, lanes, lanes, tmpi);
                        let yt = &mut yt[..m * m * lanes];
                        yt.iter_mut().zip(&yi[..]).for_each(|(o, &v)| *o = v as f32);
                        scatter_hwc(g, yt, |v| to_code(v * oc.mul), l0, lanes, ypad, k);
                    }
                    None => {
                        for e in 0..tt {
                            let dst = &mut mt[e * lanes..(e + 1) * lanes];
                            dst.iter_mut()
                                .zip(src(e))
                                .for_each(|(o, &q)| *o = q as f32 * s_m[e]);
                        }
                        sandwich_lanes_fused_isa(self.isa, a_vals, m, t, mt, lanes, yt, lanes, lanes, tmpf);
                        scatter_hwc(g, yt, |v| to_code(v * out_mul), l0, lanes, ypad, k);
                    }
                }
            }

            // Crop the tiled output back to N×H×W×K.
            let (oy, ox) = g.before;
            for ni in 0..n {
                for i in 0..h {
                    let src = ((ni * hm + i + oy) * wm + ox) * k;
                    y[(ni * h + i) * w * k..][..w * k].copy_from_slice(&ypad[src..src + w * k]);
                }
            }
        })
    }
}

/// Per-thread working buffers, reused across calls (large fresh allocations cost page faults).
#[derive(Default)]
struct Scratch {
    xpad: Vec<i8>,
    ypad: Vec<i8>,
    vq: Vec<i8>,
    d: Vec<i32>,
    v: Vec<i32>,
    tmp: Vec<i32>,
    qm: Vec<i8>,
    acc: Vec<i32>,
    vw: PackedA,
    mt: Vec<f32>,
    yt: Vec<f32>,
    tmpf: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Tiles processed together by the lane-wise transforms.
const LANES: usize = 512;

/// Input windows for lanes l0.. (lane = tile·C + channel) into d [t][t][lanes]: each window
/// element is a contiguous channel run of the channel-last padded images.
fn gather_hwc(g: &TileGrid, xp: &[i8], c: usize, l0: usize, lanes: usize, d: &mut [i32]) {
    let (hp, wp) = g.padded_in();
    let (m, t) = (g.m, g.t);
    let mut l = l0;
    while l < l0 + lanes {
        let (p, c0) = (l / c, l % c);
        let run = (c - c0).min(l0 + lanes - l);
        let (ni, tyi, txi) = g.locate(p);
        let origin = ((ni * hp + tyi * m) * wp + txi * m) * c + c0;
        for a in 0..t {
            for b in 0..t {
                let src = &xp[origin + (a * wp + b) * c..][..run];
                let dst = &mut d[(a * t + b) * lanes + (l - l0)..][..run];
                for (o, &v) in dst.iter_mut().zip(src) {
                    *o = v as i32;
                }
            }
        }
        l += run;
    }
}

/// Requantizes (`code`) lane-wise output tiles (lane = tile·K + channel) into channel-last tiled
/// outputs [N][tiles_y·m][tiles_x·m][K].
fn scatter_hwc(
    g: &TileGrid,
    yt: &[f32],
    code: impl Fn(f32) -> i8,
    l0: usize,
    lanes: usize,
    ypad: &mut [i8],
    k: usize,
) {
    let m = g.m;
    let (hm, wm) = (g.tiles_y * m, g.tiles_x * m);
    let mut l = l0;
    while l < l0 + lanes {
        let (p, k0) = (l / k, l % k);
        let run = (k - k0).min(l0 + lanes - l);
        let (ni, tyi, txi) = g.locate(p);
        let origin = ((ni * hm + tyi * m) * wm + txi * m) * k + k0;
        for a in 0..m {
            for b in 0..m {
                let src = &yt[(a * m + b) * lanes + (l - l0)..][..run];
                let dst = &mut ypad[origin + (a * wm + b) * k..][..run];
                for (o, &v) in dst.iter_mut().zip(src) {
                    *o = code(v);
                }
            }
        }
        l += run;
    }
}
