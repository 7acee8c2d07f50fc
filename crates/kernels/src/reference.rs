//! Plain reference convolutions (NCHW, stride 1, "same" padding (r-1)/2, odd r).
//! Written for clarity, not speed: every fast kernel is tested against these.

use crate::shape::{Nchw, Tiling};
use winq_quant::Real;
use winq_transforms::{FloatTransform, Mat};

/// The tensors of a (Winograd-aware) convolution where the reference quantizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Layer input x.
    Input,
    /// Spatial weights g.
    Weight,
    /// Weights in the Winograd domain, G g Gᵀ.
    WinogradWeight,
    /// Input tiles in the Winograd domain, Bᵀ d B.
    WinogradInput,
    /// Hadamard product summed over input channels.
    Hadamard,
    /// Layer output (after the output transform and crop).
    Output,
}

impl Stage {
    pub const WINOGRAD: [Stage; 6] = [
        Stage::Input,
        Stage::Weight,
        Stage::WinogradWeight,
        Stage::WinogradInput,
        Stage::Hadamard,
        Stage::Output,
    ];
    pub const IM2ROW: [Stage; 3] = [Stage::Input, Stage::Weight, Stage::Output];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Weight => "weight",
            Stage::WinogradWeight => "winograd-weight",
            Stage::WinogradInput => "winograd-input",
            Stage::Hadamard => "hadamard",
            Stage::Output => "output",
        }
    }
}

/// A hook applied to whole stage tensors (e.g. fake quantization); `no_hook` does nothing.
pub type StageHook<'a, T> = &'a mut dyn FnMut(Stage, &mut [T]);

pub fn no_hook<T>(_: Stage, _: &mut [T]) {}

fn check(xs: Nchw, x: &[impl Copy], w: &[impl Copy], k: usize, r: usize) {
    assert_eq!(x.len(), xs.len(), "input length does not match its shape");
    assert_eq!(w.len(), k * xs.c * r * r, "weights must be [K, C, r, r]");
    assert!(r % 2 == 1, "same padding needs an odd kernel size");
}

/// Direct 2-D correlation: y[n,k,i,j] = Σ_c Σ_u Σ_v w[k,c,u,v] · x[n,c,i+u-p,j+v-p].
pub fn direct_conv<T: Real>(x: &[T], xs: Nchw, w: &[T], k: usize, r: usize) -> Vec<T> {
    check(xs, x, w, k, r);
    let p = (r - 1) / 2;
    let ys = Nchw::new(xs.n, k, xs.h, xs.w);
    let mut y = vec![T::zero(); ys.len()];
    for n in 0..xs.n {
        for ko in 0..k {
            for i in 0..xs.h {
                for j in 0..xs.w {
                    let mut acc = T::zero();
                    for c in 0..xs.c {
                        for u in 0..r {
                            let Some(yi) = (i + u).checked_sub(p).filter(|&v| v < xs.h) else {
                                continue;
                            };
                            for v in 0..r {
                                let Some(xj) = (j + v).checked_sub(p).filter(|&v| v < xs.w) else {
                                    continue;
                                };
                                acc = acc + w[((ko * xs.c + c) * r + u) * r + v] * x[xs.index(n, c, yi, xj)];
                            }
                        }
                    }
                    y[ys.index(n, ko, i, j)] = acc;
                }
            }
        }
    }
    y
}

/// im2row lowering: one row of C·r·r taps per output pixel, times the [C·r·r × K] weight
/// matrix. Quantized at input, weights and output, as the reference's plain Conv2d.
pub fn im2row_conv<T: Real>(x: &[T], xs: Nchw, w: &[T], k: usize, r: usize, hook: StageHook<T>) -> Vec<T> {
    check(xs, x, w, k, r);
    let (mut x, mut w) = (x.to_vec(), w.to_vec());
    hook(Stage::Input, &mut x);
    hook(Stage::Weight, &mut w);
    let p = (r - 1) / 2;
    let taps = xs.c * r * r;
    let ys = Nchw::new(xs.n, k, xs.h, xs.w);
    let mut y = vec![T::zero(); ys.len()];
    let mut row = vec![T::zero(); taps];
    for n in 0..xs.n {
        for i in 0..xs.h {
            for j in 0..xs.w {
                for c in 0..xs.c {
                    for u in 0..r {
                        for v in 0..r {
                            let src = (i + u)
                                .checked_sub(p)
                                .filter(|&a| a < xs.h)
                                .zip((j + v).checked_sub(p).filter(|&b| b < xs.w));
                            row[(c * r + u) * r + v] =
                                src.map_or(T::zero(), |(a, b)| x[xs.index(n, c, a, b)]);
                        }
                    }
                }
                for ko in 0..k {
                    let wk = &w[ko * taps..(ko + 1) * taps];
                    y[ys.index(n, ko, i, j)] = row.iter().zip(wk).map(|(&a, &b)| a * b).sum();
                }
            }
        }
    }
    hook(Stage::Output, &mut y);
    y
}

