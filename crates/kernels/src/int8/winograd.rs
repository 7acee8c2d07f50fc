//! INT8 Winograd F(m×m, 3×3) convolution executing the Winograd-aware pipeline in integers:
//! input transform with the quantized Bᵀ (exact in i32), requantization to the Winograd-domain
//! input scale, one INT8 GEMM per tile position (VNNI where available), requantization of the
//! Hadamard sum, output transform with the quantized Aᵀ and requantization to the output scale,
//! all rounding half to even as the training model's fake quantizers do.

use super::{gemm, requant, to_code, PackedW, PackedX};
use crate::tile::{sandwich_lanes, sandwich_lanes_i32};
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

/// A layer ready to run: weights packed per tap, both as the GEMM's left operand (many tiles:
/// M[e] = U[e]·V[e], tiles in vector lanes) and as its right operand (few tiles, e.g. batch 1
/// on 8x8 maps: Mᵀ[e] = V[e]ᵀ·U[e]ᵀ, output channels in vector lanes, no padding waste).
pub struct WinogradI8 {
    spec: WinogradSpec,
    t: usize,
    u: Vec<PackedW>,
    ut: Vec<PackedX>,
}

/// Below this many tiles the transposed product is used.
const FEW_TILES: usize = 32;

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
        // U[e]ᵀ (C×K): column k of U[e] as row-major rows c.
        let ut = (0..t * t)
            .map(|e| PackedX::from_rows(&transpose_i8(&spec.qu[e * k * c..(e + 1) * k * c], k, c), c, k, k))
            .collect();
        WinogradI8 { spec, t, u, ut }
    }

    pub fn spec(&self) -> &WinogradSpec {
        &self.spec
    }

    /// Output codes (scale `s_out`) of an N×C×H×W tensor of input codes (scale `s_in`).
    /// Tiles are processed in lane blocks (tile::sandwich_lanes*), as in training.
    pub fn forward(&self, x: &[i8], n: usize, h: usize, w: usize) -> Vec<i8> {
        let s = &self.spec;
        let (c, k, m, t) = (s.c, s.k, s.m, self.t);
        assert_eq!(x.len(), n * c * h * w, "input must be N×C×H×W");
        let g = Grid::new(n, h, w, m);
        let (p, tt) = (g.p(), t * t);

        let few = p < FEW_TILES;
        // Lanes enumerate (tile, channel) pairs. With many tiles they run channel-major, so V[e]
        // is X = C×P for M[e] = U[e]·V[e]; with few tiles tile-major, so V[e] is Vᵀ = P×C for
        // Mᵀ[e] = Vᵀ[e]·U[e]ᵀ and lanes stay long even for one 8x8 image.
        let decode = |l: usize, ch: usize| if few { (l / ch, l % ch) } else { (l % p, l / p) };

        // V = Bᵀ d B exactly in i32, requantized per tap: vq [T][C·P] in lane order.
        let v_mul: Vec<f32> = (0..tt)
            .map(|e| (s.s_b * s.s_b * s.s_in / per_tap(&s.s_v, e)) as f32)
            .collect();
        let (cp, kp) = (c * p, k * p);
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let Scratch {
                xpad,
                ypad,
                base,
                vq,
                d,
                v,
                tmp,
                qm,
                acc,
                mt,
                yt,
                tmpf,
            } = &mut *scratch;
            let vq = grow(vq, tt * cp);
            // Few tiles: lanes run channel-fastest, so pad channel-last and copy channel runs.
            if few {
                g.pad_input_hwc(x, c, xpad);
            } else {
                g.pad_input(x, c, xpad);
            }
            let base = grow(base, LANES);
            let d = grow(d, tt * LANES);
            let v = grow(v, tt * LANES);
            let tmp = grow(tmp, tt * LANES);
            for l0 in (0..cp).step_by(LANES) {
                let lanes = LANES.min(cp - l0);
                if few {
                    g.gather_hwc(xpad, c, l0, lanes, d);
                } else {
                    g.gather_padded(xpad, c, l0, lanes, |l| decode(l, c), base, d);
                }
                sandwich_lanes_i32(&s.qb, t, t, d, lanes, v, lanes, lanes, tmp);
                for e in 0..tt {
                    requant(
                        &v[e * lanes..(e + 1) * lanes],
                        v_mul[e],
                        &mut vq[e * cp + l0..e * cp + l0 + lanes],
                    );
                }
            }

            // Per tap: the channel sum as one INT8 GEMM, requantized: qm [T][K·P] in lane order.
            let qm = grow(qm, tt * kp);
            let acc = grow(acc, kp);
            for e in 0..tt {
                let mul = (per_tap(&s.s_u, e) * per_tap(&s.s_v, e) / per_tap(&s.s_m, e)) as f32;
                let ve = &vq[e * cp..(e + 1) * cp];
                if few {
                    gemm(&PackedW::new(ve, p, c), &self.ut[e], acc, k);
                } else {
                    gemm(&self.u[e], &PackedX::from_rows(ve, c, p, p), acc, p);
                }
                requant(acc, mul, &mut qm[e * kp..(e + 1) * kp]);
            }

            // Y = Aᵀ M A per tile, cropped, requantized to s_out. Computed on the dequantized values
            // (code × f32 scale) with the same f32 kernel and division as the training model's
            // eval forward, so both round exactly the same numbers.
            let a_vals: Vec<f32> = s.qa.iter().map(|&v| v as f32 * s.s_a as f32).collect();
            let s_m: Vec<f32> = (0..tt).map(|e| per_tap(&s.s_m, e) as f32).collect();
            let s_out = s.s_out as f32;
            let (hm, wm) = (g.tiles_y * m, g.tiles_x * m);
            let ypad = grow(ypad, n * k * hm * wm);
            let mt = grow(mt, tt * LANES);
            let yt = grow(yt, m * m * LANES);
            let tmpf = grow(tmpf, m * t * LANES);
            for l0 in (0..kp).step_by(LANES) {
                let lanes = LANES.min(kp - l0);
                for e in 0..tt {
                    let src = &qm[e * kp + l0..][..lanes];
                    for (dst, &q) in mt[e * lanes..(e + 1) * lanes].iter_mut().zip(src) {
                        *dst = q as f32 * s_m[e];
                    }
                }
                sandwich_lanes(&a_vals, m, t, mt, lanes, yt, lanes, lanes, tmpf);
                if few {
                    g.scatter_hwc(yt, s_out, l0, lanes, ypad, k);
                } else {
                    g.scatter_padded(yt, s_out, l0, lanes, |l| decode(l, k), base, ypad, k);
                }
            }
            // Crop the tiled output back to H×W (and back to NCHW from channel-last).
            let (oy, ox) = g.before;
            let mut y = vec![0i8; n * k * h * w];
            if few {
                for ni in 0..n {
                    for i in 0..h {
                        for j in 0..w {
                            let src = &ypad[((ni * hm + i + oy) * wm + j + ox) * k..][..k];
                            for (ko, &v) in src.iter().enumerate() {
                                y[((ni * k + ko) * h + i) * w + j] = v;
                            }
                        }
                    }
                }
            } else {
                for (dst, src) in y.chunks_mut(h * w).zip(ypad.chunks(hm * wm)) {
                    for i in 0..h {
                        dst[i * w..(i + 1) * w]
                            .copy_from_slice(&src[(i + oy) * wm + ox..(i + oy) * wm + ox + w]);
                    }
                }
            }
            y
        })
    }
}

