/// The float types kernels are generic over (f32 for training and engines, f64 for
/// references).
pub trait Real: num_traits::Float + Send + Sync + std::fmt::Debug + std::iter::Sum + 'static {
    fn of_f64(v: f64) -> Self;
    fn as_f64(self) -> f64;
    /// Round half to even (torch.round).
    fn round_even(self) -> Self;
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
