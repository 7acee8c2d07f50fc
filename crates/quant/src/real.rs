/// The float types kernels are generic over (f32 for training and engines, f64 for
/// references).
pub trait Real: num_traits::Float + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static {
    fn of_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;
    /// Round half to even (torch.round).
    fn round_even(self) -> Self;
    /// Fake-quantizes a slice (see `crate::fake_quant`); f32 overrides with a SIMD path.
    fn fake_quant_slice(x: &mut [Self], scale: f64, bits: u32) {
        crate::fake_quant_plain(x, scale, bits)
    }
    fn min_max_slice(x: &[Self]) -> (f64, f64) {
        crate::min_max_plain(x)
    }
}

impl Real for f32 {
    fn of_f64(v: f64) -> Self {
        v as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn round_even(self) -> Self {
        self.round_ties_even()
    }
    fn fake_quant_slice(x: &mut [Self], scale: f64, bits: u32) {
        crate::fake_quant_f32(x, scale as f32, bits)
    }
    fn min_max_slice(x: &[Self]) -> (f64, f64) {
        crate::min_max_f32(x)
    }
}

impl Real for f64 {
    fn of_f64(v: f64) -> Self {
        v
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn round_even(self) -> Self {
        self.round_ties_even()
    }
}
