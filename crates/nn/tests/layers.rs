//! Layers against finite differences, hand-computed values and naive references.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use winq_nn::gradcheck::{check, random_tensor};
use winq_nn::layer::ParamVisitor;
use winq_nn::{
    softmax_cross_entropy, BatchNorm2d, Buffer, GlobalAvgPool, Layer, Linear, LossError, MaxPool2, Mode,
    Relu, Tensor,
};

const TOL: f64 = 1e-2;

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

fn assert_grads(layer: &mut dyn Layer, x: &Tensor, eps: f32, what: &str) {
    let r = check(layer, x, eps, 40, 7);
    assert!(
        r.worst < TOL,
        "{what} {:?}: worst relative error {:e} in {} ({:?})",
        x.shape,
        r.worst,
        r.worst_name,
        r.details
    );
}

/// Values in ±[0.05, 1.05): no finite-difference step of 1e-2 crosses ReLU's kink.
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let mut x = random_tensor(shape, seed);
    x.data.iter_mut().for_each(|v| *v = v.signum() * (v.abs() + 0.05));
    x
}

/// A permutation of distinct values 0.05 apart: a step of 1e-2 never changes an argmax.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - n as f32 * 0.025).collect();
    v.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    Tensor::from_vec(shape, v)
}

/// Runs the inner layer in Eval mode whatever mode it is called with (the checker always
/// uses Train).
struct EvalMode<L: Layer>(L);

impl<L: Layer> Layer for EvalMode<L> {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        self.0.forward(x, Mode::Eval)
    }
    fn backward(&mut self, g: &Tensor) -> Tensor {
        self.0.backward(g)
    }
    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        self.0.visit_params(prefix, f)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// Deliberately wrong backward: negates the input gradient or one parameter's gradient.
struct Broken<L: Layer> {
    inner: L,
    param: Option<&'static str>,
}

impl<L: Layer> Layer for Broken<L> {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        self.inner.forward(x, mode)
    }
    fn backward(&mut self, g: &Tensor) -> Tensor {
        let mut gx = self.inner.backward(g);
        match self.param {
            None => gx.data.iter_mut().for_each(|v| *v = -*v),
            Some(name) => self.inner.visit_params("", &mut |n, p| {
                if n == name {
                    p.grad.data.iter_mut().for_each(|v| *v = -*v);
                }
            }),
        }
        gx
    }
    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        self.inner.visit_params(prefix, f)
    }
    fn describe(&self) -> String {
        "Broken".into()
    }
}

fn linear(i: usize, o: usize, seed: u64) -> Linear {
    Linear::new(i, o, &mut ChaCha8Rng::seed_from_u64(seed))
}

/// BN with γ, β away from their init so the affine part is exercised.
fn bn(c: usize, seed: u64) -> BatchNorm2d {
    let mut l = BatchNorm2d::new(c);
    let g = random_tensor(&[c], seed);
    l.weight.value.data = g.data.iter().map(|v| 1.0 + 0.5 * v).collect();
    l.bias.value = random_tensor(&[c], seed + 1);
    l
}

#[test]
fn negative_control_checker_catches_wrong_gradients() {
    let x = away_from_zero(&[3, 2, 5, 7], 1);
    let good = check(&mut Relu::new(), &x, 1e-2, 40, 7);
    assert!(good.worst < TOL);
    let bad = check(
        &mut Broken {
            inner: Relu::new(),
            param: None,
        },
        &x,
        1e-2,
        40,
        7,
    );
    assert!(
        bad.worst > 1.0,
        "flipped input gradient not caught: {:e}",
        bad.worst
    );

    for name in ["weight", "bias"] {
        let x = random_tensor(&[3, 5], 2);
        let mut l = Broken {
            inner: linear(5, 4, 3),
            param: Some(name),
        };
        let r = check(&mut l, &x, 1e-2, 40, 7);
        assert!(
            r.worst > 1.0 && r.worst_name == name,
            "flipped {name} not caught: {r:?}"
        );
    }
}

