//! Optimizers matching `torch.optim.Adam` and `torch.optim.SGD`, with state keyed by the
//! parameter's dotted path so it can be checkpointed and restored.

use crate::layer::Layer;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt;

/// Parameters with at least this many values are updated on rayon's pool.
const PAR_MIN: usize = 1 << 15;
const CHUNK: usize = 1 << 12;

/// Invalid hyper-parameters or a checkpointed state that does not fit the model.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimError {
    /// A hyper-parameter outside its valid range.
    Hyper(String),
    /// A state entry whose name does not end in one of the optimizer's slot names.
    UnknownSlot(String),
    /// A state entry for a parameter the model does not have.
    UnknownParam(String),
    /// A state entry whose length differs from its parameter's.
    Length {
        name: String,
        expected: usize,
        got: usize,
    },
    /// A parameter with some, but not all, of the optimizer's slots.
    Incomplete(String),
}

impl fmt::Display for OptimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptimError::Hyper(m) => write!(f, "invalid optimizer setting: {m}"),
            OptimError::UnknownSlot(n) => write!(f, "optimizer state '{n}' has an unknown slot name"),
            OptimError::UnknownParam(n) => {
                write!(
                    f,
                    "optimizer state '{n}' refers to a parameter the model does not have"
                )
            }
            OptimError::Length { name, expected, got } => {
                write!(
                    f,
                    "optimizer state '{name}' has {got} values, the parameter has {expected}"
                )
            }
            OptimError::Incomplete(n) => write!(f, "optimizer state for '{n}' is missing a slot"),
        }
    }
}

impl std::error::Error for OptimError {}

/// Updates every parameter of a model from its accumulated gradient.
pub trait Optimizer: Send {
    /// One update with learning rate `lr` (the schedule lives outside the optimizer).
    fn step(&mut self, model: &mut dyn Layer, lr: f32);
    /// Named state tensors ("<param path>.<slot>"), sorted by name, for checkpoints.
    fn state(&self) -> Vec<(String, Vec<f32>)>;
    /// Replaces the state with a checkpointed one after checking it against `model`;
    /// on error the current state is kept.
    fn load_state(
        &mut self,
        model: &mut dyn Layer,
        state: Vec<(String, Vec<f32>)>,
        steps: u64,
    ) -> Result<(), OptimError>;
    /// Number of `step` calls so far (Adam's bias correction depends on it).
    fn steps(&self) -> u64;
}

fn check_hyper(ok: bool, what: impl FnOnce() -> String) -> Result<(), OptimError> {
    if ok {
        Ok(())
    } else {
        Err(OptimError::Hyper(what()))
    }
}

/// Applies `f(value, grad, slot_a, slot_b)` chunk-wise, on rayon's pool for large params.
fn update4(
    value: &mut [f32],
    grad: &[f32],
    a: &mut [f32],
    b: &mut [f32],
    f: impl Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync + Send,
) {
    if value.len() >= PAR_MIN {
        value
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .zip(b.par_chunks_mut(CHUNK))
            .for_each(|(((v, g), a), b)| f(v, g, a, b));
    } else {
        f(value, grad, a, b);
    }
}

/// Applies `f(value, grad, slot)` chunk-wise, on rayon's pool for large params.
fn update3(
    value: &mut [f32],
    grad: &[f32],
    a: &mut [f32],
    f: impl Fn(&mut [f32], &[f32], &mut [f32]) + Sync + Send,
) {
    if value.len() >= PAR_MIN {
        value
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .for_each(|((v, g), a)| f(v, g, a));
    } else {
        f(value, grad, a);
    }
}

