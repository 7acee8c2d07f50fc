//! The Winograd-aware convolution: a 3x3, stride-1, pad-1 convolution computed as
//! Y = Aᵀ[Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)]A with fake quantization at the six stages of the
//! reference (input, weights, G g Gᵀ, Bᵀ d B, Hadamard sum, output) and, in flex mode,
//! learnable transforms quantized on every forward.
//!
//! Fused forward and backward: the channel sum is one GEMM per tile position
//! ([K×C]·[C×(N·tiles)]), so no N·K·C·tiles tensor is ever built. Layouts:
//! U = G g Gᵀ as [K][C][T], V = Bᵀ d B as [C][T][P], M (Hadamard sum) as [T][K][P], with
//! T = t² tile positions and P = N·tiles columns. Quantizers pass gradients straight through.

use crate::layer::{path, Buffer, BufferVisitor, Layer, Mode, Param, ParamVisitor};
use crate::quant::{self, Precision};
use crate::tensor::Tensor;
use rayon::prelude::*;
use winq_kernels::gemm::{sgemm_view, View};
use winq_kernels::Tiling;
use winq_quant::Quantizer;
use winq_transforms::{transform, PointSet, TransformError};

/// out (a×a) = L·X·Lᵀ for L (a×b) and X (b×b); zeros of L are skipped (static transforms are
/// sparse). `tmp` holds a×b.
fn sandwich(l: &[f32], a: usize, b: usize, x: &[f32], out: &mut [f32], tmp: &mut [f32]) {
    // tmp = L·X
    tmp[..a * b].fill(0.0);
    for i in 0..a {
        for q in 0..b {
            let lv = l[i * b + q];
            if lv != 0.0 {
                for j in 0..b {
                    tmp[i * b + j] += lv * x[q * b + j];
                }
            }
        }
    }
    // out = tmp·Lᵀ
    for i in 0..a {
        for j in 0..a {
            let mut s = 0.0;
            for q in 0..b {
                s += tmp[i * b + q] * l[j * b + q];
            }
            out[i * a + j] = s;
        }
    }
}

/// out (b×b) = Lᵀ·X·L for L (a×b) and X (a×a): the adjoint of `sandwich` in X.
fn sandwich_t(l: &[f32], a: usize, b: usize, x: &[f32], out: &mut [f32], tmp: &mut [f32]) {
    // tmp (b×a) = Lᵀ·X
    tmp[..a * b].fill(0.0);
    for q in 0..a {
        for i in 0..b {
            let lv = l[q * b + i];
            if lv != 0.0 {
                for j in 0..a {
                    tmp[i * a + j] += lv * x[q * a + j];
                }
            }
        }
    }
    // out = tmp·L
    out[..b * b].fill(0.0);
    for i in 0..b {
        for q in 0..a {
            let tv = tmp[i * a + q];
            if tv != 0.0 {
                for j in 0..b {
                    out[i * b + j] += tv * l[q * b + j];
                }
            }
        }
    }
}

/// dL (a×b) += dOut·L·Xᵀ + dOutᵀ·L·X: the gradient of out = L·X·Lᵀ with respect to L.
fn sandwich_grad_l(l: &[f32], a: usize, b: usize, x: &[f32], dout: &[f32], dl: &mut [f32], tmp: &mut [f32]) {
    // tmp (a×b) = L·X, then dL += dOutᵀ·tmp
    tmp[..a * b].fill(0.0);
    for i in 0..a {
        for q in 0..b {
            let lv = l[i * b + q];
            if lv != 0.0 {
                for j in 0..b {
                    tmp[i * b + j] += lv * x[q * b + j];
                }
            }
        }
    }
    for p in 0..a {
        for i in 0..a {
            let d = dout[i * a + p];
            if d != 0.0 {
                for j in 0..b {
                    dl[p * b + j] += d * tmp[i * b + j];
                }
            }
        }
    }
    // tmp (a×b) = L·Xᵀ, then dL += dOut·tmp
    tmp[..a * b].fill(0.0);
    for i in 0..a {
        for q in 0..b {
            let lv = l[i * b + q];
            if lv != 0.0 {
                for j in 0..b {
                    tmp[i * b + j] += lv * x[j * b + q];
                }
            }
        }
    }
    for p in 0..a {
        for i in 0..a {
            let d = dout[p * a + i];
            if d != 0.0 {
                for j in 0..b {
                    dl[p * b + j] += d * tmp[i * b + j];
                }
            }
        }
    }
}

