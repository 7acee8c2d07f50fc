use crate::{fake_quant, min_max, scale_for, Real};
use serde::{Deserialize, Serialize};

/// Running min/max observer: the first batch copies its range, later batches move it by an
/// exponential moving average (new = old + momentum · (batch - old)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observer {
    pub min: f64,
    pub max: f64,
    pub momentum: f64,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            min: 0.0,
            max: 0.0,
            momentum: 0.01,
        }
    }
}

impl Observer {
    /// As the reference, "never observed" is min == max (both start at 0).
    pub fn is_empty(&self) -> bool {
        self.min == self.max
    }

    pub fn observe(&mut self, batch_min: f64, batch_max: f64) {
        observe(&mut self.min, &mut self.max, batch_min, batch_max, self.momentum);
    }
}

/// The observer update on a (min, max) pair stored elsewhere (grouped quantizers keep them in
/// flat vectors so checkpoints can store them as tensors).
pub fn observe(min: &mut f64, max: &mut f64, batch_min: f64, batch_max: f64, momentum: f64) {
    if *min == *max {
        *min = batch_min;
        *max = batch_max;
    } else {
        *min += momentum * (batch_min - *min);
        *max += momentum * (batch_max - *max);
    }
}

/// A per-tensor fake quantizer with its observer. In training mode it updates the observer
/// from the tensor before quantizing; in eval mode it uses the stored range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantizer {
    pub bits: u32,
    pub observer: Observer,
}

impl Quantizer {
    pub fn new(bits: u32) -> Self {
        crate::qrange(bits); // validates the bit-width
        Quantizer {
            bits,
            observer: Observer::default(),
        }
    }

    pub fn scale(&self) -> f64 {
        scale_for(self.observer.min, self.observer.max, self.bits)
    }

    /// Fake-quantizes `x` in place and returns the scale used. The gradient of this
    /// operation is the identity (straight-through), so backward passes need nothing from it.
    pub fn forward<T: Real>(&mut self, x: &mut [T], training: bool) -> f64 {
        if training {
            let (lo, hi) = min_max(x);
            self.observer.observe(lo, hi);
        }
        let scale = self.scale();
        fake_quant(x, scale, self.bits);
        scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observer_over_three_batches_then_eval() {
        let mut q = Quantizer::new(8);
        let mut b1 = [-1.0f64, 2.0];
        q.forward(&mut b1, true);
        assert_eq!((q.observer.min, q.observer.max), (-1.0, 2.0));
        let mut b2 = [-3.0f64, 4.0];
        q.forward(&mut b2, true);
        assert!((q.observer.min - (-1.02)).abs() < 1e-12);
        assert!((q.observer.max - 2.02).abs() < 1e-12);
        let mut b3 = [0.5f64, 10.0];
        q.forward(&mut b3, true);
        assert!((q.observer.min - (-1.02 + 0.01 * (0.5 + 1.02))).abs() < 1e-12);
        assert!((q.observer.max - (2.02 + 0.01 * (10.0 - 2.02))).abs() < 1e-12);
        // Eval: the stored range is used and not updated, so 100 saturates at qmax.
        let before = q.observer.clone();
        let mut e = [100.0f64];
        let s = q.forward(&mut e, false);
        assert_eq!(q.observer, before);
        assert_eq!(e[0], 127.0 * s);
    }
}
