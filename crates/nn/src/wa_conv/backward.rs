//! The backward of the Winograd-aware layer: dY through Aᵀ, the per-tap products and Bᵀ to dx,
//! and to the weights through G; in flex mode also to the learned transforms. Quantizers pass
//! gradients straight through.

use super::{add_into, transpose, Cache, WinogradConv2d};
use crate::par::ordered_sum;
use crate::tensor::Tensor;
use rayon::prelude::*;
use winq_kernels::gemm::{sgemm_view, View};
use winq_kernels::tile::{sandwich_grad_lanes, sandwich_lanes};
use winq_kernels::winograd::stages::{blocks, lane_blocks_par, swap_outer, LANES};

impl WinogradConv2d {
    pub(super) fn backward_pass(&mut self, grad: &Tensor) -> Tensor {
        let cache = self
            .cache
            .take()
            .expect("WinogradConv2d::backward without a training forward");
        let Cache {
            geo,
            xq,
            wt,
            at,
            bt,
            g,
            u,
            v,
            mq,
        } = cache;
        let (n, c, h, w, k, m, t) = (geo.n, geo.c, geo.h, geo.w, geo.k, geo.m, geo.t);
        let (tt, p, kc) = (geo.tt(), geo.p(), k * c);
        let flex = self.flex;
        let (a_t, b_t, g_t) = (transpose(&at, m, t), transpose(&bt, t, t), transpose(&g, t, 3));

        // dM[k][e][p] = (A dY Aᵀ)[e] per tile; in flex mode also dAᵀ.
        let mut dm = vec![0.0f32; k * tt * p];
        let parts: Vec<Vec<f32>> = dm
            .par_chunks_mut(tt * p)
            .enumerate()
            .map_init(
                || (vec![0.0f32; m * m * LANES], vec![0.0f32; tt * LANES]),
                |(dy, tmp), (ko, dmk)| {
                    let mut dat = vec![0.0f32; if flex { m * t } else { 0 }];
                    for (p0, lanes) in blocks(p) {
                        geo.gather_out(&grad.data, ko, p0, lanes, dy);
                        sandwich_lanes(&a_t, t, m, dy, lanes, &mut dmk[p0..], p, lanes, tmp);
                        if let Some(mq) = &mq {
                            let x = &mq[ko * p + p0..];
                            sandwich_grad_lanes(&at, m, t, x, k * p, dy, lanes, lanes, &mut dat, tmp);
                        }
                    }
                    dat
                },
            )
            .collect();
        let d_at = ordered_sum(&parts, m * t);

        // Per tile position: dU[e] = dM[e]·V[e]ᵀ (K×C) and dV[e] = U[e]ᵀ·dM[e] (C×P).
        let mut du = vec![0.0f32; tt * kc];
        let mut dv = vec![0.0f32; tt * c * p];
        du.par_chunks_mut(kc)
            .zip(dv.par_chunks_mut(c * p))
            .enumerate()
            .for_each(|(e, (due, dve))| {
                let dme = View {
                    data: &dm[e * p..],
                    rs: tt * p,
                    cs: 1,
                };
                let vt = View {
                    data: &v[e * p..],
                    rs: 1,
                    cs: tt * p,
                };
                sgemm_view(k, c, p, dme, vt, due, c, false, 1);
                let ut = View {
                    data: &u[e * kc..],
                    rs: 1,
                    cs: c,
                };
                sgemm_view(c, p, k, ut, dme, dve, p, false, 1);
            });
        drop(dm);

        // dx = Σ_tiles B dV Bᵀ, per input channel as [C][N][H][W]; in flex mode also dBᵀ.
        let mut dxc = vec![0.0f32; c * n * h * w];
        let parts: Vec<Vec<f32>> = dxc
            .par_chunks_mut(n * h * w)
            .enumerate()
            .map_init(
                || {
                    (
                        vec![0.0f32; tt * LANES],
                        vec![0.0f32; tt * LANES],
                        vec![0.0f32; tt * LANES],
                    )
                },
                |(dd, d, tmp), (ci, planes)| {
                    let mut dbt = vec![0.0f32; if flex { tt } else { 0 }];
                    for (p0, lanes) in blocks(p) {
                        let dvc = &dv[ci * p + p0..];
                        sandwich_lanes(&b_t, t, t, dvc, c * p, dd, lanes, lanes, tmp);
                        geo.scatter_add_in(dd, p0, lanes, planes);
                        if flex {
                            geo.gather_in(&xq.data, c, ci, p0, lanes, d);
                            sandwich_grad_lanes(&bt, t, t, d, lanes, dvc, c * p, lanes, &mut dbt, tmp);
                        }
                    }
                    dbt
                },
            )
            .collect();
        let d_bt = ordered_sum(&parts, tt);
        drop(dv);
        let dx = Tensor::from_vec(&[n, c, h, w], swap_outer(&dxc, c, n, h * w));
        drop(dxc);

        // dW = Gᵀ dU G, lanes over (k, c); in flex mode also dG.
        let mut dwt = vec![0.0f32; 9 * kc];
        let d_g = lane_blocks_par(kc, 9, &mut dwt, t * 3, |j0, lanes, blk, dg| {
            let mut tmp = vec![0.0f32; tt * lanes];
            sandwich_lanes(&g_t, 3, t, &du[j0..], kc, blk, lanes, lanes, &mut tmp);
            if flex {
                sandwich_grad_lanes(&g, t, 3, &wt[j0..], kc, &du[j0..], kc, lanes, dg, &mut tmp);
            }
        });
        add_into(&mut self.weight.grad.data, &transpose(&dwt, 9, kc));
        if flex {
            add_into(&mut self.at.grad.data, &d_at);
            add_into(&mut self.bt.grad.data, &d_bt);
            add_into(&mut self.g.grad.data, &d_g);
        }
        dx
    }
}
