//! Optimizers and schedules against hand-computed torch.optim values, and a small end-to-end fit.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use winq_nn::layer::ParamVisitor;
use winq_nn::{
    path, softmax_cross_entropy, zero_grads, Adam, Layer, Linear, LrSchedule, Mode, OptimError, Optimizer,
    Param, Schedule, Sgd, Tensor,
};

/// Scalar parameters whose gradients the tests set by hand ("a" decays, "b" does not).
struct Scalars {
    a: Param,
    b: Param,
}

impl Scalars {
    fn new(a: f32, b: f32) -> Scalars {
        let mut b = Param::new(Tensor::from_vec(&[1], vec![b]));
        b.decay = false;
        Scalars {
            a: Param::new(Tensor::from_vec(&[1], vec![a])),
            b,
        }
    }

    fn set_grads(&mut self, g: f32) {
        self.a.grad.data[0] = g;
        self.b.grad.data[0] = g;
    }
}

impl Layer for Scalars {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        x.clone()
    }
    fn backward(&mut self, g: &Tensor) -> Tensor {
        g.clone()
    }
    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        f(&path(prefix, "a"), &mut self.a);
        f(&path(prefix, "b"), &mut self.b);
    }
    fn describe(&self) -> String {
        "Scalars".into()
    }
}

/// Two steps from θ = 1 with gradients 0.5 then −0.3 and lr 0.1; returns θ after each step
/// for the decayed ("a") and the non-decayed ("b") parameter.
fn two_steps(opt: &mut dyn Optimizer) -> [(f32, f32); 2] {
    let mut m = Scalars::new(1.0, 1.0);
    let mut out = [(0.0, 0.0); 2];
    for (i, g) in [0.5, -0.3].into_iter().enumerate() {
        m.set_grads(g);
        opt.step(&mut m, 0.1);
        out[i] = (m.a.value.data[0], m.b.value.data[0]);
    }
    out
}

fn close(got: f32, want: f64, what: &str) {
    assert!((got as f64 - want).abs() < 1e-6, "{what}: got {got}, want {want}");
}

#[test]
fn adam_matches_torch() {
    // Step 1: m̂ = g, v̂ = g², so θ = 1 − 0.1·0.5/(0.5 + 1e-8) = 0.900000002.
    // Step 2: m = 0.015, v = 0.00033975, m̂ = 0.015/0.19, v̂ = 0.00033975/0.001999 → 0.8808502.
    let r = two_steps(&mut Adam::new(0.0).unwrap());
    close(r[0].0, 0.900000002, "adam step 1");
    close(r[1].0, 0.8808501989417752, "adam step 2");
    assert_eq!(r[1].0, r[1].1);

    // Weight decay 0.1: gradients 0.5 + 0.1·1 = 0.6, then −0.3 + 0.1·θ₁; "b" is not decayed.
    let mut adam = Adam::new(0.1).unwrap();
    let r = two_steps(&mut adam);
    close(r[0].0, 0.9000000016666666, "adam+wd step 1");
    close(r[1].0, 0.8613529972101512, "adam+wd step 2");
    close(r[1].1, 0.8808501989417752, "no decay for decay = false");
    assert_eq!(adam.steps(), 2);
}

#[test]
fn sgd_momentum_and_nesterov_match_torch() {
    let cases = [
        // (nesterov, weight decay, θ₁, θ₂)
        (false, 0.0, 0.95, 0.935),    // buf 0.5, then 0.9·0.5 − 0.3 = 0.15
        (false, 0.1, 0.94, 0.9066),   // d = 0.6, then −0.3 + 0.094; buf 0.54 + d
        (true, 0.0, 0.905, 0.9215),   // step d + 0.9·buf: 0.95, then −0.3 + 0.135
        (true, 0.1, 0.886, 0.877566), // as above with decayed gradients
    ];
    for (nesterov, wd, t1, t2) in cases {
        let r = two_steps(&mut Sgd::new(0.9, nesterov, wd).unwrap());
        let what = format!("sgd nesterov={nesterov} wd={wd}");
        close(r[0].0, t1, &what);
        close(r[1].0, t2, &what);
        let plain = two_steps(&mut Sgd::new(0.9, nesterov, 0.0).unwrap());
        assert_eq!(r[1].1, plain[1].1, "{what}: decay = false is not decayed");
    }
    // Without momentum: θ −= lr·g.
    let r = two_steps(&mut Sgd::new(0.0, false, 0.0).unwrap());
    close(r[0].0, 0.95, "plain sgd");
    close(r[1].0, 0.98, "plain sgd");
}

