//! The inference engine: compiles an exported network (`winq_nn::export::Op`) into kernels —
//! INT8 im2row and INT8 Winograd convolutions with packed weights and pre-transformed Winograd
//! weights prepared once, FP32 convolutions for unquantized layers — and runs it.
//!
//! Activations between convolutions stay f32 here, exactly as the training model's eval
//! forward: each INT8 convolution quantizes its input with its own input scale, computes in
//! integers, and returns code × output scale; BatchNorm, ReLU, pooling and residual adds are
//! FP32 as in training. (Fusing BatchNorm/ReLU into requantization is the next step.)

pub mod deploy;

use deploy::codes;
use rayon::prelude::*;
use winq_kernels::gemm::{sgemm, Op as GemmOp};
use winq_kernels::im2col::im2col;
use winq_kernels::int8::conv::Im2rowI8;
use winq_kernels::int8::to_code;
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

/// An INT8 convolution kernel prepared once at compile time.
enum Int8Kernel {
    Im2row(Im2rowI8),
    Winograd(WinogradI8),
}

impl Int8Kernel {
    fn out_channels(&self) -> usize {
        match self {
            Int8Kernel::Im2row(l) => l.k,
            Int8Kernel::Winograd(l) => l.spec().k,
        }
    }

    fn forward(&self, x: &[i8], n: usize, h: usize, w: usize) -> Vec<i8> {
        match self {
            Int8Kernel::Im2row(l) => l.forward(x, n, h, w),
            Int8Kernel::Winograd(l) => l.forward(x, n, h, w),
        }
    }
}

/// A compiled operation: INT8 convolutions hold their prepared kernels; everything else runs
/// straight from its exported data.
enum Node {
    Int8 {
        kernel: Int8Kernel,
        s_in: f32,
        s_out: f32,
    },
    Seq(Vec<Node>),
    Residual {
        body: Vec<Node>,
        shortcut: Option<Vec<Node>>,
    },
    Plain(Op),
}

/// A compiled network.
pub struct Net {
    root: Node,
}

fn compile_all(ops: &[Op]) -> Result<Vec<Node>, String> {
    ops.iter().map(compile).collect()
}

fn compile(op: &Op) -> Result<Node, String> {
    Ok(match op {
        Op::ConvI8(e) => {
            let qw = codes(&e.weight, &e.s_w);
            let layer = Im2rowI8::new(
                &qw,
                e.in_channels,
                e.out_channels,
                e.kernel,
                e.s_in,
                &e.s_w,
                e.s_out,
            );
            Node::Int8 {
                kernel: Int8Kernel::Im2row(layer),
                s_in: e.s_in as f32,
                s_out: e.s_out as f32,
            }
        }
        Op::WinogradI8(e) => {
            let t = e.m + 2;
            if e.at.len() != e.m * t {
                return Err(format!(
                    "Winograd layer: Aᵀ has {} values, F{} needs {}",
                    e.at.len(),
                    e.m,
                    e.m * t
                ));
            }
            let spec = WinogradSpec {
                c: e.in_channels,
                k: e.out_channels,
                m: e.m,
                qa: codes(&e.at, &[e.s_at]).iter().map(|&v| v as i32).collect(),
                qb: codes(&e.bt, &[e.s_bt]).iter().map(|&v| v as i32).collect(),
                s_a: e.s_at,
                s_b: e.s_bt,
                qu: codes(&e.u, &e.s_u),
                s_u: e.s_u.clone(),
                s_in: e.s_in,
                s_v: e.s_v.clone(),
                s_m: e.s_m.clone(),
                s_out: e.s_out,
            };
            Node::Int8 {
                kernel: Int8Kernel::Winograd(WinogradI8::new(spec)),
                s_in: e.s_in as f32,
                s_out: e.s_out as f32,
            }
        }
        Op::Seq(v) => Node::Seq(compile_all(v)?),
        Op::Residual { body, shortcut } => Node::Residual {
            body: compile_all(body)?,
            shortcut: shortcut.as_deref().map(compile_all).transpose()?,
        },
        other => Node::Plain(other.clone()),
    })
}

fn run_seq(nodes: &[Node], x: Act) -> Act {
    nodes.iter().fold(x, |a, n| run(n, a))
}

fn run(node: &Node, x: Act) -> Act {
    match node {
        Node::Int8 { kernel, s_in, s_out } => {
            // Quantized as the training model's fake quantizer does (f32 division).
            let q: Vec<i8> = x.data.iter().map(|&v| to_code(v / s_in)).collect();
            let y = kernel.forward(&q, x.n, x.h, x.w);
            Act {
                n: x.n,
                c: kernel.out_channels(),
                h: x.h,
                w: x.w,
                data: y.iter().map(|&v| v as f32 * s_out).collect(),
            }
        }
        Node::Seq(v) => run_seq(v, x),
        Node::Residual { body, shortcut } => {
            let sc = match shortcut {
                Some(s) => run_seq(s, x.clone()),
                None => x.clone(),
            };
            let mut y = run_seq(body, x);
            y.data.iter_mut().zip(&sc.data).for_each(|(a, b)| *a += b);
            y
        }
        Node::Plain(op) => run_plain(op, x),
    }
}

/// The FP32 operations, computed as the training model's eval forward computes them.
fn run_plain(op: &Op, x: Act) -> Act {
    let Act { n, c, h, w, data } = x;
    let hw = h * w;
    match op {
        Op::ConvF32 { c: ci, k, r, weight } => {
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
        Op::BatchNorm { mean, scale, bias } => {
            let mut y = data;
            for (i, plane) in y.chunks_mut(hw).enumerate() {
                let ch = i % c;
                for v in plane {
                    *v = scale[ch] * (*v - mean[ch]) + bias[ch];
                }
            }
            Act { n, c, h, w, data: y }
        }
        Op::Relu => Act {
            n,
            c,
            h,
            w,
            data: data
                .into_iter()
                .map(|v| if v > 0.0 || v.is_nan() { v } else { 0.0 })
                .collect(),
        },
        Op::MaxPool2 => {
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
        Op::GlobalAvgPool => Act {
            n,
            c,
            h: 1,
            w: 1,
            data: data
                .chunks(hw)
                .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
                .collect(),
        },
        Op::Linear {
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
        // Compiled into Int8 / Seq / Residual nodes, never kept as plain operations.
        Op::ConvI8(_) | Op::WinogradI8(_) | Op::Seq(_) | Op::Residual { .. } => {
            unreachable!("container or INT8 operation left uncompiled")
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
