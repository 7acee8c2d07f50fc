//! Pooling: 2×2 max pooling and global average pooling.

use crate::export::ExportError;
use crate::layer::{Layer, Mode};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Tensors with at least this many values are processed on rayon's pool.
const PAR_MIN: usize = 1 << 15;
/// Smallest amount of work (values) handed to one rayon task.
const TASK_MIN: usize = 1 << 12;

/// Runs `f(plane_index, plane)` over the `len`-sized planes of `a`.
fn planes(a: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if len == 0 || a.is_empty() {
        return;
    }
    if a.len() >= PAR_MIN {
        a.par_chunks_mut(len)
            .enumerate()
            .with_min_len((TASK_MIN / len).max(1))
            .for_each(|(p, pa)| f(p, pa));
    } else {
        a.chunks_mut(len).enumerate().for_each(|(p, pa)| f(p, pa));
    }
}

/// Runs `f(plane_index, a_plane, b_plane)` over matching planes of two buffers.
/// `work` (values read) decides whether to go parallel.
fn zip_planes(
    a: &mut [f32],
    b: &mut [u8],
    len: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32], &mut [u8]) + Sync + Send,
) {
    if len == 0 || a.is_empty() {
        return;
    }
    if work >= PAR_MIN {
        let per_task = (TASK_MIN / (4 * len)).max(1);
        a.par_chunks_mut(len)
            .zip(b.par_chunks_mut(len))
            .enumerate()
            .with_min_len(per_task)
            .for_each(|(p, (pa, pb))| f(p, pa, pb));
    } else {
        a.chunks_mut(len)
            .zip(b.chunks_mut(len))
            .enumerate()
            .for_each(|(p, (pa, pb))| f(p, pa, pb));
    }
}

/// 2×2 max pooling with stride 2. Odd heights/widths drop the last row/column (floor, as
/// PyTorch). Backward routes each gradient to the window's first maximum (row-major order).
/// Both modes cache the argmax, so backward works after either.
#[derive(Default)]
pub struct MaxPool2 {
    /// Position of the maximum inside its window: 0..4 as dy·2 + dx.
    arg: Vec<u8>,
    in_shape: Option<Vec<usize>>,
}

impl MaxPool2 {
    pub fn new() -> MaxPool2 {
        MaxPool2::default()
    }
}

impl Layer for MaxPool2 {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let (n, c, h, w) = x.dims4();
        let (oh, ow) = (h / 2, w / 2);
        let mut y = Tensor::zeros(&[n, c, oh, ow]);
        self.arg.resize(y.len(), 0);
        let xd = &x.data;
        zip_planes(&mut y.data, &mut self.arg, oh * ow, x.len(), |p, yo, ao| {
            let xp = &xd[p * h * w..(p + 1) * h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let i0 = 2 * oy * w + 2 * ox;
                    let cand = [xp[i0], xp[i0 + 1], xp[i0 + w], xp[i0 + w + 1]];
                    let (mut best, mut at) = (cand[0], 0u8);
                    for (k, &v) in cand.iter().enumerate().skip(1) {
                        // Strict > keeps the first maximum; a NaN wins (and stays), as in PyTorch.
                        if v > best || (v.is_nan() && !best.is_nan()) {
                            best = v;
                            at = k as u8;
                        }
                    }
                    yo[oy * ow + ox] = best;
                    ao[oy * ow + ox] = at;
                }
            }
        });
        self.in_shape = Some(x.shape.clone());
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let shape = self
            .in_shape
            .take()
            .expect("MaxPool2::backward called without a forward");
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        let (oh, ow) = (h / 2, w / 2);
        assert_eq!(
            grad.shape,
            [n, c, oh, ow],
            "MaxPool2: gradient shape differs from output"
        );
        let mut dx = Tensor::zeros(&shape);
        let (gd, arg) = (&grad.data, &self.arg);
        // Windows do not overlap, so each gradient lands on exactly one input position.
        planes(&mut dx.data, h * w, |p, dp| {
            let (gp, ap) = (
                &gd[p * oh * ow..(p + 1) * oh * ow],
                &arg[p * oh * ow..(p + 1) * oh * ow],
            );
            for oy in 0..oh {
                for ox in 0..ow {
                    let a = ap[oy * ow + ox] as usize;
                    dp[(2 * oy + a / 2) * w + 2 * ox + a % 2] = gp[oy * ow + ox];
                }
            }
        });
        dx
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        Ok(winq_ir::Op::MaxPool2)
    }

    fn describe(&self) -> String {
        "MaxPool2(2x2, stride 2)".into()
    }
}

/// Mean over H and W: [N, C, H, W] → [N, C].
#[derive(Default)]
pub struct GlobalAvgPool {
    in_shape: Option<Vec<usize>>,
}

impl GlobalAvgPool {
    pub fn new() -> GlobalAvgPool {
        GlobalAvgPool::default()
    }
}

impl Layer for GlobalAvgPool {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let (n, c, h, w) = x.dims4();
        let hw = h * w;
        assert!(hw > 0, "GlobalAvgPool: empty spatial size in shape {:?}", x.shape);
        let mut y = Tensor::zeros(&[n, c]);
        let xd = &x.data;
        let mean =
            |p: usize| (xd[p * hw..(p + 1) * hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32;
        if x.len() >= PAR_MIN {
            y.data.par_iter_mut().enumerate().for_each(|(p, o)| *o = mean(p));
        } else {
            y.data.iter_mut().enumerate().for_each(|(p, o)| *o = mean(p));
        }
        self.in_shape = Some(x.shape.clone());
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let shape = self
            .in_shape
            .take()
            .expect("GlobalAvgPool::backward called without a forward");
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        assert_eq!(
            grad.shape,
            [n, c],
            "GlobalAvgPool: gradient shape differs from output"
        );
        let hw = h * w;
        let inv = 1.0 / hw as f32;
        let mut dx = Tensor::zeros(&shape);
        let gd = &grad.data;
        planes(&mut dx.data, hw, |p, dp| dp.fill(gd[p] * inv));
        dx
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        Ok(winq_ir::Op::GlobalAvgPool)
    }

    fn describe(&self) -> String {
        "GlobalAvgPool".into()
    }
}