#[test]
fn invalid_hyper_parameters_are_errors() {
    assert!(matches!(Sgd::new(0.0, true, 0.0), Err(OptimError::Hyper(_))));
    assert!(matches!(Sgd::new(1.5, false, 0.0), Err(OptimError::Hyper(_))));
    assert!(matches!(Adam::new(-1.0), Err(OptimError::Hyper(_))));
    assert!(matches!(
        Adam::with(1.0, 0.999, 1e-8, 0.0),
        Err(OptimError::Hyper(_))
    ));
    assert!(matches!(Adam::new(f32::NAN), Err(OptimError::Hyper(_))));
}

#[test]
fn state_round_trip_continues_identically() {
    let rng = &mut ChaCha8Rng::seed_from_u64(1);
    let grads: Vec<f32> = (0..6).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let run = |opt: &mut dyn Optimizer, m: &mut Scalars, gs: &[f32]| {
        for &g in gs {
            m.set_grads(g);
            opt.step(m, 0.05);
        }
    };
    let makers: [fn() -> Box<dyn Optimizer>; 2] = [
        || Box::new(Adam::new(0.01).unwrap()),
        || Box::new(Sgd::new(0.9, true, 0.01).unwrap()),
    ];
    for make in makers {
        let (mut a, mut ma) = (make(), Scalars::new(0.3, -0.7));
        run(a.as_mut(), &mut ma, &grads);

        let (mut b, mut mb) = (make(), Scalars::new(0.3, -0.7));
        run(b.as_mut(), &mut mb, &grads[..3]);
        let saved = b.state();
        assert!(saved.windows(2).all(|w| w[0].0 < w[1].0), "sorted names");
        assert!(saved
            .iter()
            .all(|(n, _)| n.starts_with("a.") || n.starts_with("b.")));
        let mut c = make();
        c.load_state(&mut mb, saved, b.steps()).unwrap();
        run(c.as_mut(), &mut mb, &grads[3..]);
        assert_eq!(ma.a.value, mb.a.value);
        assert_eq!(ma.b.value, mb.b.value);
        assert_eq!(c.steps(), 6);
    }
}

#[test]
fn load_state_rejects_mismatches() {
    let mut m = Scalars::new(1.0, 1.0);
    let mut adam = Adam::new(0.0).unwrap();
    let bad = |name: &str, len: usize| vec![(name.to_string(), vec![0.0; len])];
    let e = adam.load_state(&mut m, bad("a.exp_avg", 2), 1).unwrap_err();
    assert_eq!(
        e,
        OptimError::Length {
            name: "a.exp_avg".into(),
            expected: 1,
            got: 2
        }
    );
    assert!(matches!(
        adam.load_state(&mut m, bad("zz.exp_avg", 1), 1),
        Err(OptimError::UnknownParam(_))
    ));
    assert!(matches!(
        adam.load_state(&mut m, bad("a.momentum", 1), 1),
        Err(OptimError::UnknownSlot(_))
    ));
    assert!(matches!(
        adam.load_state(&mut m, bad("a.exp_avg", 1), 1),
        Err(OptimError::Incomplete(_))
    ));
    assert_eq!(adam.steps(), 0, "a failed load changes nothing");
}

