//! The integer kernels reproduce the training layers' fake-quantized eval forwards bit for
//! bit: training computes its 8-bit stages on integer codes exactly as the engine does.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use winq_kernels::int8::winograd::WinogradI8;
use winq_nn::conv::xavier_uniform;
use winq_nn::gradcheck::random_tensor;
use winq_nn::quant::Granularity;
use winq_nn::{Layer, Mode, Precision, Tensor, WinogradConv2d};
use winq_quant::codes::codes_i8;
use winq_transforms::PointSet;

/// N×C×H×W → N×H×W×C and back (the kernels run channel-last).
fn nhwc<T: Copy + Default>(x: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    let mut out = vec![T::default(); x.len()];
    for ni in 0..n {
        for ci in 0..c {
            for p in 0..hw {
                out[(ni * hw + p) * c + ci] = x[(ni * c + ci) * hw + p];
            }
        }
    }
    out
}

fn nchw<T: Copy + Default>(x: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    let mut out = vec![T::default(); x.len()];
    for ni in 0..n {
        for ci in 0..c {
            for p in 0..hw {
                out[(ni * c + ci) * hw + p] = x[(ni * hw + p) * c + ci];
            }
        }
    }
    out
}

/// Channel counts: 1 and 8 run the lane-wise path, multiples of 16 the register-block path.
fn check(m: usize, flex: bool, points: PointSet, per_tap: bool) {
    check_shape(m, flex, points.clone(), per_tap, 8, 8);
    check_shape(m, flex, points.clone(), per_tap, 1, 3);
    check_shape(m, flex, points, per_tap, 16, 32);
}

fn check_shape(m: usize, flex: bool, points: PointSet, per_tap: bool, c: usize, k: usize) {
    let (n, h, w) = (2, 12, 13);
    let wt = xavier_uniform(k, c, 3, &mut ChaCha8Rng::seed_from_u64(1));
    let mut l = WinogradConv2d::new(c, k, m, points, flex, Precision::Int(8), wt)
        .unwrap()
        .with_granularity(Granularity {
            per_channel_weights: false,
            per_tap,
        });
    let relu = |t: Tensor| Tensor::from_vec(&t.shape, t.data.iter().map(|v| v.max(0.0)).collect());
    for s in 0..3 {
        l.forward(&relu(random_tensor(&[n, c, h, w], 10 + s)), Mode::Train);
    }
    let x = relu(random_tensor(&[n, c, h, w], 20));
    let y_ref = l.forward(&x, Mode::Eval);
    let e = l.quantized();
    let engine = WinogradI8::new(e.clone());
    let qx = codes_i8(&x.data, &[e.s_in]);
    let mut qy = vec![0i8; n * k * h * w];
    engine.forward(&nhwc(&qx, n, c, h * w), n, h, w, &mut qy);
    let qy = nchw(&qy, n, k, h * w);
    let (mut exact, mut within) = (0, 0);
    for (&q, &r) in qy.iter().zip(&y_ref.data) {
        // The reference holds code × f32(scale): recover its code.
        let rc = (r as f64 / e.s_out).round() as i32;
        exact += (rc == q as i32) as usize;
        within += ((rc - q as i32).abs() <= 1) as usize;
    }
    let len = qy.len();
    let ctx = format!("F{m} flex={flex} per_tap={per_tap} {c}->{k}");
    assert_eq!(within, len, "{ctx}: {within}/{len} within one step");
    assert_eq!(exact, len, "{ctx}: only {exact}/{len} exactly equal");
}

#[test]
fn integer_winograd_matches_fake_quantized_training_forward() {
    check(2, false, PointSet::Default, false);
    check(4, false, PointSet::Default, false);
    check(4, true, PointSet::Default, false);
    check(6, false, PointSet::Default, false);
    check(6, false, PointSet::Paper, false);
    check(4, true, PointSet::Default, true);
}

#[test]
fn integer_im2row_matches_fake_quantized_training_forward() {
    use winq_kernels::int8::conv::Im2rowI8;
    use winq_nn::Conv2d;
    // 128 channels × 3×3 = 1152 taps: sums longer than f32's exact range for 8-bit codes.
    for (r, per_channel, c) in [(3, false, 7), (1, false, 7), (3, true, 7), (3, false, 128)] {
        let (n, k, h, w) = (2, 9, 10, 11);
        let wt = xavier_uniform(k, c, r, &mut ChaCha8Rng::seed_from_u64(2));
        let mut l = Conv2d::new(c, k, r, Precision::Int(8), wt).with_per_channel_weights(per_channel);
        let relu = |t: Tensor| Tensor::from_vec(&t.shape, t.data.iter().map(|v| v.max(0.0)).collect());
        for s in 0..3 {
            l.forward(&relu(random_tensor(&[n, c, h, w], 30 + s)), Mode::Train);
        }
        let x = relu(random_tensor(&[n, c, h, w], 40));
        let y_ref = l.forward(&x, Mode::Eval);
        let e = l.quantized();
        let engine = Im2rowI8::new(&e.weight, c, k, r, e.s_in, &e.s_w, e.s_out);
        let mut qy = vec![0i8; n * k * h * w];
        let qx = nhwc(&codes_i8(&x.data, &[e.s_in]), n, c, h * w);
        engine.forward(&qx, n, h, w, &mut qy);
        let qy = nchw(&qy, n, k, h * w);
        let exact = qy
            .iter()
            .zip(&y_ref.data)
            .filter(|(&q, &r)| (r as f64 / e.s_out).round() as i32 == q as i32)
            .count();
        assert_eq!(
            exact,
            qy.len(),
            "r{r} per_channel={per_channel}: {exact}/{} identical",
            qy.len()
        );
    }
}
