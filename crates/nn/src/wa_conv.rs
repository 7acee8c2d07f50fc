//! The Winograd-aware convolution: a 3x3, stride-1, pad-1 convolution computed as
//! Y = Aᵀ[Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)]A with fake quantization at the six stages of the
//! reference (input, weights, G g Gᵀ, Bᵀ d B, Hadamard sum, output) and, in flex mode,
//! learnable transforms quantized on every forward.
//!
//! Fused forward and backward: the channel sum is one GEMM per tile position
//! ([K×C]·[C×(N·tiles)]), so no N·K·C·tiles tensor is ever built, and the small transforms run
//! on blocks of tiles at once (`winq_kernels::tile`). Layouts, with T = t² tile positions and
//! P = N·tiles columns: U = G g Gᵀ as [T][K][C], V = Bᵀ d B as [C][T][P], the Hadamard sum M
//! as [T][K][P]. Quantizers pass gradients straight through.

use crate::layer::{path, Buffer, BufferVisitor, Layer, Mode, Param, ParamVisitor};
use crate::par::ordered_sum;
use crate::quant::{Granularity, Precision, TensorQuant};
use crate::tensor::Tensor;
use rayon::prelude::*;
use winq_ir::QuantWinograd;
use winq_kernels::gemm::{sgemm_view, View};
use winq_kernels::tile::{sandwich_grad_lanes, sandwich_lanes};
use winq_kernels::winograd::stages::{
    blocks, hadamard_stage, input_stage_codes, input_stage_f32, lane_blocks_par, output_stage,
    output_stage_codes, swap_outer, LANES,
};
use winq_kernels::winograd::NchwTiles as Geo;
use winq_quant::codes::codes_i8;
use winq_transforms::{transform, PointSet, TransformError};

fn add_into(acc: &mut [f32], v: &[f32]) {
    acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
}

/// Transposes a row-major r×c matrix.
fn transpose(x: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = x[i * c + j];
        }
    }
    out
}

