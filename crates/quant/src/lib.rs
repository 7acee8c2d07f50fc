//! Uniform, symmetric, per-tensor quantization exactly as the Winograd-aware reference:
//! qmin = -2^(b-1), qmax = 2^(b-1) - 1, scale = max(|min|, |max|) / ((qmax - qmin) / 2)
//! with the range widened to contain 0, x̂ = clamp(round(x / scale), qmin, qmax) · scale.
//! Rounding is half-to-even, as torch.round.

pub mod codes;
mod observer;
mod real;
pub mod simd;

pub use observer::{observe, Observer, Quantizer};
pub use real::Real;

/// Smallest and largest bit-widths a quantizer accepts.
pub const MIN_BITS: u32 = 2;
pub const MAX_BITS: u32 = 16;

/// Integer range (qmin, qmax) of a signed b-bit code.
pub fn qrange(bits: u32) -> (f64, f64) {
    assert!(
        (MIN_BITS..=MAX_BITS).contains(&bits),
        "bit-width {bits} outside {MIN_BITS}..={MAX_BITS}"
    );
    let qmax = (1i64 << (bits - 1)) as f64 - 1.0;
    (-qmax - 1.0, qmax)
}

/// Scale for a tensor whose observed range is [min, max].
pub fn scale_for(min: f64, max: f64, bits: u32) -> f64 {
    let (qmin, qmax) = qrange(bits);
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    if lo == hi {
        // The reference returns scale 1 for an empty range (the values are all 0 then).
        return 1.0;
    }
    (lo.abs().max(hi.abs()) / ((qmax - qmin) / 2.0)).max(1e-8)
}

/// Quantizes one value to its integer code.
pub fn quantize<T: Real>(x: T, scale: T, bits: u32) -> T {
    let (qmin, qmax) = qrange(bits);
    let (lo, hi) = (T::of_f64(qmin), T::of_f64(qmax));
    let q = (x / scale).round_even();
    // Comparisons rather than max/min so that NaN propagates, as torch.clamp does.
    if q < lo {
        lo
    } else if q > hi {
        hi
    } else {
        q
    }
}

/// Fake-quantizes in place with a given scale (f32 data takes the vectorized path).
pub fn fake_quant<T: Real>(x: &mut [T], scale: f64, bits: u32) {
    T::fake_quant_slice(x, scale, bits)
}

/// The plain per-element path (f64, and the reference the f32 kernels are tested against).
pub fn fake_quant_plain<T: Real>(x: &mut [T], scale: f64, bits: u32) {
    let s = T::of_f64(scale);
    for v in x.iter_mut() {
        *v = quantize(*v, s, bits) * s;
    }
}

multiversion! {
    /// x ← round_half_even(clamp(x·mul, lo, hi)) in place: requantization of exact integer
    /// accumulators (held in f32) to codes, as the integer engine does it. NaN stays NaN.
    pub fn round_codes / round_codes_isa(x: &mut [f32], mul: f32, lo: f32, hi: f32) {
        for v in x.iter_mut() {
            let q = *v * mul;
            let q = if q < lo { lo } else if q > hi { hi } else { q };
            *v = codes::round_even(q);
        }
    }
}

multiversion! {
    /// x̂ = clamp(round(x / s), qmin, qmax) · s in place. NaN stays NaN.
    pub fn fake_quant_f32 / fake_quant_f32_isa(x: &mut [f32], scale: f32, bits: u32) {
        let (qmin, qmax) = qrange(bits);
        let (lo, hi) = (qmin as f32, qmax as f32);
        for v in x.iter_mut() {
            let q = *v / scale;
            // Clamping first keeps |q| <= 2^15, inside the magic constant's exact range.
            let q = if q < lo { lo } else if q > hi { hi } else { q };
            *v = codes::round_even(q) * scale;
        }
    }
}

