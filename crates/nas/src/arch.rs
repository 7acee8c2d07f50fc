//! Architecture logits α: per-layer candidate probabilities softmax(α/τ), path sampling,
//! the binary-gate gradient estimator, the expected-latency term and α's optimizer.

use crate::mixed::{lock, GateRef};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use winq_nn::models::{ConvChoice, ConvSite};

/// How the expected latency enters the logits' loss, CE + λ·term.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyTerm {
    /// E[latency] in milliseconds (the paper's form): the useful λ depends on the model's and
    /// the machine's absolute speed.
    Ms,
    /// E[latency] as a fraction of the reference network's latency (all im2row INT8): λ = 1
    /// weighs a whole reference network's latency like one nat of cross-entropy, whatever
    /// the model and machine.
    Relative,
    /// A latency budget: max(0, predicted / target − 1), the relative excess of the predicted
    /// whole-network latency over `target_ms`; no pressure once the network fits.
    Target { target_ms: f64 },
}

/// The latency scales an objective needs: the reference network and the fixed part of the
/// whole network (stem, shortcuts, pooling, classifier), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyScale {
    pub reference_ms: f64,
    pub constant_ms: f64,
}

impl LatencyTerm {
    /// The term's value at E[latency of the searchable layers] = `expected_ms`.
    pub fn value(&self, expected_ms: f64, s: &LatencyScale) -> f64 {
        match *self {
            LatencyTerm::Ms => expected_ms,
            LatencyTerm::Relative => expected_ms / s.reference_ms,
            LatencyTerm::Target { target_ms } => ((s.constant_ms + expected_ms) / target_ms - 1.0).max(0.0),
        }
    }

    /// d(term)/d(expected_ms) at `expected_ms`.
    pub fn slope(&self, expected_ms: f64, s: &LatencyScale) -> f64 {
        match *self {
            LatencyTerm::Ms => 1.0,
            LatencyTerm::Relative => 1.0 / s.reference_ms,
            LatencyTerm::Target { target_ms } => {
                if s.constant_ms + expected_ms > target_ms {
                    1.0 / target_ms
                } else {
                    0.0
                }
            }
        }
    }
}

/// Entropy of a distribution divided by ln(n): 0 when settled on one candidate, 1 when uniform
/// (0 for a single candidate).
pub fn normalized_entropy(p: &[f64]) -> f64 {
    if p.len() < 2 {
        return 0.0;
    }
    let h: f64 = p.iter().filter(|&&v| v > 0.0).map(|&v| -v * v.ln()).sum();
    h / (p.len() as f64).ln()
}

/// One searchable layer as the search sees it.
pub struct SearchLayer {
    pub site: ConvSite,
    pub candidates: Vec<ConvChoice>,
    /// Engine latency of each candidate at this layer's shape (ms).
    pub latency_ms: Vec<f64>,
    pub alpha: Vec<f64>,
    pub gate: GateRef,
}

