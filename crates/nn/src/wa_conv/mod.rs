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

//!
//! Files: this one (the layer, its parameters, quantizers and export), `forward` (the f32
//! training forward and the exact-integer eval stages the engine reproduces), `backward`.

mod backward;
mod forward;

use crate::export::ExportError;
use crate::layer::{path, Buffer, BufferVisitor, Layer, Mode, Param, ParamVisitor};
use crate::quant::{Granularity, Precision, TensorQuant};
use crate::tensor::Tensor;
use winq_ir::QuantWinograd;
use winq_kernels::tile::sandwich_lanes;
use winq_kernels::winograd::stages::lane_blocks_par;
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

/// What a training forward keeps for the backward.
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
        self.forward_pass(x, mode)
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        self.backward_pass(grad)
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

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
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
