//! Finite-difference gradient checks for layers (used by the tests of every layer).

use crate::layer::{Layer, Mode};
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Result of comparing analytic and numeric gradients: the worst relative error
/// ‖analytic − numeric‖ / max(‖numeric‖, floor) over the input and each parameter.
#[derive(Debug)]
pub struct GradReport {
    pub worst: f64,
    pub worst_name: String,
    pub details: Vec<(String, f64)>,
}

/// Loss L = Σ r ⊙ layer(x) with a fixed random r, in f64.
fn loss(layer: &mut dyn Layer, x: &Tensor, r: &[f32]) -> f64 {
    let y = layer.forward(x, Mode::Train);
    y.data.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Checks dL/dx and dL/dθ of `layer` at `x` by central differences with step `eps`.
/// Checks at most `max_probes` coordinates per tensor (chosen at random, seeded).
/// Layers with state updated in training mode (BN running stats, observers) are fine:
/// the loss does not depend on that state in training mode.
pub fn check(layer: &mut dyn Layer, x: &Tensor, eps: f32, max_probes: usize, seed: u64) -> GradReport {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let y = layer.forward(x, Mode::Train);
    let r: Vec<f32> = (0..y.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    crate::layer::zero_grads(layer);
    let gx = layer.backward(&Tensor::from_vec(&y.shape, r.clone()));
    let mut analytic: Vec<(String, Vec<f32>)> = vec![("input".into(), gx.data.clone())];
    layer.visit_params("", &mut |name, p| {
        analytic.push((name.to_string(), p.grad.data.clone()))
    });

    let mut details = Vec::new();
    // Input.
    {
        let probes = pick(&mut rng, x.len(), max_probes);
        let mut xp = x.clone();
        let mut num = Vec::new();
        for &i in &probes {
            let v = xp.data[i];
            xp.data[i] = v + eps;
            let lp = loss(layer, &xp, &r);
            xp.data[i] = v - eps;
            let lm = loss(layer, &xp, &r);
            xp.data[i] = v;
            num.push((lp - lm) / (2.0 * eps as f64));
        }
        details.push(("input".to_string(), rel(&analytic[0].1, &probes, &num)));
    }
    // Parameters, one at a time.
    let names: Vec<String> = analytic[1..].iter().map(|(n, _)| n.clone()).collect();
    for (pi, name) in names.iter().enumerate() {
        let len = analytic[pi + 1].1.len();
        let probes = pick(&mut rng, len, max_probes);
        let mut num = Vec::new();
        for &i in &probes {
            let mut vals = [0.0f64; 2];
            for (s, sign) in [1.0f32, -1.0].iter().enumerate() {
                set_param(layer, name, i, *sign * eps);
                vals[s] = loss(layer, x, &r);
                set_param(layer, name, i, -*sign * eps);
            }
            num.push((vals[0] - vals[1]) / (2.0 * eps as f64));
        }
        details.push((name.clone(), rel(&analytic[pi + 1].1, &probes, &num)));
    }
    let (worst_name, worst) = details
        .iter()
        .cloned()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or(("none".into(), 0.0));
    GradReport {
        worst,
        worst_name,
        details,
    }
}

fn set_param(layer: &mut dyn Layer, name: &str, i: usize, delta: f32) {
    layer.visit_params("", &mut |n, p| {
        if n == name {
            p.value.data[i] += delta;
        }
    });
}

fn pick(rng: &mut ChaCha8Rng, len: usize, max: usize) -> Vec<usize> {
    if len <= max {
        (0..len).collect()
    } else {
        (0..max).map(|_| rng.gen_range(0..len)).collect()
    }
}

fn rel(analytic: &[f32], probes: &[usize], numeric: &[f64]) -> f64 {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&i, &n) in probes.iter().zip(numeric) {
        let a = analytic[i] as f64;
        diff += (a - n) * (a - n);
        norm += n * n;
    }
    diff.sqrt() / norm.sqrt().max(1e-3)
}

/// A seeded random tensor with values in [-1, 1).
pub fn random_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect())
}
