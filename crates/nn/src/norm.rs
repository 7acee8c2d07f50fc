//! Batch normalisation over the channels of NCHW tensors, matching `torch.nn.BatchNorm2d`.

use crate::export::ExportError;
use crate::layer::{path, Buffer, BufferVisitor, Layer, Mode, Param, ParamVisitor};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Tensors with at least this many values are processed on rayon's pool.
const PAR_MIN: usize = 1 << 15;
/// Smallest amount of work (values) handed to one rayon task, so small planes batch up.
const TASK_MIN: usize = 1 << 12;
/// Independent accumulators in the reductions: breaks the add dependency chain so the
/// f64 sums vectorise without reassociation by the compiler.
const LANES: usize = 8;

/// Per-channel batch normalisation with an affine transform.
///
/// Train: normalises with the batch mean and biased variance, and moves the running
/// statistics towards the batch mean and the *unbiased* batch variance with `momentum`
/// (PyTorch's convention). Eval: normalises with the running statistics.
/// Both modes cache what backward needs, so backward works after either.
pub struct BatchNorm2d {
    pub channels: usize,
    pub eps: f32,
    pub momentum: f32,
    pub weight: Param,
    pub bias: Param,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    cache: Cache,
}

/// Allocations are kept across steps; `mode` is None when nothing is cached.
#[derive(Default)]
struct Cache {
    x: Tensor,
    mean: Vec<f32>,
    invstd: Vec<f32>,
    mode: Option<Mode>,
}

impl BatchNorm2d {
    pub fn new(channels: usize) -> BatchNorm2d {
        BatchNorm2d {
            channels,
            eps: 1e-5,
            momentum: 0.1,
            weight: Param::new(Tensor::from_vec(&[channels], vec![1.0; channels])),
            bias: Param::new(Tensor::zeros(&[channels])),
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            cache: Cache::default(),
        }
    }
}

/// Runs `f` for every channel, on rayon's pool when the tensor is large.
fn per_channel<T: Send>(c: usize, large: bool, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if large {
        (0..c).into_par_iter().map(f).collect()
    } else {
        (0..c).map(f).collect()
    }
}

/// Applies `f(channel, plane_index, out_plane)` to every (n, c) plane of `out`.
fn per_plane(out: &mut [f32], c: usize, hw: usize, f: impl Fn(usize, usize, &mut [f32]) + Sync + Send) {
    if hw == 0 || out.is_empty() {
        return;
    }
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(hw)
            .enumerate()
            .with_min_len((TASK_MIN / hw).max(1))
            .for_each(|(p, o)| f(p % c, p, o));
    } else {
        out.chunks_mut(hw).enumerate().for_each(|(p, o)| f(p % c, p, o));
    }
}

/// (Σ (a − sa), Σ (a − sa)·(b − sb)) over one plane, accumulated in f64 across LANES partial sums.
fn plane_sums(a: &[f32], sa: f64, b: &[f32], sb: f64) -> (f64, f64) {
    let mut s = [0.0f64; LANES];
    let mut p = [0.0f64; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (ka, kb) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            let da = ka[l] as f64 - sa;
            s[l] += da;
            p[l] += da * (kb[l] as f64 - sb);
        }
    }
    let (mut s1, mut p1) = (s.iter().sum::<f64>(), p.iter().sum::<f64>());
    for (&va, &vb) in ca.remainder().iter().zip(cb.remainder()) {
        let da = va as f64 - sa;
        s1 += da;
        p1 += da * (vb as f64 - sb);
    }
    (s1, p1)
}

/// out = k1·g + k2·(x − mu) + k3 element-wise: BN's forward (k1 = 0) and backward share it.
/// Centering before scaling keeps f32 accurate when |mean| >> std (no large cancelling terms).
fn centred_affine(out: &mut [f32], g: &[f32], k1: f32, x: &[f32], mu: f32, k2: f32, k3: f32) {
    for ((o, &vg), &vx) in out.iter_mut().zip(g).zip(x) {
        *o = k1 * vg + k2 * (vx - mu) + k3;
    }
}

