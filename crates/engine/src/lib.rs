//! The inference engine: compiles an exported network (`winq_nn::export::Op`) into kernels —
//! INT8 im2row and INT8 Winograd convolutions with packed weights and pre-transformed Winograd
//! weights prepared once, FP32 convolutions for unquantized layers — and runs it.
//!
//! Activations between convolutions stay f32 here, exactly as the training model's eval
//! forward: each INT8 convolution quantizes its input with its own input scale, computes in
//! integers, and returns code × output scale; BatchNorm, ReLU, pooling and residual adds are
//! FP32 as in training. (Fusing BatchNorm/ReLU into requantization is the next step.)

pub mod deploy;

use rayon::prelude::*;
use winq_kernels::gemm::{sgemm, Op as GemmOp};
use winq_kernels::im2col::im2col;
use winq_kernels::int8::conv::Im2rowI8;
use winq_kernels::int8::winograd::{WinogradI8, WinogradSpec};
use winq_nn::export::Op;

/// An activation tensor (NCHW, or [N, F] after pooling with h = w = 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

enum Node {
    ConvF32 {
        c: usize,
        k: usize,
        r: usize,
        weight: Vec<f32>,
    },
    ConvI8 {
        layer: Im2rowI8,
        s_in: f32,
        s_out: f32,
    },
    WinogradI8 {
        layer: WinogradI8,
        s_in: f32,
        s_out: f32,
    },
    BatchNorm {
        mean: Vec<f32>,
        scale: Vec<f32>,
        bias: Vec<f32>,
    },
    Relu,
    MaxPool2,
    GlobalAvgPool,
    Linear {
        inputs: usize,
        outputs: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    Seq(Vec<Node>),
    Residual {
        body: Vec<Node>,
        shortcut: Option<Vec<Node>>,
    },
}

/// A compiled network.
pub struct Net {
    root: Node,
}

fn code(v: f32, s: f64) -> i8 {
    (v as f64 / s).round_ties_even().clamp(-128.0, 127.0) as i8
}

fn compile(op: &Op) -> Result<Node, String> {
    Ok(match op {
        Op::ConvF32 { c, k, r, weight } => Node::ConvF32 {
            c: *c,
            k: *k,
            r: *r,
            weight: weight.clone(),
        },
        Op::ConvI8(e) => {
            let k = e.out_channels;
            let per = e.weight.len() / e.s_w.len();
            let qw: Vec<i8> = e
                .weight
                .iter()
                .enumerate()
                .map(|(i, &v)| code(v, e.s_w[i / per]))
                .collect();
            let layer = Im2rowI8::new(&qw, e.in_channels, k, e.kernel, e.s_in, &e.s_w, e.s_out);
            Node::ConvI8 {
                layer,
                s_in: e.s_in as f32,
                s_out: e.s_out as f32,
            }
        }
        Op::WinogradI8(e) => {
            let t = e.m + 2;
            let per_u = e.u.len() / e.s_u.len();
            let spec = WinogradSpec {
                c: e.in_channels,
                k: e.out_channels,
                m: e.m,
                qa: e.at.iter().map(|&v| code(v, e.s_at) as i32).collect(),
                qb: e.bt.iter().map(|&v| code(v, e.s_bt) as i32).collect(),
                s_a: e.s_at,
                s_b: e.s_bt,
                qu: e
                    .u
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| code(v, e.s_u[i / per_u]))
                    .collect(),
                s_u: e.s_u.clone(),
                s_in: e.s_in,
                s_v: e.s_v.clone(),
                s_m: e.s_m.clone(),
                s_out: e.s_out,
            };
            if spec.qa.len() != e.m * t {
                return Err(format!(
                    "Winograd layer: Aᵀ has {} values, F{} needs {}",
                    spec.qa.len(),
                    e.m,
                    e.m * t
                ));
            }
            Node::WinogradI8 {
                layer: WinogradI8::new(spec),
                s_in: e.s_in as f32,
                s_out: e.s_out as f32,
            }
        }
        Op::BatchNorm { mean, scale, bias } => Node::BatchNorm {
            mean: mean.clone(),
            scale: scale.clone(),
            bias: bias.clone(),
        },
        Op::Relu => Node::Relu,
        Op::MaxPool2 => Node::MaxPool2,
        Op::GlobalAvgPool => Node::GlobalAvgPool,
        Op::Linear {
            inputs,
            outputs,
            weight,
            bias,
        } => Node::Linear {
            inputs: *inputs,
            outputs: *outputs,
            weight: weight.clone(),
            bias: bias.clone(),
        },
        Op::Seq(v) => Node::Seq(v.iter().map(compile).collect::<Result<_, _>>()?),
        Op::Residual { body, shortcut } => Node::Residual {
            body: body.iter().map(compile).collect::<Result<_, _>>()?,
            shortcut: shortcut
                .as_ref()
                .map(|s| s.iter().map(compile).collect::<Result<_, _>>())
                .transpose()?,
        },
    })
}

/// Quantizes activations as the training model's fake quantizer does (f32 division).
fn quantize(x: &[f32], s: f32) -> Vec<i8> {
    x.iter().map(|&v| winq_kernels::int8::to_code(v / s)).collect()
}

