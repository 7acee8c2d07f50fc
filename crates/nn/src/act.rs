//! Element-wise activations.

use crate::export::ExportError;
use crate::layer::{Layer, Mode};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Tensors with at least this many values are processed on rayon's pool.
const PAR_MIN: usize = 1 << 15;
const CHUNK: usize = 1 << 12;

/// max(x, 0). Backward passes the gradient where x > 0 (zero at x = 0, as PyTorch).
/// NaN inputs propagate rather than being clamped to 0, so divergence stays visible.
/// Both modes cache the mask, so backward works after either.
#[derive(Default)]
pub struct Relu {
    mask: Vec<bool>,
    shape: Option<Vec<usize>>,
}

impl Relu {
    pub fn new() -> Relu {
        Relu::default()
    }
}

fn relu_chunk(y: &mut [f32], mask: &mut [bool], x: &[f32]) {
    for ((o, m), &v) in y.iter_mut().zip(mask.iter_mut()).zip(x) {
        *m = v > 0.0;
        // `v <= 0` is false for NaN, which therefore passes through.
        *o = if v <= 0.0 { 0.0 } else { v };
    }
}

fn mask_chunk(dx: &mut [f32], mask: &[bool], g: &[f32]) {
    for ((o, &m), &v) in dx.iter_mut().zip(mask).zip(g) {
        *o = if m { v } else { 0.0 };
    }
}

impl Layer for Relu {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let mut y = Tensor::zeros(&x.shape);
        self.mask.resize(x.len(), false);
        if x.len() >= PAR_MIN {
            y.data
                .par_chunks_mut(CHUNK)
                .zip(self.mask.par_chunks_mut(CHUNK))
                .zip(x.data.par_chunks(CHUNK))
                .for_each(|((o, m), v)| relu_chunk(o, m, v));
        } else {
            relu_chunk(&mut y.data, &mut self.mask, &x.data);
        }
        self.shape = Some(x.shape.clone());
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let shape = self
            .shape
            .take()
            .expect("Relu::backward called without a forward");
        assert_eq!(grad.shape, shape, "Relu: gradient shape differs from input");
        let mut dx = Tensor::zeros(&shape);
        if grad.len() >= PAR_MIN {
            dx.data
                .par_chunks_mut(CHUNK)
                .zip(self.mask.par_chunks(CHUNK))
                .zip(grad.data.par_chunks(CHUNK))
                .for_each(|((o, m), g)| mask_chunk(o, m, g));
        } else {
            mask_chunk(&mut dx.data, &self.mask, &grad.data);
        }
        dx
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        Ok(winq_ir::Op::Relu)
    }

    fn describe(&self) -> String {
        "ReLU".into()
    }
}
