//! Glue between layers and `winq-quant`: per-tensor or grouped quantizers applied over rayon
//! chunks.

use crate::layer::{path, Buffer, BufferVisitor, Mode};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use winq_quant::{fake_quant, min_max, observe};

const CHUNK: usize = 1 << 16;

pub use winq_ir::Precision;

/// Fake quantization of one tensor of a layer: off (FP32), per tensor, or with one scale per
/// group of a [outer][groups][inner] view (per output channel, per Winograd tap). Observers
/// follow the reference: the first batch copies its range, later ones move it by EMA (0.01).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorQuant {
    pub bits: Option<u32>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub momentum: f64,
}

impl TensorQuant {
    pub fn new(precision: Precision, groups: usize) -> TensorQuant {
        let bits = match precision {
            Precision::Fp32 => None,
            Precision::Int(b) => {
                winq_quant::qrange(b); // validates the bit-width
                Some(b)
            }
        };
        let groups = groups.max(1);
        TensorQuant {
            bits,
            min: vec![0.0; groups],
            max: vec![0.0; groups],
            momentum: 0.01,
        }
    }

    pub fn groups(&self) -> usize {
        self.min.len()
    }

    /// Current scale of each group.
    pub fn scales(&self) -> Vec<f64> {
        let bits = self.bits.unwrap_or(8);
        self.min
            .iter()
            .zip(&self.max)
            .map(|(&l, &h)| winq_quant::scale_for(l, h, bits))
            .collect()
    }

    /// Fake-quantizes `x`, viewed as [outer][groups][len / (outer·groups)], in place; updates
    /// the observers first in training mode. No-op for FP32.
    pub fn apply(&mut self, x: &mut [f32], mode: Mode, outer: usize) {
        let Some(bits) = self.bits else { return };
        if x.is_empty() {
            return;
        }
        let groups = self.groups();
        let slices = outer * groups;
        assert!(
            slices > 0 && x.len().is_multiple_of(slices),
            "quantizer groups do not divide the tensor"
        );
        let inner = x.len() / slices;
        // Work items: (group, sub-slice) pieces of at most CHUNK values, for rayon.
        let piece = inner.clamp(1, CHUNK);
        if mode == Mode::Train {
            let ranges: Vec<(usize, (f64, f64))> = x
                .par_chunks(inner)
                .enumerate()
                .flat_map(|(s, sl)| sl.par_chunks(piece).map(move |c| (s % groups, min_max(c))))
                .collect();
            self.observe_groups(ranges);
        }
        let scales = self.scales();
        x.par_chunks_mut(inner.max(1)).enumerate().for_each(|(s, sl)| {
            sl.chunks_mut(piece)
                .for_each(|c| fake_quant(c, scales[s % groups], bits))
        });
    }

    /// Merges (group, (min, max)) ranges of pieces of a batch per group and moves each group's
    /// observer (an empty group observes [0, 0]).
    fn observe_groups(&mut self, ranges: Vec<(usize, (f64, f64))>) {
        let mut agg = vec![(f64::INFINITY, f64::NEG_INFINITY); self.groups()];
        for (g, (lo, hi)) in ranges {
            agg[g] = (agg[g].0.min(lo), agg[g].1.max(hi));
        }
        for (g, (lo, hi)) in agg.into_iter().enumerate() {
            let (lo, hi) = if lo > hi { (0.0, 0.0) } else { (lo, hi) };
            observe(&mut self.min[g], &mut self.max[g], lo, hi, self.momentum);
        }
    }

    /// Quantizes exact integer accumulators as the integer engine requantizes them. The real
    /// value of x[i] is x[i]·in_scale[g]; training mode observes those real values; then x[i]
    /// becomes the code round_half_even(clamp(x[i]·mul)), mul = (in_scale[g] / s) as f32 (the
    /// engine's multiplier), still unscaled — `scale_codes` turns codes into values. `x` is
    /// [outer][G][inner] with G the number of input scales or of groups (1 or equal).
    /// Returns the scales. Needs a quantized tensor.
    pub fn requant_codes(&mut self, x: &mut [f32], in_scale: &[f64], mode: Mode, outer: usize) -> Vec<f64> {
        let bits = self.bits.expect("requant_codes on an FP32 tensor");
        let (gq, gi) = (self.groups(), in_scale.len());
        let g = gq.max(gi);
        assert!(
            (gq == 1 || gq == g) && (gi == 1 || gi == g),
            "group counts differ"
        );
        let inner = x.len() / (outer * g).max(1);
        assert_eq!(inner * outer * g, x.len(), "groups do not divide the tensor");
        let pick = |n: usize, s: usize| if n == 1 { 0 } else { s % g };
        if inner == 0 {
            return self.scales();
        }
        if mode == Mode::Train {
            let ranges: Vec<(usize, (f64, f64))> = x
                .par_chunks(inner)
                .enumerate()
                .map(|(s, sl)| {
                    let (lo, hi) = min_max(sl);
                    (
                        pick(gq, s),
                        (lo * in_scale[pick(gi, s)], hi * in_scale[pick(gi, s)]),
                    )
                })
                .collect();
            self.observe_groups(ranges);
        }
        let scales = self.scales();
        let (qmin, qmax) = winq_quant::qrange(bits);
        let (lo, hi) = (qmin as f32, qmax as f32);
        x.par_chunks_mut(inner).enumerate().for_each(|(s, sl)| {
            let mul = winq_quant::codes::multiplier(in_scale[pick(gi, s)], scales[pick(gq, s)]);
            winq_quant::round_codes(sl, mul, lo, hi);
        });
        scales
    }

