//! Export of a trained network to the model IR (`winq_ir::Op`) the deploy engine runs. Every
//! value is taken from the layer's own eval path (quantized weights, pre-transformed Winograd
//! weights, scales), so the engine computes what the training model's eval forward computes.

/// Whether a layer of `bits` (None: unquantized) exports as an INT8 op (true) or an FP32 one
/// (false). The engine runs INT8 and FP32 layers: other bit-widths are refused (their codes
/// would clamp to a different range).
pub(crate) fn is_int8(bits: Option<u32>, what: &str) -> Result<bool, String> {
    match bits {
        Some(8) => Ok(true),
        Some(b) => Err(format!("{what}: the engine runs INT8 and FP32, not INT{b}")),
        None => Ok(false),
    }
}