fn add_into(acc: &mut [f32], v: &[f32]) {
    acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
}

/// Geometry of one forward.
#[derive(Debug, Clone, Copy)]
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    m: usize,
    t: usize,
    ty: Tiling,
    tx: Tiling,
}

impl Geo {
    fn tiles(&self) -> usize {
        self.ty.tiles * self.tx.tiles
    }
    fn p(&self) -> usize {
        self.n * self.tiles()
    }
    fn tt(&self) -> usize {
        self.t * self.t
    }
    /// Gathers the t×t input window of `tile` from one channel plane (zeros in padding).
    fn gather(&self, plane: &[f32], tile: usize, d: &mut [f32]) {
        let (tyi, txi) = (tile / self.tx.tiles, tile % self.tx.tiles);
        for a in 0..self.t {
            match self.ty.source(self.h, tyi, a) {
                None => d[a * self.t..(a + 1) * self.t].fill(0.0),
                Some(i) => {
                    for b in 0..self.t {
                        d[a * self.t + b] = self.tx.source(self.w, txi, b).map_or(0.0, |j| plane[i * self.w + j]);
                    }
                }
            }
        }
    }
    /// Adds a t×t window gradient back into a channel plane.
    fn scatter_add(&self, plane: &mut [f32], tile: usize, d: &[f32]) {
        let (tyi, txi) = (tile / self.tx.tiles, tile % self.tx.tiles);
        for a in 0..self.t {
            if let Some(i) = self.ty.source(self.h, tyi, a) {
                for b in 0..self.t {
                    if let Some(j) = self.tx.source(self.w, txi, b) {
                        plane[i * self.w + j] += d[a * self.t + b];
                    }
                }
            }
        }
    }
    /// Output position (i, j) of element (a, b) of `tile`'s m×m output, if not cropped.
    fn target(&self, tile: usize, a: usize, b: usize) -> Option<(usize, usize)> {
        let (tyi, txi) = (tile / self.tx.tiles, tile % self.tx.tiles);
        self.ty.target(self.h, tyi, a).zip(self.tx.target(self.w, txi, b))
    }
}

struct Cache {
    geo: Geo,
    xq: Tensor,
    wq: Vec<f32>,
    at: Vec<f32>,
    bt: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    v: Vec<f32>,
    /// Quantized Hadamard sum, kept only when Aᵀ is learned.
    mq: Option<Vec<f32>>,
}

pub struct WinogradConv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Output tile size m of F(m×m, 3×3).
    pub m: usize,
    pub flex: bool,
    pub precision: Precision,
    pub points: PointSet,
    /// [K, C, 3, 3]
    pub weight: Param,
    /// Aᵀ (m×t), Bᵀ (t×t), G (t×3): learned in flex mode; in static mode fixed (and, when
    /// quantized, quantized once at construction as the reference does at init).
    pub at: Param,
    pub bt: Param,
    pub g: Param,
    q_in: Option<Quantizer>,
    q_w: Option<Quantizer>,
    q_u: Option<Quantizer>,
    q_v: Option<Quantizer>,
    q_m: Option<Quantizer>,
    q_out: Option<Quantizer>,
    q_a: Option<Quantizer>,
    q_b: Option<Quantizer>,
    q_g: Option<Quantizer>,
    cache: Option<Cache>,
}