#[test]
fn multistep_schedule() {
    let s = Schedule::multi_step();
    let total = 100;
    let at = |step| s.lr(0.5, step, total);
    assert_eq!(at(0), 0.5);
    assert_eq!(at(59), 0.5);
    assert!((at(60) - 0.05).abs() < 1e-8, "{}", at(60));
    assert!((at(79) - 0.05).abs() < 1e-8);
    assert!((at(80) - 0.005).abs() < 1e-9, "{}", at(80));
    assert!((at(99) - 0.005).abs() < 1e-9);
    // Milestones round to the nearest step for totals that do not divide evenly.
    let s = Schedule::MultiStep {
        milestones: vec![0.5],
        gamma: 0.5,
    };
    assert_eq!(s.lr(1.0, 3, 7), 1.0);
    assert_eq!(s.lr(1.0, 4, 7), 0.5);
}

#[test]
fn cosine_schedule_and_warmup() {
    let s = Schedule::Cosine { min_lr: 0.001 };
    let total = 50;
    assert_eq!(s.lr(0.1, 0, total), 0.1);
    assert!(
        (s.lr(0.1, 25, total) - 0.0505).abs() < 1e-7,
        "halfway is the midpoint"
    );
    assert!((s.lr(0.1, total, total) - 0.001).abs() < 1e-9, "ends at min_lr");
    assert!(
        (s.lr(0.1, total + 10, total) - 0.001).abs() < 1e-9,
        "stays at min_lr"
    );
    let lrs: Vec<f32> = (0..=total).map(|t| s.lr(0.1, t, total)).collect();
    assert!(lrs.windows(2).all(|w| w[1] < w[0]), "decreasing");

    let w = LrSchedule::new(Schedule::Constant, 4);
    let ramp: Vec<f32> = (0..6).map(|t| w.lr(0.2, t, 100)).collect();
    let want = [0.05, 0.1, 0.15, 0.2, 0.2, 0.2];
    for (g, e) in ramp.iter().zip(want) {
        assert!((g - e).abs() < 1e-7, "{ramp:?}");
    }
    // Warm-up scales whatever the schedule gives; no warm-up leaves it unchanged.
    let wc = LrSchedule::new(s.clone(), 10);
    assert!((wc.lr(0.1, 4, total) - 0.5 * s.lr(0.1, 4, total)).abs() < 1e-8);
    assert_eq!(
        LrSchedule::new(s.clone(), 0).lr(0.1, 7, total),
        s.lr(0.1, 7, total)
    );
}

#[test]
fn linear_softmax_adam_fits_a_separable_problem() {
    // Three well-separated Gaussian blobs in 4-D.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let centres = [
        [2.0, 0.0, -1.0, 0.5],
        [-2.0, 1.5, 0.0, -0.5],
        [0.0, -2.0, 2.0, 0.0],
    ];
    let n = 96;
    let mut x = Vec::with_capacity(n * 4);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 3;
        labels.push(c);
        x.extend(centres[c].iter().map(|&m| m + rng.gen_range(-0.5f32..0.5)));
    }
    let x = Tensor::from_vec(&[n, 4], x);
    let mut model = Linear::new(4, 3, &mut rng);
    let mut adam = Adam::new(0.0).unwrap();
    let mut first = None;
    let mut last = (0.0, 0);
    for _ in 0..200 {
        zero_grads(&mut model);
        let logits = model.forward(&x, Mode::Train);
        let (loss, grad, correct) = softmax_cross_entropy(&logits, &labels).unwrap();
        first.get_or_insert(loss);
        model.backward(&grad);
        adam.step(&mut model, 0.05);
        last = (loss, correct);
    }
    let first = first.unwrap_or_default();
    assert!(first > 0.5, "starts untrained: {first}");
    assert!(
        last.0 < 0.1,
        "loss after 200 Adam steps: {} (from {first})",
        last.0
    );
    assert_eq!(last.1, n, "all points classified");
}
