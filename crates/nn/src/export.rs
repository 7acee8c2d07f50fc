//! Export of a trained network to the operations the deploy engine runs. Every value is taken
//! from the layer's own eval path (quantized weights, pre-transformed Winograd weights, scales),
//! so the engine computes what the training model's eval forward computes.

use crate::conv::ConvExport;
use crate::wa_conv::WinogradExport;

/// One operation of an exported network.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// An unquantized convolution (the FP32 stem, FP32 layers): weights [K, C, r, r].
    ConvF32 {
        c: usize,
        k: usize,
        r: usize,
        weight: Vec<f32>,
    },
    /// An unquantized Winograd convolution: Aᵀ (m×t), Bᵀ (t×t), U = G g Gᵀ [T][K][C].
    WinogradF32 {
        c: usize,
        k: usize,
        m: usize,
        at: Vec<f32>,
        bt: Vec<f32>,
        u: Vec<f32>,
    },
    /// A quantized im2row convolution.
    ConvI8(ConvExport),
    /// A quantized Winograd-aware convolution.
    WinogradI8(WinogradExport),
    /// Eval BatchNorm: y = scale·(x − mean) + bias per channel.
    BatchNorm {
        mean: Vec<f32>,
        scale: Vec<f32>,
        bias: Vec<f32>,
    },
    Relu,
    MaxPool2,
    GlobalAvgPool,
    /// y = x·Wᵀ + b, W [out, in].
    Linear {
        inputs: usize,
        outputs: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
    Seq(Vec<Op>),
    /// body(x) + shortcut(x) (identity when None).
    Residual {
        body: Vec<Op>,
        shortcut: Option<Vec<Op>>,
    },
}

impl Op {
    /// Number of operations, containers included.
    pub fn count(&self) -> usize {
        match self {
            Op::Seq(v) => 1 + v.iter().map(Op::count).sum::<usize>(),
            Op::Residual { body, shortcut } => {
                1 + body.iter().map(Op::count).sum::<usize>()
                    + shortcut.iter().flatten().map(Op::count).sum::<usize>()
            }
            _ => 1,
        }
    }
}

/// The engine runs INT8 and FP32 layers: an exported quantized layer of other bits is refused
/// (its codes would clamp to a different range).
pub fn int8_or_fp32<E>(
    exported: Option<E>,
    bits: impl Fn(&E) -> u32,
    int8: impl FnOnce(E) -> Op,
    fp32: impl FnOnce() -> Op,
    what: &str,
) -> Result<Op, String> {
    match exported {
        Some(e) if bits(&e) == 8 => Ok(int8(e)),
        Some(e) => Err(format!(
            "{what}: the engine runs INT8 and FP32, not INT{}",
            bits(&e)
        )),
        None => Ok(fp32()),
    }
}
