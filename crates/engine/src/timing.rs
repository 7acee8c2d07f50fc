//! Latency measurement of compiled networks: one definition of "median time" for every
//! benchmark, search and latency table (warm-up call, then the median of timed calls).

use crate::{fmap, Act, Net};
use rayon::prelude::*;
use std::time::Instant;

/// Median of a sample (mean of the two middle values for an even count); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Seconds per call of `f`: one warm-up call, then the median of `reps` (at least 1) timed calls.
pub fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut t)
}

/// `n` images of c×h×w with values uniform in [-1, 1), from a fixed seed (a small xorshift:
/// latency does not depend on the values, only reproducibility matters).
pub fn random_input(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Act {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..n * c * h * w)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Act { n, c, h, w, data }
}

impl Net {
    /// Milliseconds per `forward` of `x` (N×C×H×W in, logits out), median of `reps`.
    pub fn latency_ms(&self, x: &Act, reps: usize) -> f64 {
        median_secs(reps, || {
            std::hint::black_box(self.forward(x.clone()));
        }) * 1e3
    }

    /// Milliseconds per run of channel-last activations through the network as a part of a
    /// larger one (no layout changes at the ends): the batch split over the threads as
    /// `forward` splits it. What one layer costs inside a network (the latency table).
    pub fn latency_nhwc_ms(&self, x: &Act, reps: usize) -> f64 {
        let act = fmap::from_nchw(x.n, x.c, x.h, x.w, &x.data);
        let threads = rayon::current_num_threads().min(x.n).max(1);
        let per = x.n.div_ceil(threads);
        let img = x.h * x.w * x.c;
        median_secs(reps, || {
            act.data.par_chunks((per * img).max(1)).for_each(|d| {
                let part = fmap::Fmap {
                    n: d.len() / img.max(1),
                    h: x.h,
                    w: x.w,
                    c: x.c,
                    data: d.to_vec(),
                };
                std::hint::black_box(self.forward_nhwc(part));
            });
        }) * 1e3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty_samples() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn random_inputs_are_reproducible_and_in_range() {
        let a = random_input(2, 3, 4, 5, 7);
        assert_eq!(a.data.len(), 120);
        assert_eq!(a, random_input(2, 3, 4, 5, 7));
        assert_ne!(a.data, random_input(2, 3, 4, 5, 8).data);
        assert!(a.data.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean = a.data.iter().sum::<f32>() / 120.0;
        assert!(mean.abs() < 0.2, "{mean}");
    }

    #[test]
    fn median_secs_calls_warm_up_plus_reps() {
        let mut calls = 0;
        let t = median_secs(5, || calls += 1);
        assert_eq!(calls, 6);
        assert!(t >= 0.0);
    }
}
