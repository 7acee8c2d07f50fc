//! winq's training core: tensors, layers with explicit forward/backward, the fused
//! Winograd-aware convolution, optimizers and models.

pub mod container;
pub mod gradcheck;
pub mod layer;
pub mod tensor;

pub use container::{Residual, Sequential};
pub use layer::{param_count, path, zero_grads, Buffer, Layer, Mode, Param};
pub use tensor::Tensor;