impl WinogradConv2d {
    pub fn new(
        c: usize,
        k: usize,
        m: usize,
        points: PointSet,
        flex: bool,
        precision: Precision,
        weight: Tensor,
    ) -> Result<WinogradConv2d, TransformError> {
        assert_eq!(weight.shape, [k, c, 3, 3], "weight shape");
        let tr = transform(m, 3, &points)?.to_f32();
        let t = m + 2;
        let mut layer = WinogradConv2d {
            in_channels: c,
            out_channels: k,
            m,
            flex,
            precision,
            points,
            weight: Param::new(weight),
            at: Param::new(Tensor::from_vec(&[m, t], tr.at.data)),
            bt: Param::new(Tensor::from_vec(&[t, t], tr.bt.data)),
            g: Param::new(Tensor::from_vec(&[t, 3], tr.g.data)),
            q_in: precision.quantizer(),
            q_w: precision.quantizer(),
            q_u: precision.quantizer(),
            q_v: precision.quantizer(),
            q_m: precision.quantizer(),
            q_out: precision.quantizer(),
            q_a: precision.quantizer(),
            q_b: precision.quantizer(),
            q_g: precision.quantizer(),
            cache: None,
        };
        if !flex {
            // Static: quantize the transforms once, from their own range.
            quant::apply(&mut layer.q_a, &mut layer.at.value.data, Mode::Train);
            quant::apply(&mut layer.q_b, &mut layer.bt.value.data, Mode::Train);
            quant::apply(&mut layer.q_g, &mut layer.g.value.data, Mode::Train);
        }
        Ok(layer)
    }

    /// The transforms this forward uses: flex quantizes the float masters every time.
    fn transforms(&mut self, mode: Mode) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut at, mut bt, mut g) =
            (self.at.value.data.clone(), self.bt.value.data.clone(), self.g.value.data.clone());
        if self.flex {
            quant::apply(&mut self.q_a, &mut at, mode);
            quant::apply(&mut self.q_b, &mut bt, mode);
            quant::apply(&mut self.q_g, &mut g, mode);
        }
        (at, bt, g)
    }
}

impl Layer for WinogradConv2d {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let (n, c, h, w) = x.dims4();
        assert_eq!(c, self.in_channels, "WinogradConv2d expects {} channels, got {c}", self.in_channels);
        let (k, m) = (self.out_channels, self.m);
        let t = m + 2;
        let geo = Geo { n, c, h, w, k, m, t, ty: Tiling::new(h, m, 3), tx: Tiling::new(w, m, 3) };
        let (tt, p, tiles) = (geo.tt(), geo.p(), geo.tiles());
        let (at, bt, g) = self.transforms(mode);

        let mut xq = x.clone();
        quant::apply(&mut self.q_in, &mut xq.data, mode);
        let mut wq = self.weight.value.data.clone();
        quant::apply(&mut self.q_w, &mut wq, mode);

        // U[k][c] = G g Gᵀ
        let mut u = vec![0.0f32; k * c * tt];
        u.par_chunks_mut(tt).zip(wq.par_chunks(9)).for_each_init(
            || vec![0.0f32; t * 3],
            |tmp, (uo, wkc)| sandwich(&g, t, 3, wkc, uo, tmp),
        );
        quant::apply(&mut self.q_u, &mut u, mode);

        // V[c][e][p] = (Bᵀ d B)[e] for p = n·tiles + tile
        let mut v = vec![0.0f32; c * tt * p];
        v.par_chunks_mut(tt * p).enumerate().for_each_init(
            || (vec![0.0f32; tt], vec![0.0f32; tt], vec![0.0f32; tt]),
            |(d, vt, tmp), (ci, vc)| {
                for ni in 0..n {
                    let plane = &xq.data[(ni * c + ci) * h * w..][..h * w];
                    for tile in 0..tiles {
                        geo.gather(plane, tile, d);
                        sandwich(&bt, t, t, d, vt, tmp);
                        let col = ni * tiles + tile;
                        for e in 0..tt {
                            vc[e * p + col] = vt[e];
                        }
                    }
                }
            },
        );
        quant::apply(&mut self.q_v, &mut v, mode);

        // M[e] = U[e] (K×C) · V[e] (C×P), one GEMM per tile position.
        let mut mh = vec![0.0f32; tt * k * p];
        mh.par_chunks_mut(k * p).enumerate().for_each(|(e, me)| {
            let a = View { data: &u[e..], rs: c * tt, cs: tt };
            let b = View { data: &v[e * p..], rs: tt * p, cs: 1 };
            sgemm_view(k, p, c, a, b, me, p, false, 1);
        });
        quant::apply(&mut self.q_m, &mut mh, mode);

