//! Export of a trained network to the model IR (`winq_ir::Op`) the deploy engine runs. Every
//! value is taken from the layer's own eval path (quantized weights, pre-transformed Winograd
//! weights, scales), so the engine computes what the training model's eval forward computes.

/// Why a layer cannot be exported to the model IR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The layer (its one-line description) has no operation in the IR.
    #[error("{0} cannot be exported")]
    Unsupported(String),
    /// The layer is quantized to a bit-width the engine does not run.
    #[error("{layer}: the engine runs INT8 and FP32, not INT{bits}")]
    Bits { layer: String, bits: u32 },
}

/// Whether a layer of `bits` (None: unquantized) exports as an INT8 op (true) or an FP32 one
/// (false). The engine runs INT8 and FP32 layers: other bit-widths are refused (their codes
/// would clamp to a different range).
pub(crate) fn is_int8(bits: Option<u32>, what: &str) -> Result<bool, ExportError> {
    match bits {
        Some(8) => Ok(true),
        Some(b) => Err(ExportError::Bits {
            layer: what.to_string(),
            bits: b,
        }),
        None => Ok(false),
    }
}