/// softmax(α/τ).
pub fn probs(alpha: &[f64], tau: f64) -> Vec<f64> {
    let hi = alpha.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = alpha.iter().map(|a| ((a - hi) / tau).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Σ_i p_i · latency_i for one layer.
pub fn expected(p: &[f64], latency: &[f64]) -> f64 {
    p.iter().zip(latency).map(|(p, l)| p * l).sum()
}

/// ∂E[latency]/∂α for one layer: (1/τ)·p_i·(latency_i − E[latency]).
pub fn latency_grad(alpha: &[f64], latency: &[f64], tau: f64) -> Vec<f64> {
    let p = probs(alpha, tau);
    let e = expected(&p, latency);
    p.iter().zip(latency).map(|(p, l)| p * (l - e) / tau).collect()
}

/// The binary-gate estimator of ∂L/∂α for a sampled pair (a, b) (ProxylessNAS): with q the
/// softmax over the pair only and ∂L/∂g_j = <∂L/∂y, o_j(x)>,
/// ∂L/∂α_i = (1/τ)·Σ_j ∂L/∂g_j·q_j·(δ_ij − q_i) for i in the pair, 0 elsewhere.
pub fn pair_grad(alpha: &[f64], tau: f64, pair: (usize, usize), gate_grads: (f64, f64)) -> Vec<f64> {
    let (a, b) = pair;
    let q = probs(&[alpha[a], alpha[b]], tau);
    let dg = [gate_grads.0, gate_grads.1];
    let mut out = vec![0.0; alpha.len()];
    for (i, &ii) in [a, b].iter().enumerate() {
        out[ii] = (0..2)
            .map(|j| dg[j] * q[j] * (f64::from(u8::from(i == j)) - q[i]))
            .sum::<f64>()
            / tau;
    }
    out
}

/// Draws an index from the distribution `p`.
pub fn sample(p: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let u: f64 = rng.gen_range(0.0..1.0);
    let mut acc = 0.0;
    for (i, v) in p.iter().enumerate() {
        acc += v;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

/// Two different indices drawn from `p` without replacement, then the active one of the two
/// drawn from their renormalised probabilities: (active, partner).
pub fn sample_pair(p: &[f64], rng: &mut ChaCha8Rng) -> (usize, usize) {
    let first = sample(p, rng);
    let mut rest = p.to_vec();
    rest[first] = 0.0;
    let s: f64 = rest.iter().sum();
    let second = if s > 0.0 {
        rest.iter_mut().for_each(|v| *v /= s);
        sample(&rest, rng)
    } else {
        (first + 1) % p.len() // all mass on one candidate: pair it with a neighbour
    };
    let pf = p[first] / (p[first] + p[second]).max(f64::MIN_POSITIVE);
    if rng.gen_range(0.0..1.0) < pf {
        (first, second)
    } else {
        (second, first)
    }
}

/// Adam for the logits (ProxylessNAS: β1 = 0, β2 = 0.999).
#[derive(Debug, Clone)]
pub struct AlphaAdam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    t: i32,
    m: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
}

impl AlphaAdam {
    pub fn new(lr: f64, layers: &[SearchLayer]) -> AlphaAdam {
        let zeros = || layers.iter().map(|l| vec![0.0; l.alpha.len()]).collect();
        AlphaAdam {
            lr,
            beta1: 0.0,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: zeros(),
            v: zeros(),
        }
    }

    pub fn step(&mut self, layers: &mut [SearchLayer], grads: &[Vec<f64>]) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2 = 1.0 - self.beta2.powi(self.t);
        for (l, (g, (m, v))) in layers
            .iter_mut()
            .zip(grads.iter().zip(self.m.iter_mut().zip(&mut self.v)))
        {
            for i in 0..l.alpha.len() {
                m[i] = self.beta1 * m[i] + (1.0 - self.beta1) * g[i];
                v[i] = self.beta2 * v[i] + (1.0 - self.beta2) * g[i] * g[i];
                l.alpha[i] -= self.lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + self.eps);
            }
        }
    }
}

/// The searchable layers of a supernet and their logits.
pub struct ArchLogits {
    pub layers: Vec<SearchLayer>,
    /// Latency of what the search cannot change (stem, shortcuts, pooling, classifier), in
    /// ms, when known; it adds to every prediction and moves no gradient.
    pub constant_ms: Option<f64>,
}

impl ArchLogits {
    pub fn probs(&self, tau: f64) -> Vec<Vec<f64>> {
        self.layers.iter().map(|l| probs(&l.alpha, tau)).collect()
    }

    /// E[latency] of the searchable layers under softmax(α/τ), in ms.
    pub fn expected_ms(&self, tau: f64) -> f64 {
        self.layers
            .iter()
            .map(|l| expected(&probs(&l.alpha, tau), &l.latency_ms))
            .sum()
    }

    /// The most likely candidate of each layer.
    pub fn argmax(&self) -> Vec<usize> {
        self.layers
            .iter()
            .map(|l| {
                l.alpha
                    .iter()
                    .enumerate()
                    .fold(0, |b, (i, &a)| if a > l.alpha[b] { i } else { b })
            })
            .collect()
    }

    /// How settled the search is: per layer, the normalized entropy of softmax(α/τ) and the
    /// probability of its most likely candidate; and the probability of the whole argmax
    /// network (the product of those).
    pub fn settledness(&self, tau: f64) -> Settledness {
        let probs = self.probs(tau);
        let entropy: Vec<f64> = probs.iter().map(|p| normalized_entropy(p)).collect();
        let top: Vec<f64> = probs.iter().zip(self.argmax()).map(|(p, i)| p[i]).collect();
        Settledness {
            mean_entropy: entropy.iter().sum::<f64>() / entropy.len().max(1) as f64,
            argmax_prob: top.iter().product(),
            min_top_prob: top.iter().cloned().fold(1.0, f64::min),
            entropy,
            top,
        }
    }

    /// The scales of the latency terms: the reference network is all im2row INT8 (its
    /// whole-network time when the fixed part is known) where every layer has that candidate,
    /// else the uniform mixture of the candidates.
    pub fn latency_scale(&self) -> LatencyScale {
        let im2row = self
            .layers
            .iter()
            .map(|l| {
                l.candidates
                    .iter()
                    .position(|c| *c == ConvChoice::IM2ROW_INT8)
                    .map(|i| l.latency_ms[i])
            })
            .sum::<Option<f64>>();
        let uniform = || {
            self.layers
                .iter()
                .map(|l| l.latency_ms.iter().sum::<f64>() / l.latency_ms.len().max(1) as f64)
                .sum()
        };
        let constant_ms = self.constant_ms.unwrap_or(0.0);
        LatencyScale {
            reference_ms: constant_ms + im2row.unwrap_or_else(uniform),
            constant_ms,
        }
    }

    /// Latency of the searchable layers of the argmax network, in ms.
    pub fn argmax_ms(&self) -> f64 {
        self.layers
            .iter()
            .zip(self.argmax())
            .map(|(l, i)| l.latency_ms[i])
            .sum()
    }

    /// Weight step: one path per layer drawn from softmax(α/τ).
    pub fn sample_paths(&self, tau: f64, rng: &mut ChaCha8Rng) {
        for l in &self.layers {
            let a = sample(&probs(&l.alpha, tau), rng);
            let mut g = lock(&l.gate);
            g.active = a;
            g.partner = None;
            g.grads = None;
        }
    }

    /// Architecture step: an (active, partner) pair per layer with at least two candidates.
    pub fn sample_pairs(&self, tau: f64, rng: &mut ChaCha8Rng) {
        for l in &self.layers {
            let p = probs(&l.alpha, tau);
            let mut g = lock(&l.gate);
            g.grads = None;
            if p.len() < 2 {
                g.active = 0;
                g.partner = None;
            } else {
                let (a, b) = sample_pair(&p, rng);
                g.active = a;
                g.partner = Some(b);
            }
        }
    }

    /// Sets every layer to a fixed path (evaluation, export).
    pub fn set_paths(&self, paths: &[usize]) {
        for (l, &a) in self.layers.iter().zip(paths) {
            let mut g = lock(&l.gate);
            g.active = a;
            g.partner = None;
            g.grads = None;
        }
    }

    /// ∂(CE + λ·term(E[latency]))/∂α after an architecture step's backward.
    pub fn grads(&self, tau: f64, lambda: f64, term: &LatencyTerm, scale: &LatencyScale) -> Vec<Vec<f64>> {
        // The chain rule through the term: every layer's ∂E/∂α times the term's slope at E.
        let coef = lambda * term.slope(self.expected_ms(tau), scale);
        self.layers
            .iter()
            .map(|l| {
                let mut g = if coef != 0.0 {
                    latency_grad(&l.alpha, &l.latency_ms, tau)
                        .into_iter()
                        .map(|v| coef * v)
                        .collect()
                } else {
                    vec![0.0; l.alpha.len()]
                };
                let gate = lock(&l.gate);
                if let (Some(b), Some(dg)) = (gate.partner, gate.grads) {
                    let ce = pair_grad(&l.alpha, tau, (gate.active, b), dg);
                    g.iter_mut().zip(ce).for_each(|(a, c)| *a += c);
                }
                g
            })
            .collect()
    }
}

/// See `ArchLogits::settledness`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settledness {
    pub mean_entropy: f64,
    /// Probability of the argmax network: Π over layers of the top candidate's probability.
    pub argmax_prob: f64,
    pub min_top_prob: f64,
    pub entropy: Vec<f64>,
    pub top: Vec<f64>,
}

