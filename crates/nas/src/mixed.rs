//! A searchable 3x3 layer: one shared weight and one path per candidate, each path with its
//! own quantizer state (and, for flex, its own learned transforms). Which path runs is set
//! by the search through the layer's [`Gate`] (ProxylessNAS binary gates).

use std::sync::{Arc, Mutex, MutexGuard};
use winq_ir::Op;
use winq_nn::layer::{path, BufferVisitor, ParamVisitor};
use winq_nn::models::{Algo, ConvChoice};
use winq_nn::quant::Granularity;
use winq_nn::{Conv2d, Layer, Mode, Param, Tensor, WinogradConv2d};
use winq_transforms::{PointSet, TransformError};

/// The binary gates of one layer, shared between the layer and the search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    /// The path whose output the layer returns.
    pub active: usize,
    /// In an architecture step, the second sampled path: its output is computed too so that
    /// backward can tell how the loss would change if the gate moved to it.
    pub partner: Option<usize>,
    /// After an architecture step's backward: (∂L/∂g_active, ∂L/∂g_partner) with
    /// ∂L/∂g_j = <∂L/∂y, o_j(x)>.
    pub grads: Option<(f64, f64)>,
}

pub type GateRef = Arc<Mutex<Gate>>;

/// Locks a gate; a poisoned lock only means another thread panicked mid-update of plain data.
pub fn lock(g: &GateRef) -> MutexGuard<'_, Gate> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

enum PathLayer {
    Im2row(Box<Conv2d>),
    Winograd(Box<WinogradConv2d>),
}

impl PathLayer {
    fn layer(&mut self) -> &mut dyn Layer {
        match self {
            PathLayer::Im2row(l) => l.as_mut(),
            PathLayer::Winograd(l) => l.as_mut(),
        }
    }

    fn weight(&mut self) -> &mut Param {
        match self {
            PathLayer::Im2row(l) => &mut l.weight,
            PathLayer::Winograd(l) => &mut l.weight,
        }
    }

    /// The path's own learnable tensors (flex transforms), not its weight copy.
    fn visit_own(&mut self, prefix: &str, f: ParamVisitor) {
        if let PathLayer::Winograd(l) = self {
            if l.flex {
                f(&path(prefix, "A_t"), &mut l.at);
                f(&path(prefix, "B_t"), &mut l.bt);
                f(&path(prefix, "G"), &mut l.g);
            }
        }
    }
}

/// What the last training forward ran, for its backward.
struct Run {
    active: usize,
    /// The output of the active path and the partner's (index, output), in an architecture step.
    pair: Option<(Tensor, usize, Tensor)>,
}

pub struct MixedConv {
    pub in_channels: usize,
    pub out_channels: usize,
    /// [K, C, 3, 3], shared by every path.
    pub weight: Param,
    pub candidates: Vec<ConvChoice>,
    names: Vec<String>,
    paths: Vec<PathLayer>,
    gate: GateRef,
    /// Paths that have run a training forward (their quantizers hold observed ranges).
    observed: Vec<bool>,
    /// The path of the last training forward: the only one whose own parameters the optimizer
    /// sees, as in ProxylessNAS where unsampled paths get no gradient and no update (here they
    /// would otherwise decay and drift under Adam).
    last: Option<usize>,
    run: Option<Run>,
}

impl MixedConv {
    /// A layer over `candidates` (at least one; Winograd tiles already fitted to the map) with
    /// `weight` shared by all of them, each path quantized with granularity `g`.
    pub fn new(
        c: usize,
        k: usize,
        candidates: Vec<ConvChoice>,
        points: &PointSet,
        g: Granularity,
        weight: Tensor,
    ) -> Result<MixedConv, TransformError> {
        assert!(
            !candidates.is_empty(),
            "a mixed layer needs at least one candidate"
        );
        assert_eq!(weight.shape, [k, c, 3, 3], "weight shape");
        let paths = candidates
            .iter()
            .map(|ch| {
                Ok(match ch.algo {
                    Algo::Im2row => PathLayer::Im2row(Box::new(
                        Conv2d::new(c, k, 3, ch.precision, weight.clone())
                            .with_per_channel_weights(g.per_channel_weights),
                    )),
                    Algo::Winograd { m, flex } => PathLayer::Winograd(Box::new(
                        WinogradConv2d::new(c, k, m, points.clone(), flex, ch.precision, weight.clone())?
                            .with_granularity(g),
                    )),
                })
            })
            .collect::<Result<Vec<_>, TransformError>>()?;
        Ok(MixedConv {
            in_channels: c,
            out_channels: k,
            weight: Param::new(weight),
            names: candidates.iter().map(|c| c.to_string()).collect(),
            observed: vec![false; candidates.len()],
            candidates,
            paths,
            gate: GateRef::default(),
            last: None,
            run: None,
        })
    }

