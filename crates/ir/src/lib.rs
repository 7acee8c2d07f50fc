//! The model IR: the operations a trained network exports and the integer engine runs.
//!
//! Training (`winq-nn`) produces an [`Op`] graph, the engine (`winq-engine`) compiles it, and
//! [`file`] stores it as a `.winq` deploy file. This crate owns the three things they must agree
//! on: the operations and their parameters, the one validity check ([`Op::output_shape`]), and
//! the file format. Quantized tensors are held as their integer codes with their scales, so the
//! engine needs no value-to-code conversion and a file round trip is exact.

pub mod atomic;
mod check;
pub mod choice;
pub mod file;

pub use atomic::{remove_stale_temporaries, write_atomic};
pub use check::Shape;
pub use choice::{Algo, ChoiceError, ConvChoice, Precision};
pub use file::{is_deploy_file, load, save, ModelInfo, FORMAT};

use serde::{Deserialize, Serialize};

/// Errors of the IR: an invalid graph, or a deploy file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    #[error("invalid graph: {0}")]
    Graph(String),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{path} is not a winq model (truncated or corrupt safetensors: {why})")]
    Corrupt { path: String, why: String },
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
}

/// A quantized im2row convolution (stride 1, "same" padding, odd kernel): weight codes
/// [K, C, r, r] with one scale per output channel or one for all, and the scales of its input
/// and output codes. Values are code × f32(scale), exactly what training's eval forward uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantConv {
    pub c: usize,
    pub k: usize,
    pub r: usize,
    #[serde(skip)]
    pub weight: Vec<i8>,
    pub s_w: Vec<f64>,
    pub s_in: f64,
    pub s_out: f64,
}

/// A quantized Winograd-aware F(m×m, 3×3) convolution: the codes of Aᵀ (m×t) and Bᵀ (t×t),
/// of the pre-transformed weights U = G g Gᵀ ([T][K][C], T = t² taps, one scale per tap or one
/// for all), and the scales of every quantizer on the way (input, Bᵀ d B, the Hadamard sum,
/// output; the Winograd-domain ones per tap or one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantWinograd {
    pub c: usize,
    pub k: usize,
    pub m: usize,
    #[serde(skip)]
    pub at: Vec<i8>,
    #[serde(skip)]
    pub bt: Vec<i8>,
    pub s_at: f64,
    pub s_bt: f64,
    #[serde(skip)]
    pub u: Vec<i8>,
    pub s_u: Vec<f64>,
    pub s_in: f64,
    pub s_v: Vec<f64>,
    pub s_m: Vec<f64>,
    pub s_out: f64,
}

impl QuantWinograd {
    /// Tile size t = m + 2.
    pub fn t(&self) -> usize {
        self.m + 2
    }
}

/// A 64-bit FNV-1a digest of named byte strings, in the order given (each name, a zero byte,
/// then its bytes), as 16 hex digits: what deploy files and checkpoints store to detect changed
/// or damaged tensors. Not cryptographic: it catches accidents, not attacks.
pub fn checksum<'a>(parts: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in parts {
        for &b in name.as_bytes().iter().chain([0u8].iter()).chain(bytes) {
            h ^= b as u64;
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:016x}")
}

/// The largest Winograd output tile the engine and the file accept.
pub const MAX_TILE: usize = 8;

/// One operation of an exported network. The graph's structure and scales serialize as JSON;
/// the tensors (fields skipped by serde) are stored beside it, see [`Op::tensors_mut`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// An unquantized convolution (the FP32 stem, FP32 layers): weights [K, C, r, r].
    ConvF32 {
        c: usize,
        k: usize,
        r: usize,
        #[serde(skip)]
        weight: Vec<f32>,
    },
    /// An unquantized Winograd convolution: Aᵀ (m×t), Bᵀ (t×t), U = G g Gᵀ [T][K][C].
    WinogradF32 {
        c: usize,
        k: usize,
        m: usize,
        #[serde(skip)]
        at: Vec<f32>,
        #[serde(skip)]
        bt: Vec<f32>,
        #[serde(skip)]
        u: Vec<f32>,
    },
    /// A quantized im2row convolution.
    ConvI8(QuantConv),
    /// A quantized Winograd-aware convolution.
    WinogradI8(QuantWinograd),
    /// Eval BatchNorm: y = scale·(x − mean) + bias per channel.
    #[serde(rename = "batchnorm")]
    BatchNorm {
        c: usize,
        #[serde(skip)]
        mean: Vec<f32>,
        #[serde(skip)]
        scale: Vec<f32>,
        #[serde(skip)]
        bias: Vec<f32>,
    },
    Relu,
    #[serde(rename = "maxpool2")]
    MaxPool2,
    GlobalAvgPool,
    /// y = x·Wᵀ + b, W [out, in].
    Linear {
        inputs: usize,
        outputs: usize,
        #[serde(skip)]
        weight: Vec<f32>,
        #[serde(skip)]
        bias: Vec<f32>,
    },
    Seq {
        ops: Vec<Op>,
    },
    /// body(x) + shortcut(x) (identity when None).
    Residual {
        body: Vec<Op>,
        shortcut: Option<Vec<Op>>,
    },
}