fn run_seq(nodes: &[Node], x: Act) -> Act {
    nodes.iter().fold(x, |a, n| run(n, a))
}

fn run(node: &Node, x: Act) -> Act {
    let Act { n, c, h, w, data } = x;
    let hw = h * w;
    match node {
        Node::ConvF32 { c: ci, k, r, weight } => {
            assert_eq!(c, *ci, "channel mismatch");
            let taps = ci * r * r;
            let mut cols = vec![0.0f32; taps * hw];
            let mut y = vec![0.0f32; n * k * hw];
            for ni in 0..n {
                im2col(&data[ni * c * hw..(ni + 1) * c * hw], c, h, w, *r, &mut cols);
                sgemm(
                    *k,
                    hw,
                    taps,
                    weight,
                    GemmOp::N,
                    &cols,
                    GemmOp::N,
                    &mut y[ni * k * hw..],
                    false,
                    1,
                );
            }
            Act {
                n,
                c: *k,
                h,
                w,
                data: y,
            }
        }
        Node::ConvI8 { layer, s_in, s_out } => {
            let q = layer.forward(&quantize(&data, *s_in), n, h, w);
            Act {
                n,
                c: layer.k,
                h,
                w,
                data: q.iter().map(|&v| v as f32 * s_out).collect(),
            }
        }
        Node::WinogradI8 { layer, s_in, s_out } => {
            let q = layer.forward(&quantize(&data, *s_in), n, h, w);
            Act {
                n,
                c: layer.spec().k,
                h,
                w,
                data: q.iter().map(|&v| v as f32 * s_out).collect(),
            }
        }
        Node::BatchNorm { mean, scale, bias } => {
            let mut y = data;
            for (i, plane) in y.chunks_mut(hw).enumerate() {
                let ch = i % c;
                for v in plane {
                    *v = scale[ch] * (*v - mean[ch]) + bias[ch];
                }
            }
            Act { n, c, h, w, data: y }
        }
        Node::Relu => Act {
            n,
            c,
            h,
            w,
            data: data
                .into_iter()
                .map(|v| if v > 0.0 || v.is_nan() { v } else { 0.0 })
                .collect(),
        },
        Node::MaxPool2 => {
            let (ho, wo) = (h / 2, w / 2);
            let mut y = vec![0.0f32; n * c * ho * wo];
            for (pi, plane) in data.chunks(hw).enumerate() {
                for i in 0..ho {
                    for j in 0..wo {
                        let v = [
                            plane[2 * i * w + 2 * j],
                            plane[2 * i * w + 2 * j + 1],
                            plane[(2 * i + 1) * w + 2 * j],
                            plane[(2 * i + 1) * w + 2 * j + 1],
                        ];
                        y[pi * ho * wo + i * wo + j] = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    }
                }
            }
            Act {
                n,
                c,
                h: ho,
                w: wo,
                data: y,
            }
        }
        Node::GlobalAvgPool => Act {
            n,
            c,
            h: 1,
            w: 1,
            data: data
                .chunks(hw)
                .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
                .collect(),
        },
        Node::Linear {
            inputs,
            outputs,
            weight,
            bias,
        } => {
            assert_eq!(c * hw, *inputs, "Linear input size");
            let mut y: Vec<f32> = (0..n).flat_map(|_| bias.iter().copied()).collect();
            sgemm(
                n,
                *outputs,
                *inputs,
                &data,
                GemmOp::N,
                weight,
                GemmOp::T,
                &mut y,
                true,
                1,
            );
            Act {
                n,
                c: *outputs,
                h: 1,
                w: 1,
                data: y,
            }
        }
        Node::Seq(v) => run_seq(v, Act { n, c, h, w, data }),
        Node::Residual { body, shortcut } => {
            let x = Act { n, c, h, w, data };
            let sc = match shortcut {
                Some(s) => run_seq(s, x.clone()),
                None => x.clone(),
            };
            let mut y = run_seq(body, x);
            y.data.iter_mut().zip(&sc.data).for_each(|(a, b)| *a += b);
            y
        }
    }
}

impl Net {
    /// Prepares every kernel (weight packing, Winograd weight codes) once.
    pub fn compile(op: &Op) -> Result<Net, String> {
        Ok(Net { root: compile(op)? })
    }

    /// Runs the network on an f32 input (N×C×H×W); returns the outputs (N×classes logits).
    /// Images are independent, so a batch is split over rayon's threads (one thread: in order).
    pub fn forward(&self, x: Act) -> Act {
        let threads = rayon::current_num_threads();
        if x.n < 2 || threads < 2 {
            return run(&self.root, x);
        }
        let per = x.n.div_ceil(threads);
        let img = x.c * x.h * x.w;
        let parts: Vec<Act> = x
            .data
            .par_chunks(per * img)
            .map(|d| {
                run(
                    &self.root,
                    Act {
                        n: d.len() / img,
                        c: x.c,
                        h: x.h,
                        w: x.w,
                        data: d.to_vec(),
                    },
                )
            })
            .collect();
        let (c, h, w) = (parts[0].c, parts[0].h, parts[0].w);
        Act {
            n: x.n,
            c,
            h,
            w,
            data: parts.into_iter().flat_map(|p| p.data).collect(),
        }
    }
}
