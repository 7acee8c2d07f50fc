//! Glue between layers and `winq-quant`: optional quantizers, applied in parallel chunks.

use crate::layer::{path, Buffer, BufferVisitor, Mode};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use winq_quant::{fake_quant, min_max, Quantizer};

const CHUNK: usize = 1 << 16;

/// Arithmetic of a layer: plain FP32, or fake-quantized to `bits` at every stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    Fp32,
    Int(u32),
}

impl Precision {
    pub fn quantizer(self) -> Option<Quantizer> {
        match self {
            Precision::Fp32 => None,
            Precision::Int(b) => Some(Quantizer::new(b)),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Precision::Fp32 => write!(f, "FP32"),
            Precision::Int(b) => write!(f, "INT{b}"),
        }
    }
}

/// Fake-quantizes `x` in place (observer updated in training mode); no-op without a
/// quantizer. Same result as `Quantizer::forward`, computed over rayon chunks.
pub fn apply(q: &mut Option<Quantizer>, x: &mut [f32], mode: Mode) {
    let Some(q) = q else { return };
    if mode == Mode::Train {
        let (lo, hi) = x.par_chunks(CHUNK).map(min_max).reduce(
            || (f64::INFINITY, f64::NEG_INFINITY),
            |a, b| (a.0.min(b.0), a.1.max(b.1)),
        );
        let (lo, hi) = if lo > hi { (0.0, 0.0) } else { (lo, hi) };
        q.observer.observe(lo, hi);
    }
    let (scale, bits) = (q.scale(), q.bits);
    x.par_chunks_mut(CHUNK).for_each(|c| fake_quant(c, scale, bits));
}

/// Exposes a quantizer's observed range as checkpoint buffers "<name>.min" / "<name>.max".
pub fn visit(q: &mut Option<Quantizer>, prefix: &str, name: &str, f: BufferVisitor) {
    if let Some(q) = q {
        let p = path(prefix, name);
        f(
            &format!("{p}.min"),
            Buffer::F64(std::slice::from_mut(&mut q.observer.min)),
        );
        f(
            &format!("{p}.max"),
            Buffer::F64(std::slice::from_mut(&mut q.observer.max)),
        );
    }
}