        // Y = Aᵀ M A per tile, cropped.
        let mut y = Tensor::zeros(&[n, k, h, w]);
        y.data.par_chunks_mut(h * w).enumerate().for_each_init(
            || (vec![0.0f32; tt], vec![0.0f32; m * m], vec![0.0f32; m * t]),
            |(mt, out, tmp), (nk, yc)| {
                let (ni, ko) = (nk / k, nk % k);
                for tile in 0..tiles {
                    let col = ni * tiles + tile;
                    for e in 0..tt {
                        mt[e] = mh[(e * k + ko) * p + col];
                    }
                    sandwich(&at, m, t, mt, out, tmp);
                    for a in 0..m {
                        for b in 0..m {
                            if let Some((i, j)) = geo.target(tile, a, b) {
                                yc[i * w + j] = out[a * m + b];
                            }
                        }
                    }
                }
            },
        );
        quant::apply(&mut self.q_out, &mut y.data, mode);

        if mode == Mode::Train {
            let mq = self.flex.then_some(mh);
            self.cache = Some(Cache { geo, xq, wq, at, bt, g, u, v, mq });
        }
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let cache = self.cache.take().expect("WinogradConv2d::backward without a training forward");
        let Cache { geo, xq, wq, at, bt, g, u, v, mq } = cache;
        let Geo { n, c, h, w, k, m, t, .. } = geo;
        let (tt, p, tiles) = (geo.tt(), geo.p(), geo.tiles());
        let flex = self.flex;

        // dM[k][e][p] = A dY Aᵀ per tile (and dAᵀ in flex mode).
        let mut dm = vec![0.0f32; k * tt * p];
        let d_at = dm
            .par_chunks_mut(tt * p)
            .enumerate()
            .fold(
                || (vec![0.0f32; m * t], vec![0.0f32; m * m], vec![0.0f32; tt], vec![0.0f32; tt], vec![0.0f32; m * t]),
                |(mut dat, mut dy, mut dmt, mut mt, mut tmp), (ko, dmk)| {
                    for ni in 0..n {
                        let gplane = &grad.data[(ni * k + ko) * h * w..][..h * w];
                        for tile in 0..tiles {
                            for a in 0..m {
                                for b in 0..m {
                                    dy[a * m + b] = geo.target(tile, a, b).map_or(0.0, |(i, j)| gplane[i * w + j]);
                                }
                            }
                            sandwich_t(&at, m, t, &dy, &mut dmt, &mut tmp);
                            let col = ni * tiles + tile;
                            for e in 0..tt {
                                dmk[e * p + col] = dmt[e];
                            }
                            if let Some(mq) = &mq {
                                for e in 0..tt {
                                    mt[e] = mq[(e * k + ko) * p + col];
                                }
                                sandwich_grad_l(&at, m, t, &mt, &dy, &mut dat, &mut tmp);
                            }
                        }
                    }
                    (dat, dy, dmt, mt, tmp)
                },
            )
            .map(|s| s.0)
            .reduce(|| vec![0.0f32; m * t], |mut a, b| {
                add_into(&mut a, &b);
                a
            });

        // Per tile position: dU[e] = dM[e]·V[e]ᵀ (K×C) and dV[e] = U[e]ᵀ·dM[e] (C×P).
        let mut du = vec![0.0f32; tt * k * c];
        let mut dv = vec![0.0f32; tt * c * p];
        du.par_chunks_mut(k * c).zip(dv.par_chunks_mut(c * p)).enumerate().for_each(|(e, (due, dve))| {
            let dme = View { data: &dm[e * p..], rs: tt * p, cs: 1 };
            let vt = View { data: &v[e * p..], rs: 1, cs: tt * p };
            sgemm_view(k, c, p, dme, vt, due, c, false, 1);
            let ut = View { data: &u[e..], rs: tt, cs: c * tt };
            sgemm_view(c, p, k, ut, dme, dve, p, false, 1);
        });
        drop(dm);