fn transpose_i8(x: &[i8], r: usize, c: usize) -> Vec<i8> {
    let mut out = vec![0i8; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = x[i * c + j];
        }
    }
    out
}

/// Per-thread working buffers, reused across calls (large fresh allocations cost page faults).
#[derive(Default)]
struct Scratch {
    xpad: Vec<i8>,
    ypad: Vec<i8>,
    base: Vec<usize>,
    vq: Vec<i8>,
    d: Vec<i32>,
    v: Vec<i32>,
    tmp: Vec<i32>,
    qm: Vec<i8>,
    acc: Vec<i32>,
    mt: Vec<f32>,
    yt: Vec<f32>,
    tmpf: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The first n elements of a buffer grown as needed; callers overwrite them before reading.
fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// Tiles processed together by the lane-wise transforms.
const LANES: usize = 256;

/// Tiling of one forward with per-tile index tables (-1: padding or cropped).
struct Grid {
    n: usize,
    h: usize,
    w: usize,
    m: usize,
    t: usize,
    tiles_x: usize,
    tiles: usize,
    /// Extra padding before the data (rows, columns), on top of the kernel's 1.
    before: (usize, usize),
    tiles_y: usize,
}

impl Grid {
    fn new(n: usize, h: usize, w: usize, m: usize) -> Grid {
        let (ty, tx) = (Tiling::new(h, m, 3), Tiling::new(w, m, 3));
        let t = m + 2;
        Grid {
            n,
            h,
            w,
            m,
            t,
            tiles_x: tx.tiles,
            tiles: ty.tiles * tx.tiles,
            before: (ty.before, tx.before),
            tiles_y: ty.tiles,
        }
    }

    /// Padded input plane size: every tile window lies inside, so gathers need no bounds.
    fn padded_in(&self) -> (usize, usize) {
        (self.tiles_y * self.m + 2, self.tiles_x * self.m + 2)
    }

    /// Copies input codes into zero-padded planes (same padding as training's tiling).
    fn pad_input(&self, x: &[i8], c: usize, out: &mut Vec<i8>) {
        let (hp, wp) = self.padded_in();
        let (h, w) = (self.h, self.w);
        out.clear();
        out.resize(self.n * c * hp * wp, 0);
        let (oy, ox) = (1 + self.before.0, 1 + self.before.1);
        for (plane, dst) in x.chunks(h * w).zip(out.chunks_mut(hp * wp)) {
            for i in 0..h {
                dst[(i + oy) * wp + ox..(i + oy) * wp + ox + w].copy_from_slice(&plane[i * w..(i + 1) * w]);
            }
        }
    }