/// A tensor of an operation, borrowed for reading or filling.
pub enum TensorMut<'a> {
    F32(&'a mut Vec<f32>),
    Codes(&'a mut Vec<i8>),
}

impl Op {
    /// A BatchNorm op (its channel count is the parameters' length).
    pub fn batch_norm(mean: Vec<f32>, scale: Vec<f32>, bias: Vec<f32>) -> Op {
        Op::BatchNorm {
            c: mean.len(),
            mean,
            scale,
            bias,
        }
    }

    /// Number of operations, containers included.
    pub fn count(&self) -> usize {
        1 + self.children().iter().map(|o| o.count()).sum::<usize>()
    }

    /// The operations directly inside a container (body before shortcut).
    pub fn children(&self) -> Vec<&Op> {
        match self {
            Op::Seq { ops } => ops.iter().collect(),
            Op::Residual { body, shortcut } => body.iter().chain(shortcut.iter().flatten()).collect(),
            _ => Vec::new(),
        }
    }

    /// Every tensor of the graph with a name that says where it sits ("3.body.0.weight"):
    /// the deploy file stores and reloads them by these names.
    pub fn tensors_mut(&mut self) -> Vec<(String, TensorMut<'_>)> {
        let mut out = Vec::new();
        self.collect_tensors("", &mut out);
        out
    }

    fn collect_tensors<'a>(&'a mut self, prefix: &str, out: &mut Vec<(String, TensorMut<'a>)>) {
        let name = |field: &str| {
            if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            }
        };
        let nested = |ops: &'a mut Vec<Op>, part: String, out: &mut Vec<(String, TensorMut<'a>)>| {
            for (i, o) in ops.iter_mut().enumerate() {
                let p = if part.is_empty() {
                    i.to_string()
                } else {
                    format!("{part}.{i}")
                };
                o.collect_tensors(&p, out);
            }
        };
        match self {
            Op::ConvF32 { weight, .. } => out.push((name("weight"), TensorMut::F32(weight))),
            Op::WinogradF32 { at, bt, u, .. } => {
                out.push((name("at"), TensorMut::F32(at)));
                out.push((name("bt"), TensorMut::F32(bt)));
                out.push((name("u"), TensorMut::F32(u)));
            }
            Op::ConvI8(q) => out.push((name("weight"), TensorMut::Codes(&mut q.weight))),
            Op::WinogradI8(q) => {
                out.push((name("at"), TensorMut::Codes(&mut q.at)));
                out.push((name("bt"), TensorMut::Codes(&mut q.bt)));
                out.push((name("u"), TensorMut::Codes(&mut q.u)));
            }
            Op::BatchNorm {
                mean, scale, bias, ..
            } => {
                out.push((name("mean"), TensorMut::F32(mean)));
                out.push((name("scale"), TensorMut::F32(scale)));
                out.push((name("bias"), TensorMut::F32(bias)));
            }
            Op::Linear { weight, bias, .. } => {
                out.push((name("weight"), TensorMut::F32(weight)));
                out.push((name("bias"), TensorMut::F32(bias)));
            }
            Op::Relu | Op::MaxPool2 | Op::GlobalAvgPool => {}
            Op::Seq { ops } => nested(ops, prefix.to_string(), out),
            Op::Residual { body, shortcut } => {
                nested(body, name("body"), out);
                if let Some(s) = shortcut {
                    nested(s, name("shortcut"), out);
                }
            }
        }
    }
}