        // dx = Σ_tiles B dV Bᵀ (and dBᵀ in flex mode).
        let mut dx = Tensor::zeros(&[n, c, h, w]);
        let d_bt = dx
            .data
            .par_chunks_mut(h * w)
            .enumerate()
            .fold(
                || (vec![0.0f32; tt], vec![0.0f32; tt], vec![0.0f32; tt], vec![0.0f32; tt], vec![0.0f32; tt]),
                |(mut dbt, mut dvt, mut dd, mut d, mut tmp), (nc, dxc)| {
                    let (ni, ci) = (nc / c, nc % c);
                    let plane = &xq.data[nc * h * w..][..h * w];
                    for tile in 0..tiles {
                        let col = ni * tiles + tile;
                        for e in 0..tt {
                            dvt[e] = dv[(e * c + ci) * p + col];
                        }
                        sandwich_t(&bt, t, t, &dvt, &mut dd, &mut tmp);
                        geo.scatter_add(dxc, tile, &dd);
                        if flex {
                            geo.gather(plane, tile, &mut d);
                            sandwich_grad_l(&bt, t, t, &d, &dvt, &mut dbt, &mut tmp);
                        }
                    }
                    (dbt, dvt, dd, d, tmp)
                },
            )
            .map(|s| s.0)
            .reduce(|| vec![0.0f32; tt], |mut a, b| {
                add_into(&mut a, &b);
                a
            });
        drop(dv);

        // dW = Gᵀ dU G per (k, c) (and dG in flex mode).
        let mut dw = vec![0.0f32; k * c * 9];
        let d_g = dw
            .par_chunks_mut(9)
            .enumerate()
            .fold(
                || (vec![0.0f32; t * 3], vec![0.0f32; tt], vec![0.0f32; t * t]),
                |(mut dg, mut dut, mut tmp), (kc, dwkc)| {
                    for e in 0..tt {
                        dut[e] = du[e * k * c + kc];
                    }
                    sandwich_t(&g, t, 3, &dut, dwkc, &mut tmp);
                    if flex {
                        sandwich_grad_l(&g, t, 3, &wq[kc * 9..(kc + 1) * 9], &dut, &mut dg, &mut tmp);
                    }
                    (dg, dut, tmp)
                },
            )
            .map(|s| s.0)
            .reduce(|| vec![0.0f32; t * 3], |mut a, b| {
                add_into(&mut a, &b);
                a
            });

        add_into(&mut self.weight.grad.data, &dw);
        if flex {
            add_into(&mut self.at.grad.data, &d_at);
            add_into(&mut self.bt.grad.data, &d_bt);
            add_into(&mut self.g.grad.data, &d_g);
        }
        dx
    }

    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        f(&path(prefix, "weight"), &mut self.weight);
        if self.flex {
            f(&path(prefix, "at"), &mut self.at);
            f(&path(prefix, "bt"), &mut self.bt);
            f(&path(prefix, "g"), &mut self.g);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: BufferVisitor) {
        if !self.flex {
            f(&path(prefix, "at"), Buffer::F32(&mut self.at.value.data));
            f(&path(prefix, "bt"), Buffer::F32(&mut self.bt.value.data));
            f(&path(prefix, "g"), Buffer::F32(&mut self.g.value.data));
        }
        for (q, name) in [
            (&mut self.q_in, "q_input"),
            (&mut self.q_w, "q_weight"),
            (&mut self.q_u, "q_weight_winograd"),
            (&mut self.q_v, "q_input_winograd"),
            (&mut self.q_m, "q_hadamard"),
            (&mut self.q_out, "q_output"),
            (&mut self.q_a, "q_at"),
            (&mut self.q_b, "q_bt"),
            (&mut self.q_g, "q_g"),
        ] {
            quant::visit(q, prefix, name, f);
        }
    }

    fn describe(&self) -> String {
        format!(
            "conv3x3 F{} {} {}->{} {} (points {})",
            self.m,
            if self.flex { "flex" } else { "static" },
            self.in_channels,
            self.out_channels,
            self.precision,
            self.points
        )
    }
}