struct Cache {
    geo: Geo,
    xq: Tensor,
    /// Quantized weights as [9][K·C] lanes (for dG).
    wt: Vec<f32>,
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
    pub granularity: Granularity,
    /// [K, C, 3, 3]
    pub weight: Param,
    /// Aᵀ (m×t), Bᵀ (t×t), G (t×3): learned in flex mode; in static mode fixed (and, when
    /// quantized, quantized once at construction as the reference does at init).
    pub at: Param,
    pub bt: Param,
    pub g: Param,
    q_in: TensorQuant,
    q_w: TensorQuant,
    q_u: TensorQuant,
    q_v: TensorQuant,
    q_m: TensorQuant,
    q_out: TensorQuant,
    q_a: TensorQuant,
    q_b: TensorQuant,
    q_g: TensorQuant,
    cache: Option<Cache>,
    /// 8-bit layers compute the Winograd-domain stages on integer codes (as the engine does).
    integer_stages: bool,
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
            granularity: Granularity::default(),
            weight: Param::new(weight),
            at: Param::new(Tensor::from_vec(&[m, t], tr.at.data)),
            bt: Param::new(Tensor::from_vec(&[t, t], tr.bt.data)),
            g: Param::new(Tensor::from_vec(&[t, 3], tr.g.data)),
            q_in: TensorQuant::new(precision, 1),
            q_w: TensorQuant::new(precision, 1),
            q_u: TensorQuant::new(precision, 1),
            q_v: TensorQuant::new(precision, 1),
            q_m: TensorQuant::new(precision, 1),
            q_out: TensorQuant::new(precision, 1),
            q_a: TensorQuant::new(precision, 1),
            q_b: TensorQuant::new(precision, 1),
            q_g: TensorQuant::new(precision, 1),
            cache: None,
            integer_stages: true,
        };
        if !flex {
            // Static: quantize the transforms once, from their own range.
            layer.q_a.apply(&mut layer.at.value.data, Mode::Train, 1);
            layer.q_b.apply(&mut layer.bt.value.data, Mode::Train, 1);
            layer.q_g.apply(&mut layer.g.value.data, Mode::Train, 1);
        }
        Ok(layer)
    }

    /// Off: every stage in f32 on dequantized values (the unfused composition's arithmetic,
    /// which tests compare against); on (default): the integer engine's arithmetic.
    pub fn with_integer_stages(mut self, on: bool) -> WinogradConv2d {
        self.integer_stages = on;
        self
    }

    /// Per-output-channel weight scales and/or per-tap Winograd-domain scales (research
    /// options; the reference uses one scale per tensor).
    pub fn with_granularity(mut self, g: Granularity) -> WinogradConv2d {
        let (p, t) = (self.precision, self.m + 2);
        self.q_w = TensorQuant::new(
            p,
            if g.per_channel_weights {
                self.out_channels
            } else {
                1
            },
        );
        for q in [&mut self.q_u, &mut self.q_v, &mut self.q_m] {
            *q = TensorQuant::new(p, if g.per_tap { t * t } else { 1 });
        }
        self.granularity = g;
        self
    }

    /// Transforms, quantized weights transposed to [9][K·C] (the lane layout), and quantized
    /// U = G g Gᵀ ([T][K][C]) as a forward uses them.
    #[allow(clippy::type_complexity)]
    fn weights(&mut self, mode: Mode) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let (at, bt, g) = self.transforms(mode);
        let (k, c, t) = (self.out_channels, self.in_channels, self.m + 2);
        let kc = k * c;
        let mut wq = self.weight.value.data.clone();
        self.q_w.apply(&mut wq, mode, 1);
        let wt = transpose(&wq, kc, 9);
        let mut u = vec![0.0f32; t * t * kc];
        lane_blocks_par(kc, t * t, &mut u, 0, |j0, lanes, blk, _| {
            let mut tmp = vec![0.0f32; t * 3 * lanes];
            sandwich_lanes(&g, t, 3, &wt[j0..], kc, blk, lanes, lanes, &mut tmp);
        });
        self.q_u.apply(&mut u, mode, 1); // [T][K][C]: taps outermost
        (at, bt, g, wt, u)
    }

    /// Everything an integer engine needs to compute this layer's eval forward: the codes of
    /// the quantized transforms and pre-transformed weights exactly as the eval forward uses
    /// them, and the scales of every quantizer (8-bit layers).
    pub fn quantized(&mut self) -> QuantWinograd {
        let (at, bt, _, _, u) = self.weights(Mode::Eval);
        let one = |q: &TensorQuant| q.scales()[0];
        let (s_at, s_bt, s_u) = (one(&self.q_a), one(&self.q_b), self.q_u.scales());
        QuantWinograd {
            c: self.in_channels,
            k: self.out_channels,
            m: self.m,
            at: codes_i8(&at, &[s_at]),
            bt: codes_i8(&bt, &[s_bt]),
            s_at,
            s_bt,
            u: codes_i8(&u, &s_u),
            s_u,
            s_in: one(&self.q_in),
            s_v: self.q_v.scales(),
            s_m: self.q_m.scales(),
            s_out: one(&self.q_out),
        }
    }

    /// The transforms this forward uses: flex quantizes the float masters every time.
    fn transforms(&mut self, mode: Mode) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut at, mut bt, mut g) = (
            self.at.value.data.clone(),
            self.bt.value.data.clone(),
            self.g.value.data.clone(),
        );
        if self.flex {
            self.q_a.apply(&mut at, mode, 1);
            self.q_b.apply(&mut bt, mode, 1);
            self.q_g.apply(&mut g, mode, 1);
        }
        (at, bt, g)
    }
}

impl Layer for WinogradConv2d {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let (n, c, h, w) = x.dims4();
        assert_eq!(
            c, self.in_channels,
            "WinogradConv2d expects {} channels, got {c}",
            self.in_channels
        );
        let (k, m) = (self.out_channels, self.m);
        let geo = Geo::new(n, c, h, w, k, m);
        let (at, bt, g, wt, u) = self.weights(mode);
        let mut xq = x.clone();
        self.q_in.apply(&mut xq.data, mode, 1);

        // 8-bit layers compute the Winograd-domain stages on integer codes, exactly as the
        // integer engine does (V exactly in i32, the Hadamard sums exactly with `code_gemm`,
        // each requantized with the engine's multiplier), so the eval forward rounds the same
        // numbers the engine rounds. Only in eval (what the engine reproduces): training steps
        // keep the faster f32 stages.
        let exact = self.integer_stages && mode == Mode::Eval && self.q_in.bits == Some(8);

