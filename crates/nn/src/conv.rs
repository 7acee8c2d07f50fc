//! Convolution by im2row lowering (stride 1, "same" padding, r = 1 or 3) through GEMM,
//! quantized at input, weights and output as the reference's plain Conv2d.

use crate::export::ExportError;
use crate::layer::{path, BufferVisitor, Layer, Mode, Param, ParamVisitor};
use crate::quant::{Precision, TensorQuant};
use crate::tensor::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use winq_kernels::gemm::{code_gemm, sgemm, Layout, View};

pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub precision: Precision,
    /// [K, C, r, r]
    pub weight: Param,
    q_in: TensorQuant,
    q_w: TensorQuant,
    q_out: TensorQuant,
    cache: Option<(Tensor, Vec<f32>)>,
}

/// Xavier (Glorot) uniform init of a [K, C, r, r] weight, as nn.init.xavier_uniform_.
pub fn xavier_uniform(k: usize, c: usize, r: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let bound = (6.0 / ((c + k) * r * r) as f64).sqrt() as f32;
    Tensor::from_vec(
        &[k, c, r, r],
        (0..k * c * r * r)
            .map(|_| rng.gen_range(-bound..=bound))
            .collect(),
    )
}

/// PyTorch's default Conv2d init (kaiming-uniform with a = √5): U(±1/√fan_in).
pub fn torch_default_uniform(k: usize, c: usize, r: usize, rng: &mut ChaCha8Rng) -> Tensor {
    let bound = 1.0 / ((c * r * r) as f32).sqrt();
    Tensor::from_vec(
        &[k, c, r, r],
        (0..k * c * r * r)
            .map(|_| rng.gen_range(-bound..=bound))
            .collect(),
    )
}

impl Conv2d {
    /// The layer as the integer engine runs it: the codes of the weights the eval forward
    /// uses and the scales of its three quantizers (8-bit layers).
    pub fn quantized(&mut self) -> winq_ir::QuantConv {
        let mut w = self.weight.value.data.clone();
        self.q_w.apply(&mut w, Mode::Eval, 1);
        let s_w = self.q_w.scales();
        winq_ir::QuantConv {
            c: self.in_channels,
            k: self.out_channels,
            r: self.kernel,
            weight: winq_quant::codes::codes_i8(&w, &s_w),
            s_w,
            s_in: self.q_in.scales()[0],
            s_out: self.q_out.scales()[0],
        }
    }

    /// For 8-bit layers, the integer codes of input and weights and the scale of one
    /// accumulator step per output channel: the output is then requantized from the exact
    /// integer sums (`code_gemm`), with the same multiplier, as in the integer engine. None for
    /// other precisions.
    fn integer_operands(&self, xq: &[f32], wq: &[f32]) -> Option<(Vec<f32>, Vec<f32>, Vec<f64>)> {
        if self.q_in.bits != Some(8) {
            return None;
        }
        let (s_in, s_w) = (self.q_in.scales()[0], self.q_w.scales());
        let mut xc = xq.to_vec();
        TensorQuant::codes_of(&mut xc, &[s_in], 1);
        let mut wc = wq.to_vec();
        TensorQuant::codes_of(&mut wc, &s_w, 1);
        Some((xc, wc, s_w.iter().map(|&sw| s_in * sw).collect()))
    }

    /// One weight scale per output channel instead of one per tensor.
    pub fn with_per_channel_weights(mut self, on: bool) -> Conv2d {
        let p = self.precision;
        self.q_w = TensorQuant::new(p, if on { self.out_channels } else { 1 });
        self
    }

    pub fn new(c: usize, k: usize, kernel: usize, precision: Precision, weight: Tensor) -> Conv2d {
        assert!(
            kernel == 1 || kernel == 3,
            "im2row Conv2d supports 1x1 and 3x3 kernels"
        );
        assert_eq!(weight.shape, [k, c, kernel, kernel], "weight shape");
        Conv2d {
            in_channels: c,
            out_channels: k,
            kernel,
            precision,
            weight: Param::new(weight),
            q_in: TensorQuant::new(precision, 1),
            q_w: TensorQuant::new(precision, 1),
            q_out: TensorQuant::new(precision, 1),
            cache: None,
        }
    }
}

pub use winq_kernels::im2col::{col2im, im2col};

