//! MixedConv against standalone layers: same forward, same gradients, gate gradients that
//! make the binary-gate estimator exact on a loss linear in the output.

use winq_nas::arch::{pair_grad, probs};
use winq_nas::mixed::{lock, MixedConv};
use winq_nn::gradcheck::random_tensor;
use winq_nn::models::{Algo, ConvChoice};
use winq_nn::quant::Granularity;
use winq_nn::{Conv2d, Layer, Mode, Precision, Tensor, WinogradConv2d};
use winq_transforms::PointSet;

fn cands() -> Vec<ConvChoice> {
    let p = Precision::Int(8);
    vec![
        ConvChoice {
            algo: Algo::Im2row,
            precision: p,
        },
        ConvChoice {
            algo: Algo::Winograd { m: 2, flex: false },
            precision: p,
        },
        ConvChoice {
            algo: Algo::Winograd { m: 4, flex: true },
            precision: p,
        },
        ConvChoice {
            algo: Algo::Winograd { m: 4, flex: true },
            precision: Precision::Fp32,
        },
    ]
}

fn standalone(c: &ConvChoice, w: &Tensor, g: Granularity) -> Box<dyn Layer> {
    let (k, ci) = (w.shape[0], w.shape[1]);
    match c.algo {
        Algo::Im2row => Box::new(
            Conv2d::new(ci, k, 3, c.precision, w.clone()).with_per_channel_weights(g.per_channel_weights),
        ),
        Algo::Winograd { m, flex } => Box::new(
            WinogradConv2d::new(ci, k, m, PointSet::Default, flex, c.precision, w.clone())
                .unwrap()
                .with_granularity(g),
        ),
    }
}

fn grads(l: &mut dyn Layer) -> Vec<(String, Vec<f32>)> {
    let mut v = Vec::new();
    l.visit_params("", &mut |n, p| {
        v.push((n.rsplit('.').next().unwrap().to_string(), p.grad.data.clone()))
    });
    v
}

#[test]
fn every_path_computes_its_standalone_layer_and_routes_the_weight_gradient() {
    for per_tap in [false, true] {
        let g = Granularity {
            per_channel_weights: per_tap,
            per_tap,
        };
        path_twins(g);
    }
}

fn path_twins(g: Granularity) {
    let (c, k) = (3, 4);
    let w = random_tensor(&[k, c, 3, 3], 1);
    let mut mixed = MixedConv::new(c, k, cands(), &PointSet::Default, g, w.clone()).unwrap();
    let gate = mixed.gate();
    // Standalone twins run in lockstep so their quantizers see the same batches.
    let mut alone: Vec<Box<dyn Layer>> = cands().iter().map(|c| standalone(c, &w, g)).collect();
    for round in 0..2u64 {
        for (j, twin) in alone.iter_mut().enumerate() {
            let x = random_tensor(&[2, c, 8, 8], 20 + j as u64 + 100 * round);
            let dy = random_tensor(&[2, k, 8, 8], 30 + j as u64 + 100 * round);
            lock(&gate).active = j;
            let y = mixed.forward(&x, Mode::Train);
            assert!(
                y == twin.forward(&x, Mode::Train),
                "path {j} forward, round {round}, {g:?}"
            );
            let dx = mixed.backward(&dy);
            assert!(dx == twin.backward(&dy), "path {j} input gradient, round {round}");
            let mine = grads(&mut mixed);
            let theirs = grads(twin.as_mut());
            assert_eq!(
                mine.len(),
                theirs.len(),
                "path {j}: the optimizer sees weight + own transforms"
            );
            for ((n1, g1), (n2, g2)) in mine.iter().zip(&theirs) {
                assert_eq!(n1, n2);
                assert!(g1 == g2, "path {j} gradient of {n1}");
            }
            assert!(mine[0].1.iter().any(|v| *v != 0.0));
            winq_nn::zero_grads(&mut mixed);
            winq_nn::zero_grads(twin.as_mut());
            // Eval mode runs the same path from the ranges it observed.
            assert!(
                mixed.forward(&x, Mode::Eval) == twin.forward(&x, Mode::Eval),
                "path {j} eval"
            );
        }
    }
}

#[test]
fn gate_gradients_make_the_estimator_exact_for_a_linear_loss() {
    let (c, k) = (2, 3);
    let w = random_tensor(&[k, c, 3, 3], 4);
    let mut mixed = MixedConv::new(
        c,
        k,
        cands(),
        &PointSet::Default,
        Granularity::default(),
        w.clone(),
    )
    .unwrap();
    let gate = mixed.gate();
    let x = random_tensor(&[1, c, 6, 6], 5);
    let r = random_tensor(&[1, k, 6, 6], 6); // L(y) = <r, y>
                                             // Every path observes x once, so eval-mode partners and standalone outputs agree.
    let mut outs = Vec::new();
    for j in 0..cands().len() {
        lock(&gate).active = j;
        mixed.forward(&x, Mode::Train);
        mixed.backward(&r);
        outs.push(mixed.forward(&x, Mode::Eval));
    }
    winq_nn::zero_grads(&mut mixed);
    let alpha = [0.3, -0.2, 0.5, 0.1];
    let (a, b) = (2, 0);
    {
        let mut g = lock(&gate);
        g.active = a;
        g.partner = Some(b);
    }
    let y = mixed.forward(&x, Mode::Train);
    mixed.backward(&r);
    let dot = |t: &Tensor| {
        t.data
            .iter()
            .zip(&r.data)
            .map(|(p, q)| *p as f64 * *q as f64)
            .sum::<f64>()
    };
    let dg = lock(&gate)
        .grads
        .expect("an architecture step records gate gradients");
    assert!((dg.0 - dot(&y)).abs() < 1e-9 && (dg.1 - dot(&outs[b])).abs() < 1e-9);
    // The estimator against finite differences of L(Σ_j q_j(α)·o_j(x)) over the pair.
    let tau = 0.7;
    let est = pair_grad(&alpha, tau, (a, b), dg);
    // o_a is the sampled path's training-mode output (8-bit eval forwards compute on integer
    // codes and can round a few elements differently), o_b the partner's as the gate saw it.
    let mix = |al: &[f64]| {
        let q = probs(&[al[a], al[b]], tau);
        q[0] * dot(&y) + q[1] * dot(&outs[b])
    };
    for i in 0..alpha.len() {
        let h = 1e-5;
        let (mut up, mut dn) = (alpha, alpha);
        up[i] += h;
        dn[i] -= h;
        let fd = (mix(&up) - mix(&dn)) / (2.0 * h);
        assert!(
            (est[i] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
            "α{i}: {} vs {fd}",
            est[i]
        );
    }
    assert!(est[a].abs() > 0.0);
}