/// Validates named state entries against the model's parameters and groups them by
/// parameter: map path → one vector per slot (in `slots` order).
fn parse_state(
    model: &mut dyn Layer,
    state: Vec<(String, Vec<f32>)>,
    slots: &[&str],
) -> Result<HashMap<String, Vec<Vec<f32>>>, OptimError> {
    let mut lens = HashMap::new();
    model.visit_params("", &mut |name, p| {
        lens.insert(name.to_string(), p.value.len());
    });
    let mut out: HashMap<String, Vec<Option<Vec<f32>>>> = HashMap::new();
    for (key, values) in state {
        let Some((param, slot)) = key.rsplit_once('.') else {
            return Err(OptimError::UnknownSlot(key));
        };
        let Some(si) = slots.iter().position(|s| *s == slot) else {
            return Err(OptimError::UnknownSlot(key));
        };
        let Some(&len) = lens.get(param) else {
            return Err(OptimError::UnknownParam(key));
        };
        if values.len() != len {
            return Err(OptimError::Length {
                name: key,
                expected: len,
                got: values.len(),
            });
        }
        out.entry(param.to_string())
            .or_insert_with(|| vec![None; slots.len()])[si] = Some(values);
    }
    out.into_iter()
        .map(|(name, v)| match v.into_iter().collect::<Option<Vec<_>>>() {
            Some(v) => Ok((name, v)),
            None => Err(OptimError::Incomplete(name)),
        })
        .collect()
}

/// `torch.optim.Adam` (amsgrad off). Weight decay is L2 added to the gradient
/// (g += wd·θ), applied only to parameters with `decay`.
pub struct Adam {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    steps: u64,
    /// Path → (exp_avg, exp_avg_sq).
    slots: HashMap<String, (Vec<f32>, Vec<f32>)>,
}

impl Adam {
    /// PyTorch's defaults (β = 0.9, 0.999, ε = 1e-8) with the given weight decay.
    pub fn new(weight_decay: f32) -> Result<Adam, OptimError> {
        Adam::with(0.9, 0.999, 1e-8, weight_decay)
    }

    pub fn with(beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> Result<Adam, OptimError> {
        check_hyper((0.0..1.0).contains(&beta1), || {
            format!("beta1 must be in [0, 1), got {beta1}")
        })?;
        check_hyper((0.0..1.0).contains(&beta2), || {
            format!("beta2 must be in [0, 1), got {beta2}")
        })?;
        check_hyper(eps >= 0.0, || format!("eps must be >= 0, got {eps}"))?;
        check_hyper(weight_decay >= 0.0, || {
            format!("weight decay must be >= 0, got {weight_decay}")
        })?;
        Ok(Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            steps: 0,
            slots: HashMap::new(),
        })
    }
}

