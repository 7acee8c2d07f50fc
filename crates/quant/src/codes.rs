//! Integer codes and requantization: the arithmetic that training's eval forward and the
//! integer engine must share for their results to agree bit for bit. Every conversion between
//! values and codes, every multiplier and every rounding of an accumulator goes through here.
//!
//! A quantized value is code × f32(scale). An accumulator of code products with real step
//! `s_acc` becomes an output code by one multiplication with `multiplier(s_acc, s_out)` (as
//! f32), a clamp to the code range and a round half to even.

/// Adding and subtracting 1.5·2^23 rounds an f32 of magnitude below 2^22 to the nearest
/// integer, ties to even (the default rounding mode): torch.round without a libm call.
pub const ROUND_MAGIC: f32 = 12_582_912.0;

/// The same constant for f64 (1.5·2^52).
pub const ROUND_MAGIC_F64: f64 = 6_755_399_441_055_744.0;

/// x rounded half to even, for |x| < 2^22.
#[inline(always)]
pub fn round_even(x: f32) -> f32 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

/// The 8-bit code of q: clamp to [-128, 127], round half to even. In [2^23, 2^24) the ulp is
/// 1, so the rounded integer sits in the low mantissa bits: reading them is exact and
/// vectorizes (a float→i8 `as` cast does not).
#[inline(always)]
pub fn to_code(q: f32) -> i8 {
    let q = q.clamp(-128.0, 127.0);
    ((q + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32) as i8
}

/// The same for f64.
#[inline(always)]
pub fn to_code_f64(q: f64) -> i8 {
    let q = q.clamp(-128.0, 127.0);
    ((q + ROUND_MAGIC_F64).to_bits() as i64 - ROUND_MAGIC_F64.to_bits() as i64) as i8
}

/// The multiplier that turns one accumulator step of real size `s_acc` into output codes of
/// scale `s_out`: computed in f64, used as f32 by training and engine alike.
#[inline]
pub fn multiplier(s_acc: f64, s_out: f64) -> f32 {
    (s_acc / s_out) as f32
}

/// The scale of group `g` of a tensor with one scale for all or one per group (per output
/// channel, per Winograd tap).
#[inline]
pub fn group_scale(scales: &[f64], g: usize) -> f64 {
    if scales.len() == 1 {
        scales[0]
    } else {
        scales[g]
    }
}

/// The value of a code: code × f32(scale), exactly as a fake quantizer produces it.
#[inline]
pub fn value(code: i32, scale: f64) -> f32 {
    code as f32 * scale as f32
}

/// The 8-bit codes of quantized values laid out as `scales.len()` equal groups (one scale for
/// all, or one per group): round(value / scale), half to even, saturated. Exact for values a
/// quantizer with these scales produced.
pub fn codes_i8(values: &[f32], scales: &[f64]) -> Vec<i8> {
    let per = (values.len() / scales.len().max(1)).max(1);
    values
        .iter()
        .enumerate()
        .map(|(i, &x)| to_code_f64(x as f64 / group_scale(scales, i / per)))
        .collect()
}

/// The values of 8-bit codes with the same group layout as [`codes_i8`].
pub fn values_i8(codes: &[i8], scales: &[f64]) -> Vec<f32> {
    let per = (codes.len() / scales.len().max(1)).max(1);
    codes
        .iter()
        .enumerate()
        .map(|(i, &q)| value(q as i32, group_scale(scales, i / per)))
        .collect()
}

crate::multiversion! {
    /// Input codes of a quantized layer: round(x / s) clamped to 8 bits, half to even, with
    /// the same f32 division as the fake quantizer (`fake_quant_f32`).
    pub fn quantize_i8 / quantize_i8_isa(x: &[f32], s: f32, out: &mut [i8]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = to_code(v / s);
        }
    }
}

/// In place, values a quantizer of scale s produced → their codes, held in f32: the fake
/// quantizer's f32 division, exact for such values.
pub fn values_to_codes_f32(x: &mut [f32], s: f32) {
    x.iter_mut().for_each(|v| *v = round_even(*v / s));
}

/// In place, codes held in f32 → values code × s.
pub fn codes_to_values_f32(x: &mut [f32], s: f32) {
    x.iter_mut().for_each(|v| *v *= s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_to_even_and_saturates() {
        for (q, want) in [
            (0.5f32, 0i8),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (127.4, 127),
            (300.0, 127),
            (-300.0, -128),
            (-127.6, -128),
        ] {
            assert_eq!(to_code(q), want, "{q}");
            assert_eq!(to_code_f64(q as f64), want, "{q}");
            assert_eq!(round_even(q.clamp(-128.0, 127.0)), want as f32, "{q}");
        }
    }

    #[test]
    fn codes_round_trip_per_group() {
        let scales = [0.5, 0.03, 1e-3];
        let codes: Vec<i8> = (0..12).map(|i| (i * 23 % 256 - 128) as i8).collect();
        let v = values_i8(&codes, &scales);
        assert_eq!(v[0], codes[0] as f32 * 0.5f32);
        assert_eq!(v[5], codes[5] as f32 * 0.03f64 as f32);
        assert_eq!(codes_i8(&v, &scales), codes);
        assert_eq!(codes_i8(&[0.25, 0.75], &[0.5]), vec![0, 2], "ties to even");
        assert_eq!(group_scale(&[2.0], 7), 2.0);
        assert_eq!(multiplier(0.5, 0.25), 2.0);
    }
}