/// L · X · Rᵀ for small dense matrices (L: a×b, X: b×c, R: d×c), row-major.
pub fn sandwich<T: Real>(l: &Mat<T>, x: &[T], x_cols: usize, r: &Mat<T>) -> Vec<T> {
    let (a, b, d) = (l.rows, l.cols, r.rows);
    debug_assert_eq!(x.len(), b * x_cols);
    let mut lx = vec![T::zero(); a * x_cols];
    for i in 0..a {
        for q in 0..b {
            let lv = l.at(i, q);
            if lv == T::zero() {
                continue;
            }
            for j in 0..x_cols {
                lx[i * x_cols + j] = lx[i * x_cols + j] + lv * x[q * x_cols + j];
            }
        }
    }
    let mut out = vec![T::zero(); a * d];
    for i in 0..a {
        for j in 0..d {
            out[i * d + j] = (0..x_cols).map(|q| lx[i * x_cols + q] * r.at(j, q)).sum();
        }
    }
    out
}

/// Tiled Winograd convolution of whole tensors: Y = Aᵀ[Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)]A with the
/// reference's pad-for-tiling and crop. `hook` sees each stage tensor in full:
/// weights in the Winograd domain as [K, C, t, t], input tiles as [N, C, tiles, t, t], the
/// Hadamard sum as [N, K, tiles, t, t].
pub fn winograd_conv<T: Real>(
    x: &[T],
    xs: Nchw,
    w: &[T],
    k: usize,
    tr: &FloatTransform<T>,
    hook: StageHook<T>,
) -> Vec<T> {
    let (m, r) = (tr.m, tr.r);
    check(xs, x, w, k, r);
    let t = m + r - 1;
    let tt = t * t;
    let (ty, tx) = (Tiling::new(xs.h, m, r), Tiling::new(xs.w, m, r));
    let tiles = ty.tiles * tx.tiles;
    let (mut x, mut w) = (x.to_vec(), w.to_vec());
    hook(Stage::Input, &mut x);
    hook(Stage::Weight, &mut w);

    // U[k, c] = G g Gᵀ
    let mut u = Vec::with_capacity(k * xs.c * tt);
    for kc in 0..k * xs.c {
        u.extend(sandwich(&tr.g, &w[kc * r * r..(kc + 1) * r * r], r, &tr.g));
    }
    hook(Stage::WinogradWeight, &mut u);

    // V[n, c, tile] = Bᵀ d B
    let mut v = Vec::with_capacity(xs.n * xs.c * tiles * tt);
    let mut d = vec![T::zero(); tt];
    for n in 0..xs.n {
        for c in 0..xs.c {
            for tyi in 0..ty.tiles {
                for txi in 0..tx.tiles {
                    for a in 0..t {
                        for b in 0..t {
                            let src = ty.source(xs.h, tyi, a).zip(tx.source(xs.w, txi, b));
                            d[a * t + b] = src.map_or(T::zero(), |(i, j)| x[xs.index(n, c, i, j)]);
                        }
                    }
                    v.extend(sandwich(&tr.bt, &d, t, &tr.bt));
                }
            }
        }
    }
    hook(Stage::WinogradInput, &mut v);

    // M[n, k, tile] = Σ_c U[k, c] ⊙ V[n, c, tile]
    let mut mh = vec![T::zero(); xs.n * k * tiles * tt];
    for n in 0..xs.n {
        for ko in 0..k {
            for c in 0..xs.c {
                let uk = &u[(ko * xs.c + c) * tt..][..tt];
                for tile in 0..tiles {
                    let vt = &v[((n * xs.c + c) * tiles + tile) * tt..][..tt];
                    let mt = &mut mh[((n * k + ko) * tiles + tile) * tt..][..tt];
                    for e in 0..tt {
                        mt[e] = mt[e] + uk[e] * vt[e];
                    }
                }
            }
        }
    }
    hook(Stage::Hadamard, &mut mh);

    // Y = Aᵀ M A, then crop back to H×W.
    let ys = Nchw::new(xs.n, k, xs.h, xs.w);
    let mut y = vec![T::zero(); ys.len()];
    for n in 0..xs.n {
        for ko in 0..k {
            for tyi in 0..ty.tiles {
                for txi in 0..tx.tiles {
                    let tile = tyi * tx.tiles + txi;
                    let mt = &mh[((n * k + ko) * tiles + tile) * tt..][..tt];
                    let out = sandwich(&tr.at, mt, t, &tr.at);
                    for a in 0..m {
                        for b in 0..m {
                            if let Some((i, j)) = ty.target(xs.h, tyi, a).zip(tx.target(xs.w, txi, b)) {
                                y[ys.index(n, ko, i, j)] = out[a * m + b];
                            }
                        }
                    }
                }
            }
        }
    }
    hook(Stage::Output, &mut y);
    y
}

/// ‖y − y_ref‖₂ / ‖y_ref‖₂, in f64.
pub fn relative_l2<T: Real, U: Real>(y: &[T], y_ref: &[U]) -> f64 {
    assert_eq!(y.len(), y_ref.len());
    let (mut num, mut den) = (0.0, 0.0);
    for (&a, &b) in y.iter().zip(y_ref) {
        let (a, b) = (a.as_f64(), b.as_f64());
        num += (a - b) * (a - b);
        den += b * b;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}
