//! FP32 operations on channel-last (N×H×W×C) activations, each computing exactly what the
//! training model's eval forward computes (same f32 expressions, same summation orders), so
//! the engine rounds the same numbers at every quantizer.

use winq_kernels::gemm::{sgemm, Layout};
use winq_kernels::im2col::im2col;

/// Channel-last f32 activations.
#[derive(Debug, Clone, PartialEq)]
pub struct Fmap {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Fmap {
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }
}

/// Eval BatchNorm as exported: y = scale·(x − mean) + bias per channel.
#[derive(Debug, Clone)]
pub struct Bn {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Element-wise work fused into one pass after a convolution or a residual add.
#[derive(Debug, Clone, Default)]
pub struct Post {
    pub bn: Option<Bn>,
    pub relu: bool,
}

#[inline]
fn relu(v: f32) -> f32 {
    // `v <= 0` is false for NaN, which passes through (as in training).
    if v <= 0.0 {
        0.0
    } else {
        v
    }
}

winq_quant::multiversion! {
    /// Output codes × scale, then BatchNorm and ReLU per channel, in one pass.
    pub fn dequant_post / dequant_post_isa(q: &[i8], s: f32, c: usize, post: &Post, out: &mut [f32]) {
        match (&post.bn, post.relu) {
            (Some(bn), relu_on) => {
                for (o, q) in out.chunks_exact_mut(c).zip(q.chunks_exact(c)) {
                    for ((((o, &q), &m), &a), &b) in o.iter_mut().zip(q).zip(&bn.mean).zip(&bn.scale).zip(&bn.bias) {
                        let v = a * (q as f32 * s - m) + b;
                        *o = if relu_on { relu(v) } else { v };
                    }
                }
            }
            (None, relu_on) => {
                for (o, &q) in out.iter_mut().zip(q) {
                    let v = q as f32 * s;
                    *o = if relu_on { relu(v) } else { v };
                }
            }
        }
    }
}

winq_quant::multiversion! {
    /// In place: BatchNorm and ReLU per channel (after an FP32 convolution or on their own).
    pub fn apply_post / apply_post_isa(x: &mut [f32], c: usize, post: &Post) {
        if let Some(bn) = &post.bn {
            for px in x.chunks_exact_mut(c) {
                for (((v, &m), &a), &b) in px.iter_mut().zip(&bn.mean).zip(&bn.scale).zip(&bn.bias) {
                    *v = a * (*v - m) + b;
                }
            }
        }
        if post.relu {
            x.iter_mut().for_each(|v| *v = relu(*v));
        }
    }
}

winq_quant::multiversion! {
    /// y = relu?(y + x): the residual add.
    pub fn add_relu / add_relu_isa(y: &mut [f32], x: &[f32], relu_on: bool) {
        for (a, &b) in y.iter_mut().zip(x) {
            let v = *a + b;
            *a = if relu_on { relu(v) } else { v };
        }
    }
}

/// 2×2 max pooling (stride 2, odd edges dropped); a NaN wins, as in training.
pub fn max_pool2(x: &Fmap, out: &mut Vec<f32>) -> Fmap {
    let (ho, wo, c) = (x.h / 2, x.w / 2, x.c);
    out.clear();
    out.resize(x.n * ho * wo * c, 0.0);
    for ni in 0..x.n {
        for i in 0..ho {
            for j in 0..wo {
                let at =
                    |di: usize, dj: usize| &x.data[((ni * x.h + 2 * i + di) * x.w + 2 * j + dj) * c..][..c];
                let o = &mut out[((ni * ho + i) * wo + j) * c..][..c];
                o.copy_from_slice(at(0, 0));
                for win in [at(0, 1), at(1, 0), at(1, 1)] {
                    for (o, &v) in o.iter_mut().zip(win) {
                        // Strict > keeps the first maximum; a NaN, once in, stays. Written
                        // without short-circuits so it compiles to a vector select (a branch
                        // per element mispredicts on real data).
                        let take = (v > *o) | (v.is_nan() & !o.is_nan());
                        *o = if take { v } else { *o };
                    }
                }
            }
        }
    }
    Fmap {
        n: x.n,
        h: ho,
        w: wo,
        c,
        data: std::mem::take(out),
    }
}

/// Global average pool: per channel, the f64 sum over pixels in raster order / H·W.
pub fn global_avg_pool(x: &Fmap) -> Fmap {
    let (hw, c) = (x.h * x.w, x.c);
    let mut data = Vec::with_capacity(x.n * c);
    let mut acc = vec![0.0f64; c];
    for img in x.data.chunks_exact(hw * c) {
        acc.fill(0.0);
        for px in img.chunks_exact(c) {
            acc.iter_mut().zip(px).for_each(|(a, &v)| *a += v as f64);
        }
        data.extend(acc.iter().map(|&a| (a / hw as f64) as f32));
    }
    Fmap {
        n: x.n,
        h: 1,
        w: 1,
        c,
        data,
    }
}

/// The N×C×H×W flattening training's Linear sees.
pub fn to_nchw(x: &Fmap) -> Vec<f32> {
    let (hw, c) = (x.h * x.w, x.c);
    let mut out = vec![0.0f32; x.data.len()];
    for (ni, img) in x.data.chunks_exact(hw * c).enumerate() {
        for (p, px) in img.chunks_exact(c).enumerate() {
            for (ci, &v) in px.iter().enumerate() {
                out[(ni * c + ci) * hw + p] = v;
            }
        }
    }
    out
}

/// Channel-last activations from N×C×H×W data.
pub fn from_nchw(n: usize, c: usize, h: usize, w: usize, data: &[f32]) -> Fmap {
    let hw = h * w;
    let mut out = vec![0.0f32; data.len()];
    for ni in 0..n {
        for ci in 0..c {
            for p in 0..hw {
                out[(ni * hw + p) * c + ci] = data[(ni * c + ci) * hw + p];
            }
        }
    }
    Fmap {
        n,
        h,
        w,
        c,
        data: out,
    }
}

/// An FP32 r×r "same" convolution computed exactly as training computes it — the same im2col
/// rows (c, u, v) and the same GEMM call per image, so every output is the same sum in the
/// same order (the GEMM library sums differently for the transposed problem) — then turned
/// channel-last.
pub fn conv_f32(
    x: &Fmap,
    k: usize,
    r: usize,
    weight: &[f32],
    cols: &mut Vec<f32>,
    out: &mut Vec<f32>,
) -> Fmap {
    let (n, h, w, c) = (x.n, x.h, x.w, x.c);
    let (taps, hw) = (c * r * r, h * w);
    // One scratch for the lowered matrix, the GEMM's planar output and the planar input.
    cols.clear();
    cols.resize(taps * hw + k * hw + c * hw, 0.0);
    let (cols, rest) = cols.split_at_mut(taps * hw);
    let (y, planes) = rest.split_at_mut(k * hw);
    out.clear();
    out.resize(n * hw * k, 0.0);
    for ni in 0..n {
        let img = &x.data[ni * hw * c..(ni + 1) * hw * c];
        for (pi, px) in img.chunks_exact(c).enumerate() {
            for (ci, &v) in px.iter().enumerate() {
                planes[ci * hw + pi] = v;
            }
        }
        im2col(planes, c, h, w, r, cols);
        sgemm(k, hw, taps, weight, Layout::N, cols, Layout::N, y, false, 1);
        let o = &mut out[ni * hw * k..(ni + 1) * hw * k];
        for (ko, plane) in y.chunks_exact(hw).enumerate() {
            for (pi, &v) in plane.iter().enumerate() {
                o[pi * k + ko] = v;
            }
        }
    }
    Fmap {
        n,
        h,
        w,
        c: k,
        data: std::mem::take(out),
    }
}

/// y = x·Wᵀ + b per row (x N×inputs).
pub fn linear(x: &[f32], n: usize, inputs: usize, outputs: usize, weight: &[f32], bias: &[f32]) -> Vec<f32> {
    winq_kernels::gemm::linear_rows(x, n, inputs, weight, outputs, bias)
}