#[test]
fn relu_gradients() {
    for shape in [vec![1, 1, 5, 7], vec![3, 2, 5, 7], vec![3, 4], vec![4, 3, 64, 64]] {
        let x = away_from_zero(&shape, 3);
        assert_grads(&mut Relu::new(), &x, 1e-2, "relu");
    }
}

#[test]
fn relu_values_and_nan() {
    let x = Tensor::from_vec(&[1, 5], vec![-1.0, 0.0, 2.0, f32::NAN, -0.0]);
    let mut l = Relu::new();
    let y = l.forward(&x, Mode::Eval);
    assert_eq!(y.data[..3], [0.0, 0.0, 2.0]);
    assert!(y.data[3].is_nan(), "NaN must propagate");
    assert_eq!(y.data[4], 0.0);
    let g = l.backward(&Tensor::from_vec(&[1, 5], vec![1.0; 5]));
    assert_eq!(g.data, [0.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn maxpool_gradients() {
    for shape in [
        vec![1, 1, 5, 7],
        vec![3, 2, 4, 6],
        vec![3, 1, 7, 5],
        vec![2, 4, 65, 63],
    ] {
        let x = distinct(&shape, 4);
        assert_grads(&mut MaxPool2::new(), &x, 1e-2, "maxpool");
    }
}

#[test]
fn maxpool_known_values_odd_sizes_and_ties() {
    // 5×5 plane 0..25: windows at rows/cols {0,1}, {2,3}; row 4 and column 4 are dropped.
    let x = Tensor::from_vec(&[1, 1, 5, 5], (0..25).map(|v| v as f32).collect());
    let mut l = MaxPool2::new();
    let y = l.forward(&x, Mode::Train);
    assert_eq!(y.shape, [1, 1, 2, 2]);
    assert_eq!(y.data, [6.0, 8.0, 16.0, 18.0]);
    let g = l.backward(&Tensor::from_vec(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]));
    let mut want = vec![0.0; 25];
    (want[6], want[8], want[16], want[18]) = (1.0, 2.0, 3.0, 4.0);
    assert_eq!(g.data, want);

    // Two planes, 3×5 → 1×2, negative values, and ties (the first maximum wins).
    #[rustfmt::skip]
    let x = Tensor::from_vec(&[1, 2, 3, 5], vec![
        -3.0, -1.0, 7.0, 7.0, 9.0,
        -2.0, -4.0, 7.0, 7.0, 9.0,
        50.0, 50.0, 50.0, 50.0, 50.0,
        1.0, 1.0, 0.0, 5.0, 0.0,
        1.0, 1.0, 5.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0,
    ]);
    let y = l.forward(&x, Mode::Eval);
    assert_eq!(y.shape, [1, 2, 1, 2]);
    assert_eq!(y.data, [-1.0, 7.0, 1.0, 5.0]);
    let g = l.backward(&Tensor::from_vec(&[1, 2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]));
    let mut want = vec![0.0; 30];
    (want[1], want[2], want[15], want[18]) = (1.0, 2.0, 3.0, 4.0);
    assert_eq!(g.data, want);

    // A single row or column pools to nothing.
    let y = l.forward(&Tensor::zeros(&[2, 3, 1, 5]), Mode::Train);
    assert_eq!(y.shape, [2, 3, 0, 2]);
    assert_eq!(l.backward(&y).shape, [2, 3, 1, 5]);
}

#[test]
fn global_avg_pool_values_and_gradients() {
    let x = Tensor::from_vec(&[1, 2, 2, 2], vec![1.0, 2.0, 3.0, 6.0, -1.0, -1.0, 0.0, 10.0]);
    let mut l = GlobalAvgPool::new();
    let y = l.forward(&x, Mode::Train);
    assert_eq!(y.shape, [1, 2]);
    assert_eq!(y.data, [3.0, 2.0]);
    let g = l.backward(&Tensor::from_vec(&[1, 2], vec![4.0, -8.0]));
    assert_eq!(g.data, [1.0, 1.0, 1.0, 1.0, -2.0, -2.0, -2.0, -2.0]);
    for shape in [
        vec![1, 1, 5, 7],
        vec![3, 2, 3, 3],
        vec![3, 5, 1, 1],
        vec![4, 3, 64, 64],
    ] {
        assert_grads(&mut GlobalAvgPool::new(), &random_tensor(&shape, 5), 1e-2, "gap");
    }
}

#[test]
fn linear_values_init_and_gradients() {
    let mut l = linear(2, 3, 1);
    l.weight.value.data = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    l.bias.value.data = vec![0.5, -0.5, 0.0];
    let y = l.forward(&Tensor::from_vec(&[2, 2], vec![1.0, 1.0, 0.0, -1.0]), Mode::Train);
    assert_eq!(y.shape, [2, 3]);
    assert_eq!(y.data, [3.5, 6.5, 11.0, -1.5, -4.5, -6.0]);

    // Kaiming-uniform(a = √5) bounds, seeded and reproducible.
    let (a, b) = (linear(100, 10, 9), linear(100, 10, 9));
    assert_eq!(a.weight.value, b.weight.value);
    assert_eq!(a.bias.value, b.bias.value);
    assert_ne!(a.weight.value, linear(100, 10, 10).weight.value);
    let all = a.weight.value.data.iter().chain(&a.bias.value.data);
    assert!(all.clone().all(|v| v.abs() <= 0.1));
    assert!(all.clone().any(|v| v.abs() > 0.09), "should fill the range");

    for (shape, i, o) in [
        (vec![3, 5], 5, 4),
        (vec![1, 7], 7, 1),
        (vec![3, 6, 1, 1], 6, 3),
        (vec![1, 1], 1, 2),
        (vec![64, 96], 96, 80),
    ] {
        let mut l = linear(i, o, 11);
        let x = random_tensor(&shape, 12);
        let y = l.forward(&x, Mode::Train);
        assert_eq!(y.shape, [shape[0], o]);
        assert_eq!(l.backward(&y).shape, shape, "gradient keeps the input's shape");
        assert_grads(&mut l, &x, 1e-2, "linear");
    }
}

#[test]
fn batchnorm_train_gradients() {
    for shape in [
        vec![3, 2, 5, 7],
        vec![1, 1, 5, 7],
        vec![3, 1, 1, 1],
        vec![2, 3, 1, 3],
        vec![4, 3, 64, 64],
    ] {
        let mut l = bn(shape[1], 20);
        assert_grads(&mut l, &random_tensor(&shape, 21), 1e-2, "bn train");
    }
}

#[test]
fn batchnorm_eval_gradients() {
    for shape in [vec![3, 2, 5, 7], vec![1, 1, 5, 7], vec![4, 3, 64, 64]] {
        let mut l = bn(shape[1], 30);
        // Move the running statistics away from (0, 1) first.
        for s in 0..3 {
            let mut x = random_tensor(&shape, 31 + s);
            x.data.iter_mut().for_each(|v| *v = 3.0 * *v + 0.7);
            l.forward(&x, Mode::Train);
        }
        assert!(l.running_mean.iter().all(|&m| m > 0.1));
        let before = (l.running_mean.clone(), l.running_var.clone());
        let mut e = EvalMode(l);
        assert_grads(&mut e, &random_tensor(&shape, 40), 1e-2, "bn eval");
        assert_eq!(
            (e.0.running_mean, e.0.running_var),
            before,
            "eval must not move the stats"
        );
    }
}

#[test]
fn batchnorm_running_stats_after_two_batches() {
    let mut l = BatchNorm2d::new(2);
    // [2, 2, 1, 2]: channel 0 sees {1, 2, 3, 4}, channel 1 sees {-1, 1, 1, 3}.
    let b1 = Tensor::from_vec(&[2, 2, 1, 2], vec![1.0, 2.0, -1.0, 1.0, 3.0, 4.0, 1.0, 3.0]);
    let y = l.forward(&b1, Mode::Train);
    // Normalised with the biased variances 1.25 and 2.
    let s0 = (1.25f32 + 1e-5).sqrt();
    let s1 = (2.0f32 + 1e-5).sqrt();
    #[rustfmt::skip]
    let want = [-1.5 / s0, -0.5 / s0, -2.0 / s1, 0.0, 0.5 / s0, 1.5 / s0, 0.0, 2.0 / s1];
    assert_close(&y.data, &want, 1e-6, "batch 1 output");
    // mean 0.1·(2.5, 1); var 0.9 + 0.1·unbiased (5/3, 8/3).
    assert_close(&l.running_mean, &[0.25, 0.1], 1e-7, "running mean 1");
    assert_close(
        &l.running_var,
        &[0.9 + 0.5 / 3.0, 0.9 + 0.8 / 3.0],
        1e-6,
        "running var 1",
    );

    // Channel 0 sees {0, 0, 2, 6} (mean 2, unbiased var 8); channel 1 is constant 5.
    let b2 = Tensor::from_vec(&[2, 2, 1, 2], vec![0.0, 0.0, 5.0, 5.0, 2.0, 6.0, 5.0, 5.0]);
    let y = l.forward(&b2, Mode::Train);
    assert_eq!(y.data[2..4], [0.0, 0.0], "a constant channel normalises to β");
    assert_close(&l.running_mean, &[0.425, 0.59], 1e-6, "running mean 2");
    assert_close(&l.running_var, &[1.76, 1.05], 1e-6, "running var 2");

    // Eval uses the running statistics and the affine transform.
    l.weight.value.data = vec![2.0, 0.5];
    l.bias.value.data = vec![0.1, -1.0];
    let x = Tensor::from_vec(&[1, 2, 1, 2], vec![0.425, 2.0, 0.59, -3.0]);
    let y = l.forward(&x, Mode::Eval);
    let (r0, r1) = ((1.76f32 + 1e-5).sqrt(), (1.05f32 + 1e-5).sqrt());
    let want = [
        0.1,
        2.0 * (2.0 - 0.425) / r0 + 0.1,
        -1.0,
        0.5 * (-3.0 - 0.59) / r1 - 1.0,
    ];
    assert_close(&y.data, &want, 1e-5, "eval output");
    assert_close(&l.running_mean, &[0.425, 0.59], 1e-6, "eval leaves the stats");

    // Buffers and params are visible to checkpoints under their paths.
    let mut seen = Vec::new();
    l.visit_buffers("bn", &mut |name, b| match b {
        Buffer::F32(v) => seen.push((name.to_string(), v.to_vec())),
        Buffer::F64(_) => panic!("BN buffers are f32"),
    });
    assert_eq!(seen[0].0, "bn.running_mean");
    assert_eq!(seen[1].0, "bn.running_var");
    assert_close(&seen[1].1, &[1.76, 1.05], 1e-6, "buffer");
    let mut names = Vec::new();
    l.visit_params("bn", &mut |n, _| names.push(n.to_string()));
    assert_eq!(names, ["bn.weight", "bn.bias"]);
}

#[test]
fn batchnorm_large_matches_naive_reference() {
    // Large enough for the parallel path, with |mean| >> std to test the variance's accuracy.
    let (n, c, h, w) = (8, 5, 33, 31);
    let mut x = random_tensor(&[n, c, h, w], 50);
    x.data.iter_mut().for_each(|v| *v = 100.0 + 0.01 * *v);
    let mut l = bn(c, 51);
    let y = l.forward(&x, Mode::Train);
    let hw = h * w;
    let m = (n * hw) as f64;
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|i| {
                x.data[(i * c + ch) * hw..(i * c + ch + 1) * hw]
                    .iter()
                    .map(|&v| v as f64)
            })
            .collect();
        let mean = vals.iter().sum::<f64>() / m;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
        let (g, b) = (l.weight.value.data[ch] as f64, l.bias.value.data[ch] as f64);
        for i in 0..n {
            for j in 0..hw {
                let k = (i * c + ch) * hw + j;
                let want = g * (x.data[k] as f64 - mean) / (var + 1e-5).sqrt() + b;
                assert!(
                    (y.data[k] as f64 - want).abs() < 2e-3,
                    "channel {ch}: {} vs {want}",
                    y.data[k]
                );
            }
        }
        let rm = 0.1 * mean;
        let rv = 0.9 + 0.1 * var * m / (m - 1.0);
        assert!((l.running_mean[ch] as f64 - rm).abs() < 1e-5);
        assert!((l.running_var[ch] as f64 - rv).abs() / rv < 1e-5);
    }
}