    /// Copies input codes into zero-padded channel-last images [N][Hp][Wp][C].
    fn pad_input_hwc(&self, x: &[i8], c: usize, out: &mut Vec<i8>) {
        let (hp, wp) = self.padded_in();
        let (h, w) = (self.h, self.w);
        out.clear();
        out.resize(self.n * hp * wp * c, 0);
        let (oy, ox) = (1 + self.before.0, 1 + self.before.1);
        for ni in 0..self.n {
            for ci in 0..c {
                let plane = &x[(ni * c + ci) * h * w..][..h * w];
                for i in 0..h {
                    let row = &mut out[((ni * hp + i + oy) * wp + ox) * c..];
                    for (j, &v) in plane[i * w..(i + 1) * w].iter().enumerate() {
                        row[j * c + ci] = v;
                    }
                }
            }
        }
    }

    /// Input windows for lanes l0.. numbered tile-major, channel-fastest (lane = p·C + c),
    /// from channel-last padded images: each window element is a contiguous channel run.
    fn gather_hwc(&self, xp: &[i8], c: usize, l0: usize, lanes: usize, d: &mut [i32]) {
        let (hp, wp) = self.padded_in();
        let (m, t) = (self.m, self.t);
        let mut l = l0;
        while l < l0 + lanes {
            let (p, c0) = (l / c, l % c);
            let run = (c - c0).min(l0 + lanes - l);
            let (ni, tyi, txi) = self.locate(p);
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

    /// Requantizes lane-wise output tiles for lanes numbered tile-major, channel-fastest
    /// (lane = p·K + k) into channel-last tiled outputs [N][tiles_y·m][tiles_x·m][K].
    fn scatter_hwc(&self, yt: &[f32], s_out: f32, l0: usize, lanes: usize, ypad: &mut [i8], k: usize) {
        let m = self.m;
        let wm = self.tiles_x * m;
        let hm = self.tiles_y * m;
        let mut l = l0;
        while l < l0 + lanes {
            let (p, k0) = (l / k, l % k);
            let run = (k - k0).min(l0 + lanes - l);
            let (ni, tyi, txi) = self.locate(p);
            let origin = ((ni * hm + tyi * m) * wm + txi * m) * k + k0;
            for a in 0..m {
                for b in 0..m {
                    let src = &yt[(a * m + b) * lanes + (l - l0)..][..run];
                    let dst = &mut ypad[origin + (a * wm + b) * k..][..run];
                    for (o, &v) in dst.iter_mut().zip(src) {
                        *o = to_code(v / s_out);
                    }
                }
            }
            l += run;
        }
    }

    /// Input windows of lanes l0.. from the padded planes, lane-wise into d [t][t][lanes].
    #[allow(clippy::too_many_arguments)]
    fn gather_padded(
        &self,
        xp: &[i8],
        c: usize,
        l0: usize,
        lanes: usize,
        decode: impl Fn(usize) -> (usize, usize),
        base: &mut [usize],
        d: &mut [i32],
    ) {
        let (hp, wp) = self.padded_in();
        let (m, t) = (self.m, self.t);
        for (lane, b) in base[..lanes].iter_mut().enumerate() {
            let (p, ci) = decode(l0 + lane);
            let (ni, tyi, txi) = self.locate(p);
            *b = (ni * c + ci) * hp * wp + tyi * m * wp + txi * m;
        }
        for a in 0..t {
            for bcol in 0..t {
                let off = a * wp + bcol;
                let row = &mut d[(a * t + bcol) * lanes..(a * t + bcol + 1) * lanes];
                for (o, &b) in row.iter_mut().zip(&base[..lanes]) {
                    *o = xp[b + off] as i32;
                }
            }
        }
    }

    fn p(&self) -> usize {
        self.n * self.tiles
    }

    fn locate(&self, p: usize) -> (usize, usize, usize) {
        let (ni, tile) = (p / self.tiles, p % self.tiles);
        (ni, tile / self.tiles_x, tile % self.tiles_x)
    }

    /// Requantizes lane-wise output tiles (lanes are (column, output channel) pairs given by
    /// `decode`) into the tiled output planes [N][K][tiles_y·m][tiles_x·m].
    #[allow(clippy::too_many_arguments)]
    fn scatter_padded(
        &self,
        yt: &[f32],
        s_out: f32,
        l0: usize,
        lanes: usize,
        decode: impl Fn(usize) -> (usize, usize),
        base: &mut [usize],
        ypad: &mut [i8],
        k: usize,
    ) {
        let m = self.m;
        let (hm, wm) = (self.tiles_y * m, self.tiles_x * m);
        for (lane, b) in base[..lanes].iter_mut().enumerate() {
            let (p, ko) = decode(l0 + lane);
            let (ni, tyi, txi) = self.locate(p);
            *b = (ni * k + ko) * hm * wm + tyi * m * wm + txi * m;
        }
        for a in 0..m {
            for bc in 0..m {
                let off = a * wm + bc;
                let row = &yt[(a * m + bc) * lanes..(a * m + bc + 1) * lanes];
                for (&v, &b) in row.iter().zip(&base[..lanes]) {
                    ypad[b + off] = to_code(v / s_out);
                }
            }
        }
    }
}