thread_local! {
    /// Per-thread im2col buffers, reused across layers and steps (no page faults per call).
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` with two per-thread scratch buffers of at least `len` values each.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let (a, b) = &mut *s;
        if a.len() < len {
            a.resize(len, 0.0);
            b.resize(len, 0.0);
        }
        f(&mut a[..len], &mut b[..len])
    })
}

impl Layer for Conv2d {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let (n, c, h, w) = x.dims4();
        assert_eq!(
            c, self.in_channels,
            "Conv2d expects {} input channels, got {c}",
            self.in_channels
        );
        let (k, r) = (self.out_channels, self.kernel);
        let mut xq = x.clone();
        self.q_in.apply(&mut xq.data, mode, 1);
        let mut wq = self.weight.value.data.clone();
        self.q_w.apply(&mut wq, mode, 1);
        let hw = h * w;
        let taps = c * r * r;
        // Eval computes what the integer engine computes; training steps keep the faster f32
        // products (the same quantization up to f32 rounding).
        let exact = (mode == Mode::Eval)
            .then(|| self.integer_operands(&xq.data, &wq))
            .flatten();
        let (xa, wa) = match &exact {
            Some((xc, wc, _)) => (xc, wc),
            None => (&xq.data, &wq),
        };
        let mut y = Tensor::zeros(&[n, k, h, w]);
        y.data
            .par_chunks_mut(k * hw)
            .zip(xa.par_chunks(c * hw))
            .for_each(|(yn, xn)| {
                // Codes multiply exactly; values in f32 as before.
                let product = |b: &[f32], yn: &mut [f32]| match exact {
                    Some(_) => code_gemm(
                        k,
                        hw,
                        taps,
                        View {
                            data: wa,
                            rs: taps,
                            cs: 1,
                        },
                        View {
                            data: b,
                            rs: hw,
                            cs: 1,
                        },
                        yn,
                        hw,
                    ),
                    None => sgemm(k, hw, taps, wa, Layout::N, b, Layout::N, yn, false, 1),
                };
                if r == 1 {
                    product(xn, yn);
                } else {
                    with_scratch(taps * hw, |cols, _| {
                        im2col(xn, c, h, w, r, cols);
                        product(cols, yn);
                    });
                }
            });
        match exact {
            Some((_, _, in_scale)) => {
                let s_out = self.q_out.requant_codes(&mut y.data, &in_scale, mode, n);
                TensorQuant::scale_codes(&mut y.data, &s_out, n);
            }
            None => self.q_out.apply(&mut y.data, mode, 1),
        }
        if mode == Mode::Train {
            self.cache = Some((xq, wq));
        }
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let (xq, wq) = self
            .cache
            .take()
            .expect("Conv2d::backward without a training forward");
        let (n, c, h, w) = xq.dims4();
        let (k, r) = (self.out_channels, self.kernel);
        let (hw, taps) = (h * w, c * r * r);
        let mut dx = Tensor::zeros(&xq.shape);
        // Straight-through quantizers: gradients pass the output/input/weight quantizers as is.
        // dW is summed per fixed group of images, then over groups in order: the result does
        // not depend on how rayon schedules the work (bit-identical resume).
        let per = n.div_ceil(n.clamp(1, 16));
        let parts: Vec<Vec<f32>> = dx
            .data
            .par_chunks_mut(per * c * hw)
            .zip(xq.data.par_chunks(per * c * hw))
            .zip(grad.data.par_chunks(per * k * hw))
            .map(|((dxg, xg), gg)| {
                let mut dw = vec![0.0f32; k * taps];
                for ((dxn, xn), gn) in dxg
                    .chunks_mut(c * hw)
                    .zip(xg.chunks(c * hw))
                    .zip(gg.chunks(k * hw))
                {
                    if r == 1 {
                        // dW += dY (K×HW) · xᵀ; dx = Wᵀ (C×K) · dY
                        sgemm(k, taps, hw, gn, Layout::N, xn, Layout::T, &mut dw, true, 1);
                        sgemm(taps, hw, k, &wq, Layout::T, gn, Layout::N, dxn, false, 1);
                    } else {
                        with_scratch(taps * hw, |cols, dcols| {
                            im2col(xn, c, h, w, r, cols);
                            sgemm(k, taps, hw, gn, Layout::N, cols, Layout::T, &mut dw, true, 1);
                            sgemm(taps, hw, k, &wq, Layout::T, gn, Layout::N, dcols, false, 1);
                            col2im(dcols, c, h, w, r, dxn);
                        });
                    }
                }
                dw
            })
            .collect();
        let dw = crate::par::ordered_sum(&parts, k * taps);
        self.weight
            .grad
            .data
            .iter_mut()
            .zip(&dw)
            .for_each(|(g, d)| *g += d);
        dx
    }

    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        f(&path(prefix, "weight"), &mut self.weight);
    }

    fn visit_buffers(&mut self, prefix: &str, f: BufferVisitor) {
        self.q_in.visit(prefix, "q_input", f);
        self.q_w.visit(prefix, "q_weight", f);
        self.q_out.visit(prefix, "q_output", f);
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        let (c, k, r, what) = (self.in_channels, self.out_channels, self.kernel, self.describe());
        // An unquantized layer runs as an FP32 convolution (Winograd computes the same function).
        Ok(if crate::export::is_int8(self.q_in.bits, &what)? {
            winq_ir::Op::ConvI8(self.quantized())
        } else {
            let weight = self.weight.value.data.clone();
            winq_ir::Op::ConvF32 { c, k, r, weight }
        })
    }

    fn describe(&self) -> String {
        format!(
            "conv{r}x{r} im2row {}->{} {}",
            self.in_channels,
            self.out_channels,
            self.precision,
            r = self.kernel
        )
    }
}