#[test]
fn softmax_cross_entropy_values() {
    let (loss, grad, correct) = softmax_cross_entropy(&Tensor::zeros(&[1, 2]), &[0]).unwrap();
    assert!((loss - std::f32::consts::LN_2).abs() < 1e-7);
    assert_eq!(grad.data, [-0.5, 0.5]);
    assert_eq!(correct, 1, "ties go to the first class");

    // ln(e + e² + e³) − 3, and a huge logit that would overflow a naive exp.
    let logits = Tensor::from_vec(&[3, 3], vec![1.0, 2.0, 3.0, 1000.0, 0.0, -1000.0, 0.0, 5.0, 1.0]);
    let (loss, grad, correct) = softmax_cross_entropy(&logits, &[2, 1, 1]).unwrap();
    let want = (0.407_605_964_444_380_1 + 1000.0 + 0.024_744_890_138_822_306) / 3.0;
    assert!((loss as f64 - want).abs() < 1e-4, "{loss} vs {want}");
    assert_eq!(correct, 2);
    for row in grad.data.chunks(3) {
        assert!(
            row.iter().sum::<f32>().abs() < 1e-6,
            "gradient rows sum to 0: {row:?}"
        );
    }
    assert!(grad.first_non_finite().is_none());
    // Row 1 puts all mass on class 0, label 1: gradient (1, −1, 0)/3.
    assert_close(
        &grad.data[3..6],
        &[1.0 / 3.0, -1.0 / 3.0, 0.0],
        1e-7,
        "saturated row",
    );
}