    /// The handle through which the search sets this layer's gates.
    pub fn gate(&self) -> GateRef {
        self.gate.clone()
    }

    /// Copies the shared weight into path `j` before it runs.
    fn sync(&mut self, j: usize) {
        let w = &self.weight.value.data;
        self.paths[j].weight().value.data.copy_from_slice(w);
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

impl Layer for MixedConv {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let (active, partner) = {
            let g = lock(&self.gate);
            (g.active, g.partner)
        };
        assert!(
            active < self.paths.len() && partner.is_none_or(|p| p < self.paths.len()),
            "gate outside the {} candidates",
            self.paths.len()
        );
        self.sync(active);
        let y = self.paths[active].layer().forward(x, mode);
        if mode == Mode::Eval {
            return y;
        }
        self.observed[active] = true;
        self.last = Some(active);
        let pair = match partner {
            Some(j) if j != active => {
                self.sync(j);
                // Eval mode needs no cache; a path that never trained has no ranges yet, so it
                // observes this batch first.
                let m = if self.observed[j] { Mode::Eval } else { Mode::Train };
                let o = self.paths[j].layer().forward(x, m);
                self.observed[j] = true;
                Some((y.clone(), j, o))
            }
            _ => None,
        };
        self.run = Some(Run { active, pair });
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let run = self
            .run
            .take()
            .expect("MixedConv::backward without a training forward");
        let dx = self.paths[run.active].layer().backward(grad);
        // Each path holds a copy of the shared weight: its gradient belongs to the shared one.
        let w = self.paths[run.active].weight();
        self.weight
            .grad
            .data
            .iter_mut()
            .zip(&w.grad.data)
            .for_each(|(s, g)| *s += g);
        w.zero_grad();
        if let Some((y, _, o)) = &run.pair {
            lock(&self.gate).grads = Some((dot(&grad.data, &y.data), dot(&grad.data, &o.data)));
        }
        dx
    }

    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        f(&path(prefix, "weight"), &mut self.weight);
        for (j, (p, n)) in self.paths.iter_mut().zip(&self.names).enumerate() {
            if self.last.is_none_or(|l| l == j) {
                p.visit_own(&path(prefix, n), f);
            }
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: BufferVisitor) {
        for (p, n) in self.paths.iter_mut().zip(&self.names) {
            p.layer().visit_buffers(&path(prefix, n), f);
        }
    }

    fn describe(&self) -> String {
        format!(
            "mixed conv3x3 {}->{} over {}",
            self.in_channels,
            self.out_channels,
            self.names.join(", ")
        )
    }

    /// The active path, as the engine runs it (set the gates to the chosen paths first).
    fn export(&mut self) -> Result<Op, winq_nn::ExportError> {
        let a = lock(&self.gate).active;
        self.sync(a);
        self.paths[a].layer().export()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use winq_nn::gradcheck::random_tensor;
    use winq_nn::Precision;

    #[test]
    fn optimizer_sees_the_shared_weight_once_and_only_the_last_paths_transforms() {
        let cands = vec![
            ConvChoice {
                algo: Algo::Im2row,
                precision: Precision::Int(8),
            },
            ConvChoice {
                algo: Algo::Winograd { m: 2, flex: true },
                precision: Precision::Int(8),
            },
            ConvChoice {
                algo: Algo::Winograd { m: 4, flex: true },
                precision: Precision::Int(8),
            },
        ];
        let mut l = MixedConv::new(
            2,
            3,
            cands,
            &PointSet::Default,
            Granularity::default(),
            random_tensor(&[3, 2, 3, 3], 1),
        )
        .unwrap();
        let names = |l: &mut MixedConv| {
            let mut v = Vec::new();
            l.visit_params("m", &mut |n, _| v.push(n.to_string()));
            v
        };
        assert_eq!(
            names(&mut l),
            [
                "m.weight",
                "m.F2-flex-int8.A_t",
                "m.F2-flex-int8.B_t",
                "m.F2-flex-int8.G",
                "m.F4-flex-int8.A_t",
                "m.F4-flex-int8.B_t",
                "m.F4-flex-int8.G"
            ]
        );
        lock(&l.gate()).active = 2;
        l.forward(&random_tensor(&[1, 2, 6, 6], 2), Mode::Train);
        assert_eq!(
            names(&mut l),
            [
                "m.weight",
                "m.F4-flex-int8.A_t",
                "m.F4-flex-int8.B_t",
                "m.F4-flex-int8.G"
            ]
        );
        lock(&l.gate()).active = 0;
        l.forward(&random_tensor(&[1, 2, 6, 6], 2), Mode::Train);
        assert_eq!(names(&mut l), ["m.weight"]);
    }
}
