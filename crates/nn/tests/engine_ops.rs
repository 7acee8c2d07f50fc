//! The engine's channel-last FP32 operations compute bit for bit what the training layers'
//! eval forwards compute (same expressions and summation orders), on awkward shapes.

use winq_engine::fmap::{self, Fmap};
use winq_nn::conv::xavier_uniform;
use winq_nn::gradcheck::random_tensor;
use winq_nn::{Conv2d, GlobalAvgPool, Layer, MaxPool2, Mode, Precision, Tensor};

fn nhwc(t: &Tensor) -> Fmap {
    let (n, c, h, w) = t.dims4();
    fmap::from_nchw(n, c, h, w, &t.data)
}

#[test]
fn fp32_convolution_is_bit_identical_to_training() {
    use rand::SeedableRng;
    for &(n, c, k, h, w, r) in &[
        (1, 3, 32, 9, 7, 3),
        (2, 1, 5, 4, 4, 3),
        (1, 7, 3, 5, 6, 1),
        (1, 16, 9, 6, 5, 3),
    ] {
        let wt = xavier_uniform(k, c, r, &mut rand_chacha::ChaCha8Rng::seed_from_u64(4));
        let mut conv = Conv2d::new(c, k, r, Precision::Fp32, wt.clone());
        let x = random_tensor(&[n, c, h, w], 5);
        let want = conv.forward(&x, Mode::Eval);
        let (mut rows, mut out) = (Vec::new(), Vec::new());
        let got = fmap::conv_f32(&nhwc(&x), k, r, &wt.data, &mut rows, &mut out);
        assert_eq!(fmap::to_nchw(&got), want.data, "{c}->{k} {h}x{w} r{r}");
    }
}

#[test]
fn pooling_is_bit_identical_to_training() {
    let mut x = random_tensor(&[2, 5, 7, 9], 6);
    x.data[3] = f32::NAN;
    let want = MaxPool2::new().forward(&x, Mode::Eval);
    let got = fmap::max_pool2(&nhwc(&x), &mut Vec::new());
    assert_eq!((got.h, got.w), (3, 4));
    let got = fmap::to_nchw(&got);
    assert!(got[1].is_nan() && want.data[1].is_nan());
    let same = |a: f32, b: f32| a == b || (a.is_nan() && b.is_nan());
    assert!(got.iter().zip(&want.data).all(|(&a, &b)| same(a, b)));
    let x = random_tensor(&[3, 6, 5, 7], 7);
    let want = GlobalAvgPool::new().forward(&x, Mode::Eval);
    assert_eq!(fmap::global_avg_pool(&nhwc(&x)).data, want.data);
}

#[test]
fn layout_round_trip() {
    let x = random_tensor(&[2, 3, 4, 5], 8);
    let f = nhwc(&x);
    assert_eq!(f.data[1], x.data[20]); // pixel 0, channel 1
    assert_eq!(fmap::to_nchw(&f), x.data);
}