/// (min, max) of a slice; (0, 0) when empty. NaNs are ignored.
pub fn min_max<T: Real>(x: &[T]) -> (f64, f64) {
    T::min_max_slice(x)
}

multiversion! {
    /// (min, max) of an f32 slice with 16 independent lanes so it vectorizes; NaNs ignored.
    pub fn min_max_f32 / min_max_f32_isa(x: &[f32]) -> (f64, f64) {
        let mut lo = [f32::INFINITY; 16];
        let mut hi = [f32::NEG_INFINITY; 16];
        let mut chunks = x.chunks_exact(16);
        for c in &mut chunks {
            for k in 0..16 {
                lo[k] = if c[k] < lo[k] { c[k] } else { lo[k] };
                hi[k] = if c[k] > hi[k] { c[k] } else { hi[k] };
            }
        }
        for &v in chunks.remainder() {
            lo[0] = if v < lo[0] { v } else { lo[0] };
            hi[0] = if v > hi[0] { v } else { hi[0] };
        }
        let lo = lo.iter().fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
        let hi = hi.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        if lo > hi {
            (0.0, 0.0)
        } else {
            (lo as f64, hi as f64)
        }
    }
}

/// The plain min/max (f64 data, and the reference for the f32 kernel).
pub fn min_max_plain<T: Real>(x: &[T]) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in x {
        let v = Real::as_f64(*v);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        (0.0, 0.0)
    } else {
        (lo, hi)
    }
}

/// A tensor viewed as [outer][groups][inner] and quantized with one scale per group (per
/// output channel: outer 1, groups K; per Winograd tap of a [.., t·t] tensor: inner 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    pub outer: usize,
    pub groups: usize,
    pub inner: usize,
}

impl Groups {
    pub fn per_tensor(len: usize) -> Groups {
        Groups {
            outer: 1,
            groups: 1,
            inner: len,
        }
    }
    pub fn group_of(&self, index: usize) -> usize {
        (index / self.inner) % self.groups
    }
    /// (min, max) of each group; (0, 0) for an empty group.
    pub fn min_max<T: Real>(&self, x: &[T]) -> Vec<(f64, f64)> {
        assert_eq!(
            x.len(),
            self.outer * self.groups * self.inner,
            "group layout does not match the tensor"
        );
        let mut r = vec![(f64::INFINITY, f64::NEG_INFINITY); self.groups];
        for (i, chunk) in x.chunks(self.inner.max(1)).enumerate() {
            let (lo, hi) = min_max(chunk);
            let g = &mut r[i % self.groups];
            if chunk.is_empty() || lo > hi {
                continue;
            }
            *g = (g.0.min(lo), g.1.max(hi));
        }
        r.into_iter()
            .map(|(l, h)| if l > h { (0.0, 0.0) } else { (l, h) })
            .collect()
    }
    /// Fake-quantizes each group with its own scale.
    pub fn fake_quant<T: Real>(&self, x: &mut [T], scales: &[f64], bits: u32) {
        assert_eq!(scales.len(), self.groups);
        for (i, chunk) in x.chunks_mut(self.inner.max(1)).enumerate() {
            fake_quant(chunk, scales[i % self.groups], bits);
        }
    }
}

/// Fake-quantizes each group with the range taken from the group itself; returns the scales.
pub fn fake_quant_dynamic_groups<T: Real>(x: &mut [T], groups: Groups, bits: u32) -> Vec<f64> {
    let scales: Vec<f64> = groups
        .min_max(x)
        .iter()
        .map(|&(l, h)| scale_for(l, h, bits))
        .collect();
    groups.fake_quant(x, &scales, bits);
    scales
}

