//! winq's training core: tensors, layers with explicit forward/backward, the fused
//! Winograd-aware convolution, optimizers and models.

pub mod container;
pub mod conv;
pub mod quant;
pub mod gradcheck;
pub mod layer;
pub mod tensor;
pub mod wa_conv;

pub use container::{Residual, Sequential};
pub use conv::Conv2d;
pub use quant::Precision;
pub use layer::{param_count, path, zero_grads, Buffer, Layer, Mode, Param};
pub use tensor::Tensor;
pub use wa_conv::WinogradConv2d;