impl Layer for BatchNorm2d {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let (n, c, h, w) = x.dims4();
        assert_eq!(
            c, self.channels,
            "BatchNorm2d({}): input has {c} channels (shape {:?})",
            self.channels, x.shape
        );
        let (hw, m) = (h * w, n * h * w);
        let large = x.len() >= PAR_MIN;
        let xd = &x.data;
        let (mean, invstd): (Vec<f32>, Vec<f32>) = match mode {
            Mode::Train => {
                assert!(
                    m > 1,
                    "BatchNorm2d: training needs more than one value per channel, got input {:?}",
                    x.shape
                );
                // Shifted sums (shift = first value of the channel) keep the one-pass
                // variance accurate when |mean| >> std.
                let stats = per_channel(c, large, |ch| {
                    let shift = xd[ch * hw] as f64;
                    let (mut s, mut s2) = (0.0, 0.0);
                    for i in 0..n {
                        let plane = &xd[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                        let (a, b) = plane_sums(plane, shift, plane, shift);
                        s += a;
                        s2 += b;
                    }
                    let d = s / m as f64;
                    (shift + d, (s2 / m as f64 - d * d).max(0.0))
                });
                let mom = self.momentum as f64;
                let unbias = m as f64 / (m - 1) as f64;
                for (ch, &(mu, var)) in stats.iter().enumerate() {
                    let rm = &mut self.running_mean[ch];
                    *rm = ((1.0 - mom) * *rm as f64 + mom * mu) as f32;
                    let rv = &mut self.running_var[ch];
                    *rv = ((1.0 - mom) * *rv as f64 + mom * var * unbias) as f32;
                }
                stats
                    .iter()
                    .map(|&(mu, var)| (mu as f32, (1.0 / (var + self.eps as f64).sqrt()) as f32))
                    .unzip()
            }
            Mode::Eval => self
                .running_mean
                .iter()
                .zip(&self.running_var)
                .map(|(&mu, &var)| (mu, (1.0 / (var as f64 + self.eps as f64).sqrt()) as f32))
                .unzip(),
        };
        // y = γ·invstd·(x − mean) + β.
        let (gamma, beta) = (&self.weight.value.data, &self.bias.value.data);
        let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * invstd[ch]).collect();
        let mut y = Tensor::zeros(&x.shape);
        per_plane(&mut y.data, c, hw, |ch, p, o| {
            let xp = &xd[p * hw..(p + 1) * hw];
            centred_affine(o, xp, 0.0, xp, mean[ch], scale[ch], beta[ch]);
        });
        self.cache.x.clone_from(x);
        self.cache.mean = mean;
        self.cache.invstd = invstd;
        self.cache.mode = Some(mode);
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let mode = self
            .cache
            .mode
            .take()
            .expect("BatchNorm2d::backward called without a forward");
        let x = &self.cache.x;
        assert_eq!(
            grad.shape, x.shape,
            "BatchNorm2d: gradient shape differs from input"
        );
        let (n, c, h, w) = x.dims4();
        let (hw, m) = (h * w, (n * h * w) as f64);
        let large = x.len() >= PAR_MIN;
        let (xd, gd) = (&x.data, &grad.data);
        let (mean, invstd) = (&self.cache.mean, &self.cache.invstd);
        // Per channel: Σg and Σg·(x − mean).
        let sums = per_channel(c, large, |ch| {
            let (mut sg, mut sgx) = (0.0, 0.0);
            for i in 0..n {
                let r = (i * c + ch) * hw..(i * c + ch + 1) * hw;
                let (a, b) = plane_sums(&gd[r.clone()], 0.0, &xd[r], mean[ch] as f64);
                sg += a;
                sgx += b;
            }
            (sg, sgx)
        });
        // dx = k1·g + k2·(x − mean) + k3 per channel. Train adds the paths through the batch mean and
        // variance: dx = γ·σ⁻¹·(g − Σg/M − x̂·Σ(g·x̂)/M); Eval is the plain affine γ·σ⁻¹·g.
        let mut k = Vec::with_capacity(c);
        for (ch, &(sg, sgx)) in sums.iter().enumerate() {
            let is = invstd[ch] as f64;
            self.weight.grad.data[ch] += (sgx * is) as f32;
            self.bias.grad.data[ch] += sg as f32;
            let a = self.weight.value.data[ch] as f64 * is;
            let (k2, k3) = match mode {
                Mode::Train => (-a * is * is * sgx / m, -a * sg / m),
                Mode::Eval => (0.0, 0.0),
            };
            k.push((a as f32, k2 as f32, k3 as f32));
        }
        let mut dx = Tensor::zeros(&x.shape);
        per_plane(&mut dx.data, c, hw, |ch, p, o| {
            let (k1, k2, k3) = k[ch];
            let r = p * hw..(p + 1) * hw;
            centred_affine(o, &gd[r.clone()], k1, &xd[r], mean[ch], k2, k3);
        });
        dx
    }

    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        f(&path(prefix, "weight"), &mut self.weight);
        f(&path(prefix, "bias"), &mut self.bias);
    }

    fn visit_buffers(&mut self, prefix: &str, f: BufferVisitor) {
        f(&path(prefix, "running_mean"), Buffer::F32(&mut self.running_mean));
        f(&path(prefix, "running_var"), Buffer::F32(&mut self.running_var));
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        // Exactly the eval path above: scale = γ·invstd with invstd computed in f64.
        let invstd = self
            .running_var
            .iter()
            .map(|&v| (1.0 / (v as f64 + self.eps as f64).sqrt()) as f32);
        let scale = self
            .weight
            .value
            .data
            .iter()
            .zip(invstd)
            .map(|(g, s)| g * s)
            .collect();
        Ok(winq_ir::Op::batch_norm(
            self.running_mean.clone(),
            scale,
            self.bias.value.data.clone(),
        ))
    }

    fn describe(&self) -> String {
        format!(
            "BatchNorm2d({}, eps={:e}, momentum={})",
            self.channels, self.eps, self.momentum
        )
    }
}