/// Fake-quantizes in place with the range taken from the tensor itself; returns the scale.
pub fn fake_quant_dynamic<T: Real>(x: &mut [T], bits: u32) -> f64 {
    let (lo, hi) = min_max(x);
    let scale = scale_for(lo, hi, bits);
    fake_quant(x, scale, bits);
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(qrange(8), (-128.0, 127.0));
        assert_eq!(qrange(2), (-2.0, 1.0));
        assert_eq!(qrange(16), (-32768.0, 32767.0));
    }

    #[test]
    fn scale_at_8_bits_and_max_maps_to_127() {
        // (qmax - qmin) / 2 = 127.5 at 8 bits.
        let s = scale_for(-1.0, 2.55, 8);
        assert!((s - 0.02).abs() < 1e-15);
        assert_eq!(quantize(2.55f64, s, 8), 127.0);
        assert_eq!(quantize(-1.0f64, s, 8), -50.0);
        // Range widened to contain 0.
        assert_eq!(scale_for(1.0, 2.55, 8), s);
        assert_eq!(scale_for(-2.55, -1.0, 8), s);
        // Degenerate range.
        assert_eq!(scale_for(0.0, 0.0, 8), 1.0);
        assert_eq!(scale_for(-1e-12, 1e-12, 8), 1e-8);
    }

    #[test]
    fn rounds_half_to_even_and_clamps() {
        assert_eq!(quantize(2.5f32, 1.0, 8), 2.0);
        assert_eq!(quantize(3.5f32, 1.0, 8), 4.0);
        assert_eq!(quantize(-2.5f32, 1.0, 8), -2.0);
        assert_eq!(quantize(1000.0f32, 1.0, 8), 127.0);
        assert_eq!(quantize(-1000.0f32, 1.0, 8), -128.0);
        let mut v = [0.26f64, -0.74, 0.5];
        fake_quant(&mut v, 0.5, 4);
        assert_eq!(v, [0.5, -0.5, 0.5]);
    }

    #[test]
    fn every_isa_path_equals_the_plain_quantizer() {
        let mut seed = 7u64;
        let x: Vec<f32> = (0..1003)
            .map(|i| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                // Exact ties (k + 0.5 steps) and out-of-range values included.
                if i % 7 == 0 {
                    (i as f32 / 7.0 - 70.0) + 0.5
                } else {
                    u * 300.0
                }
            })
            .chain([f32::NAN, 1e30, -1e30, 0.0, -0.0])
            .collect();
        for bits in [2, 4, 8, 12, 16] {
            for scale in [1.0f32, 0.37, 1e-3] {
                let mut want = x.clone();
                fake_quant_plain(&mut want, scale as f64, bits);
                for isa in simd::available().iter().copied() {
                    let mut got = x.clone();
                    fake_quant_f32_isa(isa, &mut got, scale, bits);
                    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            a == b || (a.is_nan() && b.is_nan() && x[i].is_nan()),
                            "{isa:?} bits {bits} x {} -> {a} vs {b}",
                            x[i]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn min_max_paths_agree() {
        let x: Vec<f32> = (0..1001)
            .map(|i| ((i * 7919) % 1000) as f32 - 400.5)
            .chain([f32::NAN])
            .collect();
        let want = min_max_plain(&x);
        assert_eq!(want, (-400.5, 598.5));
        for isa in simd::available().iter().copied() {
            assert_eq!(min_max_f32_isa(isa, &x), want, "{isa:?}");
            assert_eq!(min_max_f32_isa(isa, &x[..5]), min_max_plain(&x[..5]));
            assert_eq!(min_max_f32_isa(isa, &[]), (0.0, 0.0));
            assert_eq!(min_max_f32_isa(isa, &[f32::NAN]), (0.0, 0.0));
        }
    }

    #[test]
    fn dynamic_range_error_is_bounded_by_half_a_step() {
        let mut x: Vec<f64> = (0..1000)
            .map(|i| ((i * 37 % 1000) as f64 / 500.0 - 1.0) * 3.0)
            .collect();
        let orig = x.clone();
        let s = fake_quant_dynamic(&mut x, 8);
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() <= s / 2.0 + 1e-12);
        }
    }
}
