//! Requantization of exact i32 accumulators to 8-bit codes (the rounding rule is
//! `winq_quant::codes`).

pub use winq_quant::codes::{to_code, to_code_f64};

winq_quant::multiversion! {
    /// dst = clamp(round_half_even(src · mul), -128, 127): requantization to 8-bit codes.
    pub fn requant / requant_isa(src: &[i32], mul: f32, dst: &mut [i8]) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = to_code(v as f32 * mul);
        }
    }
}

winq_quant::multiversion! {
    /// Requantization of rows of N accumulators with one multiplier per column (per output
    /// channel of a channel-last output).
    pub fn requant_cols / requant_cols_isa(src: &[i32], mul: &[f32], dst: &mut [i8]) {
        let n = mul.len();
        for (d, s) in dst.chunks_exact_mut(n).zip(src.chunks_exact(n)) {
            for ((d, &v), &m) in d.iter_mut().zip(s).zip(mul) {
                *d = to_code(v as f32 * m);
            }
        }
    }
}
