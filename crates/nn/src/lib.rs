//! winq's training core: tensors, layers with explicit forward/backward, the fused
//! Winograd-aware convolution, optimizers and models.

pub mod act;
pub mod container;
pub mod conv;
pub mod export;
pub mod gradcheck;
pub mod layer;
pub mod linear;
pub mod loss;
pub mod models;
pub mod norm;
pub mod optim;
pub mod par;
pub mod pool;
pub mod quant;
pub mod schedule;
pub mod tensor;
pub mod wa_conv;

pub use act::Relu;
pub use container::{Residual, Sequential};
pub use conv::Conv2d;
pub use export::ExportError;
pub use layer::{param_count, path, zero_grads, Buffer, Layer, Mode, Param};
pub use linear::Linear;
pub use loss::{softmax_cross_entropy, LossError};
pub use models::ModelError;
pub use norm::BatchNorm2d;
pub use optim::{Adam, OptimError, Optimizer, Sgd};
pub use pool::{GlobalAvgPool, MaxPool2};
pub use quant::Precision;
pub use schedule::{LrSchedule, Schedule};
pub use tensor::Tensor;
pub use wa_conv::WinogradConv2d;
