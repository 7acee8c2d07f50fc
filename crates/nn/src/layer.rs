use crate::export::ExportError;
use crate::tensor::Tensor;

/// Training (batch statistics, observers update, activations cached) or evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A learnable tensor and its accumulated gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub value: Tensor,
    pub grad: Tensor,
    /// Whether L2 weight decay applies (the reference decays everything, transforms included).
    pub decay: bool,
}

impl Param {
    pub fn new(value: Tensor) -> Param {
        let grad = Tensor::zeros(&value.shape);
        Param {
            value,
            grad,
            decay: true,
        }
    }

    pub fn zero_grad(&mut self) {
        self.grad.data.fill(0.0);
    }
}

/// Non-learnable state that checkpoints must keep (BN running statistics, quantizer ranges).
pub enum Buffer<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

/// Visitors receive a dotted path ("stage1.0.conv1.weight") and the item.
pub type ParamVisitor<'a> = &'a mut dyn FnMut(&str, &mut Param);
pub type BufferVisitor<'a> = &'a mut dyn FnMut(&str, Buffer<'_>);

/// A layer with an explicit forward and backward.
///
/// `forward` in `Mode::Train` caches what `backward` needs; `backward` takes dL/d(output),
/// accumulates parameter gradients and returns dL/d(input). One backward per forward.
pub trait Layer: Send {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor;
    fn backward(&mut self, grad: &Tensor) -> Tensor;
    fn visit_params(&mut self, _prefix: &str, _f: ParamVisitor) {}
    fn visit_buffers(&mut self, _prefix: &str, _f: BufferVisitor) {}
    /// One line for the model summary: kind and configuration.
    fn describe(&self) -> String;
    /// The operation the deploy engine runs for this layer (eval behaviour).
    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        Err(ExportError::Unsupported(self.describe()))
    }
    /// Sub-layers, for summaries (containers override).
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        Vec::new()
    }
}

/// Joins a prefix and a name with a dot (an empty name adds nothing, so containers can be
/// transparent in paths).
pub fn path(prefix: &str, name: &str) -> String {
    if name.is_empty() {
        prefix.to_string()
    } else if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Sets every parameter gradient of a layer to zero.
pub fn zero_grads(layer: &mut dyn Layer) {
    layer.visit_params("", &mut |_, p| p.zero_grad());
}

/// Total number of learnable values.
pub fn param_count(layer: &mut dyn Layer) -> usize {
    let mut n = 0;
    layer.visit_params("", &mut |_, p| n += p.value.len());
    n
}