        // V[c][e][p] = (Bᵀ d B)[e] for column p = n·tiles + tile.
        let (mut v, s_v) = if exact {
            let (s_in, s_b) = (self.q_in.scales()[0], self.q_b.scales()[0]);
            let mut xc = xq.data.clone();
            TensorQuant::codes_of(&mut xc, &[s_in], 1);
            let mut bc = bt.clone();
            TensorQuant::codes_of(&mut bc, &[s_b], 1);
            let bc: Vec<i32> = bc.iter().map(|&v| v as i32).collect();
            let mut v = input_stage_codes(&geo, &xc, &bc);
            let s_v = self.q_v.requant_codes(&mut v, &[s_b * s_b * s_in], mode, c); // codes [C][T][P]
            (v, Some(s_v))
        } else {
            let mut v = input_stage_f32(&geo, &xq.data, &bt);
            self.q_v.apply(&mut v, mode, c); // [C][T][P]
            (v, None)
        };

        // M[e] = U[e] (K×C) · V[e] (C×P), one GEMM per tile position.
        let uc = s_v.as_ref().map(|_| {
            let mut uc = u.clone();
            TensorQuant::codes_of(&mut uc, &self.q_u.scales(), 1);
            uc
        });
        let mut mh = hadamard_stage(&geo, uc.as_ref().unwrap_or(&u), &v, uc.is_some());
        let y = match &s_v {
            Some(s_v) => {
                let s_u = self.q_u.scales();
                let g = s_u.len().max(s_v.len());
                let pick = |s: &[f64], e: usize| if s.len() == 1 { s[0] } else { s[e] };
                let in_scale: Vec<f64> = (0..g).map(|e| pick(&s_u, e) * pick(s_v, e)).collect();
                let s_m = self.q_m.requant_codes(&mut mh, &in_scale, mode, 1); // [T][K][P]
                TensorQuant::scale_codes(&mut v, s_v, c); // V back to values for backward
                if let [s_m] = s_m[..] {
                    // One scale for all taps: Y = s_a²·s_m · (Aᵀ M A on codes), an exact
                    // integer sum requantized once (the engine computes the same integers).
                    let s_a = self.q_a.scales()[0];
                    let mut ac = at.clone();
                    TensorQuant::codes_of(&mut ac, &[s_a], 1);
                    let ac: Vec<i32> = ac.iter().map(|&v| v as i32).collect();
                    let mut y = Tensor::from_vec(&[n, k, h, w], output_stage_codes(&geo, &mh, &ac));
                    let s_out = self.q_out.requant_codes(&mut y.data, &[s_a * s_a * s_m], mode, 1);
                    TensorQuant::scale_codes(&mut y.data, &s_out, 1);
                    y
                } else {
                    TensorQuant::scale_codes(&mut mh, &s_m, 1);
                    let mut y = Tensor::from_vec(&[n, k, h, w], output_stage(&geo, &mh, &at));
                    self.q_out.apply(&mut y.data, mode, 1);
                    y
                }
            }
            None => {
                self.q_m.apply(&mut mh, mode, 1); // [T][K][P]
                let mut y = Tensor::from_vec(&[n, k, h, w], output_stage(&geo, &mh, &at));
                self.q_out.apply(&mut y.data, mode, 1);
                y
            }
        };

        if mode == Mode::Train {
            let mq = self.flex.then_some(mh);
            self.cache = Some(Cache {
                geo,
                xq,
                wt,
                at,
                bt,
                g,
                u,
                v,
                mq,
            });
        }
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let cache = self
            .cache
            .take()
            .expect("WinogradConv2d::backward without a training forward");
        let Cache {
            geo,
            xq,
            wt,
            at,
            bt,
            g,
            u,
            v,
            mq,
        } = cache;
        let (n, c, h, w, k, m, t) = (geo.n, geo.c, geo.h, geo.w, geo.k, geo.m, geo.t);
        let (tt, p, kc) = (geo.tt(), geo.p(), k * c);
        let flex = self.flex;
        let (a_t, b_t, g_t) = (transpose(&at, m, t), transpose(&bt, t, t), transpose(&g, t, 3));

        // dM[k][e][p] = (A dY Aᵀ)[e] per tile; in flex mode also dAᵀ.
        let mut dm = vec![0.0f32; k * tt * p];
        let parts: Vec<Vec<f32>> = dm
            .par_chunks_mut(tt * p)
            .enumerate()
            .map_init(
                || (vec![0.0f32; m * m * LANES], vec![0.0f32; tt * LANES]),
                |(dy, tmp), (ko, dmk)| {
                    let mut dat = vec![0.0f32; if flex { m * t } else { 0 }];
                    for (p0, lanes) in blocks(p) {
                        geo.gather_out(&grad.data, ko, p0, lanes, dy);
                        sandwich_lanes(&a_t, t, m, dy, lanes, &mut dmk[p0..], p, lanes, tmp);
                        if let Some(mq) = &mq {
                            let x = &mq[ko * p + p0..];
                            sandwich_grad_lanes(&at, m, t, x, k * p, dy, lanes, lanes, &mut dat, tmp);
                        }
                    }
                    dat
                },
            )
            .collect();
        let d_at = ordered_sum(&parts, m * t);