/// τ over the search: geometric from `start` to `end` as `progress` goes 0 → 1.
pub fn temperature(start: f64, end: f64, progress: f64) -> f64 {
    start * (end / start).powf(progress.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn latency_gradient_matches_finite_differences() {
        let alpha = [0.3, -1.2, 0.8, 0.0];
        let lat = [1.0, 0.25, 0.6, 2.0];
        for tau in [1.0, 0.4] {
            let g = latency_grad(&alpha, &lat, tau);
            for i in 0..alpha.len() {
                let h = 1e-6;
                let (mut up, mut dn) = (alpha, alpha);
                up[i] += h;
                dn[i] -= h;
                let fd = (expected(&probs(&up, tau), &lat) - expected(&probs(&dn, tau), &lat)) / (2.0 * h);
                assert!((g[i] - fd).abs() < 1e-8, "τ {tau} i {i}: {} vs {fd}", g[i]);
            }
            // Moving along −∂E/∂α makes the cheap candidate more likely.
            assert!(g[1] < 0.0 && g[3] > 0.0);
        }
    }

    fn two_layers(alphas: [&[f64]; 2], lats: [&[f64]; 2]) -> ArchLogits {
        let layers = alphas
            .iter()
            .zip(lats)
            .enumerate()
            .map(|(index, (a, l))| SearchLayer {
                site: ConvSite {
                    index,
                    in_channels: 8,
                    out_channels: 8,
                    height: 8,
                    width: 8,
                },
                candidates: vec![ConvChoice::IM2ROW_INT8; a.len()],
                latency_ms: l.to_vec(),
                alpha: a.to_vec(),
                gate: GateRef::default(),
            })
            .collect();
        ArchLogits {
            layers,
            constant_ms: None,
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn every_latency_term_gradient_matches_finite_differences() {
        let (a0, a1) = ([0.3, -1.2, 0.8], [0.5, -0.1]);
        let (l0, l1) = ([1.0, 0.25, 0.6], [0.4, 0.9]);
        let scale = LatencyScale {
            reference_ms: 1.6,
            constant_ms: 0.3,
        };
        let lambda = 0.7;
        // E ≈ 0.56 + 0.62 here: predicted ≈ 1.48 ms, over a 1.2 ms budget, under a 2 ms one.
        for (term, active) in [
            (LatencyTerm::Ms, true),
            (LatencyTerm::Relative, true),
            (LatencyTerm::Target { target_ms: 1.2 }, true),
            (LatencyTerm::Target { target_ms: 2.0 }, false),
        ] {
            for tau in [1.0, 0.3] {
                let arch = two_layers([&a0, &a1], [&l0, &l1]);
                let g = arch.grads(tau, lambda, &term, &scale);
                let loss = |arch: &ArchLogits| lambda * term.value(arch.expected_ms(tau), &scale);
                let mut any = false;
                for (li, n) in [(0, a0.len()), (1, a1.len())] {
                    for i in 0..n {
                        let h = 1e-6;
                        let (mut up, mut dn) = (
                            two_layers([&a0, &a1], [&l0, &l1]),
                            two_layers([&a0, &a1], [&l0, &l1]),
                        );
                        up.layers[li].alpha[i] += h;
                        dn.layers[li].alpha[i] -= h;
                        let fd = (loss(&up) - loss(&dn)) / (2.0 * h);
                        assert!(
                            (g[li][i] - fd).abs() < 1e-7,
                            "{term:?} τ {tau} layer {li} i {i}: {} vs {fd}",
                            g[li][i]
                        );
                        any |= g[li][i] != 0.0;
                    }
                }
                assert_eq!(any, active, "{term:?}: pressure only over the budget");
            }
        }
        // The relative term does not depend on the unit: the same network timed 10x slower
        // (reference included) gives the same gradient.
        let slow = |v: &[f64]| v.iter().map(|x| 10.0 * x).collect::<Vec<_>>();
        let (s0, s1) = (slow(&l0), slow(&l1));
        let fast = two_layers([&a0, &a1], [&l0, &l1]).grads(1.0, 1.0, &LatencyTerm::Relative, &scale);
        let slow_scale = LatencyScale {
            reference_ms: 16.0,
            constant_ms: 3.0,
        };
        let slowg = two_layers([&a0, &a1], [&s0, &s1]).grads(1.0, 1.0, &LatencyTerm::Relative, &slow_scale);
        for (a, b) in fast.iter().flatten().zip(slowg.iter().flatten()) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn settledness_reports_entropy_and_the_argmax_network_probability() {
        let uniform = two_layers([&[0.0, 0.0, 0.0], &[0.0, 0.0]], [&[1.0, 1.0, 1.0], &[1.0, 1.0]]);
        let s = uniform.settledness(1.0);
        assert!((s.mean_entropy - 1.0).abs() < 1e-12 && (s.argmax_prob - 1.0 / 6.0).abs() < 1e-12);
        let settled = two_layers([&[9.0, 0.0, 0.0], &[0.0, 9.0]], [&[1.0, 1.0, 1.0], &[1.0, 1.0]]);
        let s = settled.settledness(1.0);
        assert!(
            s.mean_entropy < 0.01 && s.argmax_prob > 0.99 && s.min_top_prob > 0.99,
            "{s:?}"
        );
        // A lower temperature settles the same logits further.
        assert!(settled.settledness(0.5).mean_entropy < s.mean_entropy);
    }

    #[test]
    fn pair_gradient_is_the_gradient_of_the_pair_softmax_mixture() {
        // L(g) linear in the gates: L = Σ_j q_j·c_j over the pair, so ∂L/∂g_j = c_j and the
        // estimator is the exact gradient of Σ_j q_j(α)·c_j.
        let alpha = [0.2, -0.5, 1.1];
        let c = (0.7, -0.4);
        let pair = (2, 0);
        for tau in [1.0, 0.5] {
            let g = pair_grad(&alpha, tau, pair, c);
            let f = |a: &[f64]| {
                let q = probs(&[a[pair.0], a[pair.1]], tau);
                q[0] * c.0 + q[1] * c.1
            };
            for i in 0..3 {
                let h = 1e-6;
                let (mut up, mut dn) = (alpha, alpha);
                up[i] += h;
                dn[i] -= h;
                let fd = (f(&up) - f(&dn)) / (2.0 * h);
                assert!((g[i] - fd).abs() < 1e-8, "τ {tau} i {i}: {} vs {fd}", g[i]);
            }
            assert_eq!(g[1], 0.0, "an unsampled candidate gets no CE gradient");
        }
    }

    #[test]
    fn sampling_follows_the_probabilities_and_pairs_are_distinct() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let p = [0.1, 0.6, 0.3];
        let mut count = [0usize; 3];
        for _ in 0..20000 {
            count[sample(&p, &mut rng)] += 1;
        }
        for i in 0..3 {
            assert!((count[i] as f64 / 20000.0 - p[i]).abs() < 0.015, "{count:?}");
        }
        for _ in 0..1000 {
            let (a, b) = sample_pair(&p, &mut rng);
            assert_ne!(a, b);
        }
        let (a, b) = sample_pair(&[1.0, 0.0], &mut rng);
        assert_eq!((a, b), (0, 1));
    }

    #[test]
    fn temperature_is_geometric() {
        assert_eq!(temperature(1.0, 0.1, 0.0), 1.0);
        assert!((temperature(1.0, 0.01, 0.5) - 0.1).abs() < 1e-12);
        assert!((temperature(1.0, 0.1, 2.0) - 0.1).abs() < 1e-12);
    }
}