impl Optimizer for Adam {
    fn step(&mut self, model: &mut dyn Layer, lr: f32) {
        self.steps += 1;
        // Scalars in f64 as torch computes them in Python floats.
        let t = self.steps as i32;
        let bc1 = 1.0 - (self.beta1 as f64).powi(t);
        let bc2_sqrt = (1.0 - (self.beta2 as f64).powi(t)).sqrt();
        let step_size = (lr as f64 / bc1) as f32;
        let inv_bc2_sqrt = (1.0 / bc2_sqrt) as f32;
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        let slots = &mut self.slots;
        model.visit_params("", &mut |name, p| {
            let len = p.value.len();
            if !slots.contains_key(name) {
                slots.insert(name.to_string(), (vec![0.0; len], vec![0.0; len]));
            }
            let Some((m, v)) = slots.get_mut(name) else { return };
            assert_eq!(m.len(), len, "Adam: parameter '{name}' changed size");
            let wd = if p.decay { wd } else { 0.0 };
            update4(&mut p.value.data, &p.grad.data, m, v, |val, grad, m, v| {
                for (((x, &g), m), v) in val.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g + wd * *x;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    let denom = v.sqrt() * inv_bc2_sqrt + eps;
                    *x -= step_size * *m / denom;
                }
            });
        });
    }

    fn state(&self) -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::with_capacity(2 * self.slots.len());
        for (name, (m, v)) in &self.slots {
            out.push((format!("{name}.exp_avg"), m.clone()));
            out.push((format!("{name}.exp_avg_sq"), v.clone()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn load_state(
        &mut self,
        model: &mut dyn Layer,
        state: Vec<(String, Vec<f32>)>,
        steps: u64,
    ) -> Result<(), OptimError> {
        let parsed = parse_state(model, state, &["exp_avg", "exp_avg_sq"])?;
        self.slots = parsed
            .into_iter()
            .map(|(name, mut v)| {
                let sq = v.pop().unwrap_or_default();
                let avg = v.pop().unwrap_or_default();
                (name, (avg, sq))
            })
            .collect();
        self.steps = steps;
        Ok(())
    }

    fn steps(&self) -> u64 {
        self.steps
    }
}

/// `torch.optim.SGD` with dampening 0: d = g + wd·θ (decay params only);
/// buf = d on the first step, then buf = μ·buf + d; Nesterov uses d + μ·buf, else buf.
pub struct Sgd {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    steps: u64,
    /// Path → momentum buffer (absent until the parameter's first step).
    bufs: HashMap<String, Vec<f32>>,
}

impl Sgd {
    pub fn new(momentum: f32, nesterov: bool, weight_decay: f32) -> Result<Sgd, OptimError> {
        check_hyper((0.0..1.0).contains(&momentum), || {
            format!("momentum must be in [0, 1), got {momentum}")
        })?;
        check_hyper(!nesterov || momentum > 0.0, || {
            "Nesterov needs momentum > 0".to_string()
        })?;
        check_hyper(weight_decay >= 0.0, || {
            format!("weight decay must be >= 0, got {weight_decay}")
        })?;
        Ok(Sgd {
            momentum,
            nesterov,
            weight_decay,
            steps: 0,
            bufs: HashMap::new(),
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &mut dyn Layer, lr: f32) {
        self.steps += 1;
        let (mu, nesterov, wd) = (self.momentum, self.nesterov, self.weight_decay);
        let bufs = &mut self.bufs;
        model.visit_params("", &mut |name, p| {
            let wd = if p.decay { wd } else { 0.0 };
            if mu == 0.0 {
                for (x, &g) in p.value.data.iter_mut().zip(&p.grad.data) {
                    *x -= lr * (g + wd * *x);
                }
                return;
            }
            // A fresh buffer starts at d itself: with buf = 0 and "buf = μ·buf + d" that is
            // the same update, so one code path covers the first step.
            let len = p.value.len();
            if !bufs.contains_key(name) {
                bufs.insert(name.to_string(), vec![0.0; len]);
            }
            let Some(buf) = bufs.get_mut(name) else { return };
            assert_eq!(buf.len(), len, "SGD: parameter '{name}' changed size");
            update3(&mut p.value.data, &p.grad.data, buf, |val, grad, buf| {
                for ((x, &g), b) in val.iter_mut().zip(grad).zip(buf.iter_mut()) {
                    let d = g + wd * *x;
                    *b = mu * *b + d;
                    *x -= lr * if nesterov { d + mu * *b } else { *b };
                }
            });
        });
    }

    fn state(&self) -> Vec<(String, Vec<f32>)> {
        let mut out: Vec<_> = self
            .bufs
            .iter()
            .map(|(name, b)| (format!("{name}.momentum_buffer"), b.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn load_state(
        &mut self,
        model: &mut dyn Layer,
        state: Vec<(String, Vec<f32>)>,
        steps: u64,
    ) -> Result<(), OptimError> {
        let parsed = parse_state(model, state, &["momentum_buffer"])?;
        self.bufs = parsed
            .into_iter()
            .map(|(name, mut v)| (name, v.pop().unwrap_or_default()))
            .collect();
        self.steps = steps;
        Ok(())
    }

    fn steps(&self) -> u64 {
        self.steps
    }
}