        // Per tile position: dU[e] = dM[e]·V[e]ᵀ (K×C) and dV[e] = U[e]ᵀ·dM[e] (C×P).
        let mut du = vec![0.0f32; tt * kc];
        let mut dv = vec![0.0f32; tt * c * p];
        du.par_chunks_mut(kc)
            .zip(dv.par_chunks_mut(c * p))
            .enumerate()
            .for_each(|(e, (due, dve))| {
                let dme = View {
                    data: &dm[e * p..],
                    rs: tt * p,
                    cs: 1,
                };
                let vt = View {
                    data: &v[e * p..],
                    rs: 1,
                    cs: tt * p,
                };
                sgemm_view(k, c, p, dme, vt, due, c, false, 1);
                let ut = View {
                    data: &u[e * kc..],
                    rs: 1,
                    cs: c,
                };
                sgemm_view(c, p, k, ut, dme, dve, p, false, 1);
            });
        drop(dm);

        // dx = Σ_tiles B dV Bᵀ, per input channel as [C][N][H][W]; in flex mode also dBᵀ.
        let mut dxc = vec![0.0f32; c * n * h * w];
        let parts: Vec<Vec<f32>> = dxc
            .par_chunks_mut(n * h * w)
            .enumerate()
            .map_init(
                || {
                    (
                        vec![0.0f32; tt * LANES],
                        vec![0.0f32; tt * LANES],
                        vec![0.0f32; tt * LANES],
                    )
                },
                |(dd, d, tmp), (ci, planes)| {
                    let mut dbt = vec![0.0f32; if flex { tt } else { 0 }];
                    for (p0, lanes) in blocks(p) {
                        let dvc = &dv[ci * p + p0..];
                        sandwich_lanes(&b_t, t, t, dvc, c * p, dd, lanes, lanes, tmp);
                        geo.scatter_add_in(dd, p0, lanes, planes);
                        if flex {
                            geo.gather_in(&xq.data, c, ci, p0, lanes, d);
                            sandwich_grad_lanes(&bt, t, t, d, lanes, dvc, c * p, lanes, &mut dbt, tmp);
                        }
                    }
                    dbt
                },
            )
            .collect();
        let d_bt = ordered_sum(&parts, tt);
        drop(dv);
        let dx = Tensor::from_vec(&[n, c, h, w], swap_outer(&dxc, c, n, h * w));
        drop(dxc);

        // dW = Gᵀ dU G, lanes over (k, c); in flex mode also dG.
        let mut dwt = vec![0.0f32; 9 * kc];
        let d_g = lane_blocks_par(kc, 9, &mut dwt, t * 3, |j0, lanes, blk, dg| {
            let mut tmp = vec![0.0f32; tt * lanes];
            sandwich_lanes(&g_t, 3, t, &du[j0..], kc, blk, lanes, lanes, &mut tmp);
            if flex {
                sandwich_grad_lanes(&g, t, 3, &wt[j0..], kc, &du[j0..], kc, lanes, dg, &mut tmp);
            }
        });
        add_into(&mut self.weight.grad.data, &transpose(&dwt, 9, kc));
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
            f(&path(prefix, "A_t"), &mut self.at);
            f(&path(prefix, "B_t"), &mut self.bt);
            f(&path(prefix, "G"), &mut self.g);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: BufferVisitor) {
        if !self.flex {
            f(&path(prefix, "A_t"), Buffer::F32(&mut self.at.value.data));
            f(&path(prefix, "B_t"), Buffer::F32(&mut self.bt.value.data));
            f(&path(prefix, "G"), Buffer::F32(&mut self.g.value.data));
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
            q.visit(prefix, name, f);
        }
    }

    fn export(&mut self) -> Result<winq_ir::Op, String> {
        let (c, k, m, what) = (self.in_channels, self.out_channels, self.m, self.describe());
        // An unquantized layer exports its transforms and pre-transformed weights: the engine
        // runs it with the same FP32 Winograd stages as training.
        Ok(if crate::export::is_int8(self.q_in.bits, &what)? {
            winq_ir::Op::WinogradI8(self.quantized())
        } else {
            let (at, bt, _, _, u) = self.weights(Mode::Eval);
            winq_ir::Op::WinogradF32 { c, k, m, at, bt, u }
        })
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