    /// Codes (from `requant_codes`) → values code·s, with the same group layout.
    pub fn scale_codes(x: &mut [f32], scales: &[f64], outer: usize) {
        Self::per_group(x, scales, outer, winq_quant::codes::codes_to_values_f32);
    }

    /// Runs `f(slice, scale)` over the [outer][G][inner] groups of x in parallel.
    fn per_group(x: &mut [f32], scales: &[f64], outer: usize, f: fn(&mut [f32], f32)) {
        let g = scales.len();
        let inner = x.len() / (outer * g).max(1);
        if inner == 0 {
            return;
        }
        x.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(s, sl)| f(sl, scales[s % g] as f32));
    }

    /// The integer codes of values this quantizer produced (code·s → code, exact).
    pub fn codes_of(x: &mut [f32], scales: &[f64], outer: usize) {
        Self::per_group(x, scales, outer, winq_quant::codes::values_to_codes_f32);
    }

    /// Exposes the observed ranges as checkpoint buffers "<name>.min" / "<name>.max".
    pub fn visit(&mut self, prefix: &str, name: &str, f: BufferVisitor) {
        if self.bits.is_some() {
            let p = path(prefix, name);
            f(&format!("{p}.min"), Buffer::F64(&mut self.min));
            f(&format!("{p}.max"), Buffer::F64(&mut self.max));
        }
    }
}

/// Whether weights and Winograd-domain tensors get one scale each or one per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Granularity {
    /// One weight scale per output channel.
    pub per_channel_weights: bool,
    /// One scale per tile position for G g Gᵀ, Bᵀ d B and the Hadamard sum.
    pub per_tap: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use winq_quant::{fake_quant_dynamic, fake_quant_dynamic_groups, Groups};

    fn data(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919) % 1013) as f32 / 1013.0 - 0.3) * (1.0 + (i % 5) as f32))
            .collect()
    }

    #[test]
    fn per_tensor_equals_dynamic_quantization_on_first_batch() {
        for len in [1, 1000, 200_000] {
            let x = data(len);
            let mut a = x.clone();
            TensorQuant::new(Precision::Int(8), 1).apply(&mut a, Mode::Train, 1);
            let mut b = x.clone();
            fake_quant_dynamic(&mut b, 8);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn grouped_equals_per_group_dynamic_quantization() {
        let (outer, groups, inner) = (3, 5, 7000);
        let x: Vec<f32> = data(outer * groups * inner)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1 + (i / inner) % groups) as f32)
            .collect();
        let mut a = x.clone();
        let mut q = TensorQuant::new(Precision::Int(6), groups);
        q.apply(&mut a, Mode::Train, outer);
        let mut b = x.clone();
        let scales = fake_quant_dynamic_groups(&mut b, Groups { outer, groups, inner }, 6);
        assert_eq!(a, b);
        assert_eq!(q.scales(), scales);
        assert!(scales.windows(2).any(|w| w[0] != w[1]), "groups should differ");
        // Second batch: EMA per group, eval leaves the ranges alone.
        let before = q.clone();
        let mut c = x.iter().map(|v| v * 2.0).collect::<Vec<_>>();
        q.apply(&mut c, Mode::Train, outer);
        for g in 0..groups {
            let want = before.max[g] + 0.01 * (2.0 * before.max[g] - before.max[g]);
            assert!((q.max[g] - want).abs() < 1e-9);
        }
        let frozen = q.clone();
        q.apply(&mut c, Mode::Eval, outer);
        assert_eq!(q, frozen);
    }

    #[test]
    fn fp32_is_a_no_op() {
        let x = data(100);
        let mut a = x.clone();
        TensorQuant::new(Precision::Fp32, 1).apply(&mut a, Mode::Train, 1);
        assert_eq!(a, x);
    }
}