#[test]
fn softmax_cross_entropy_gradient_matches_finite_differences() {
    let logits = random_tensor(&[3, 5], 60);
    let labels = [4, 0, 2];
    let (_, grad, _) = softmax_cross_entropy(&logits, &labels).unwrap();
    let eps = 1e-2;
    for i in 0..logits.len() {
        let mut lp = logits.clone();
        lp.data[i] += eps;
        let mut lm = logits.clone();
        lm.data[i] -= eps;
        let num = (softmax_cross_entropy(&lp, &labels).unwrap().0
            - softmax_cross_entropy(&lm, &labels).unwrap().0)
            / (2.0 * eps);
        assert!(
            (num - grad.data[i]).abs() < 1e-4,
            "logit {i}: {num} vs {}",
            grad.data[i]
        );
    }
}

#[test]
fn softmax_cross_entropy_errors() {
    let logits = Tensor::zeros(&[2, 3]);
    let e = softmax_cross_entropy(&logits, &[0, 3]).unwrap_err();
    assert_eq!(
        e,
        LossError::Label {
            row: 1,
            label: 3,
            classes: 3
        }
    );
    assert!(e.to_string().contains("label 3"), "{e}");
    assert!(matches!(
        softmax_cross_entropy(&logits, &[0]),
        Err(LossError::Count { .. })
    ));
    assert!(matches!(
        softmax_cross_entropy(&Tensor::zeros(&[2, 3, 1, 1]), &[0, 0]),
        Err(LossError::Shape(_))
    ));
    assert_eq!(
        softmax_cross_entropy(&Tensor::zeros(&[0, 3]), &[]).unwrap_err(),
        LossError::Empty
    );
}
