//! The forward of the Winograd-aware layer: f32 stages while training; in eval, 8-bit layers
//! compute the Winograd-domain stages on integer codes exactly as the integer engine does.

use super::{Cache, Geo, WinogradConv2d};
use crate::layer::Mode;
use crate::quant::TensorQuant;
use crate::tensor::Tensor;
use winq_kernels::winograd::stages::{
    hadamard_stage, input_stage_codes, input_stage_f32, output_stage, output_stage_codes, output_stage_fused,
};

impl WinogradConv2d {
    pub(super) fn forward_pass(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let (n, c, h, w) = x.dims4();
        assert_eq!(
            c, self.in_channels,
            "WinogradConv2d expects {} channels, got {c}",
            self.in_channels
        );
        let (k, m) = (self.out_channels, self.m);
        let geo = Geo::new(n, c, h, w, k, m);
        let (at, bt, g, wt, u) = self.weights(mode);
        let mut xq = x.clone();
        self.q_in.apply(&mut xq.data, mode, 1);

        // 8-bit layers compute the Winograd-domain stages on integer codes, exactly as the
        // integer engine does (V exactly in i32, the Hadamard sums exactly with `code_gemm`,
        // each requantized with the engine's multiplier), so the eval forward rounds the same
        // numbers the engine rounds. Only in eval (what the engine reproduces): training steps
        // keep the faster f32 stages.
        let exact = self.integer_stages && mode == Mode::Eval && self.q_in.bits == Some(8);

        // V[c][e][p] = (Bᵀ d B)[e] for column p = n·tiles + tile.
        let (mut v, s_v) = if exact {
            let (s_in, s_b) = (self.q_in.scales()[0], self.q_b.scales()[0]);
            let mut xc = xq.data.clone();
            TensorQuant::codes_of(&mut xc, &[s_in], 1);
            let mut bc = bt.clone();
            TensorQuant::codes_of(&mut bc, &[s_b], 1);
            let bc: Vec<i32> = bc.iter().map(|&v| v as i32).collect();
            let mut v = input_stage_codes(&geo, &xc, &bc);
            let s_v = self.q_v.requant_codes(&mut v, &[s_b * s_b * s_in], mode, c); // codes [C][T][P]
            (v, Some(s_v))
        } else {
            let mut v = input_stage_f32(&geo, &xq.data, &bt);
            self.q_v.apply(&mut v, mode, c); // [C][T][P]
            (v, None)
        };

        // M[e] = U[e] (K×C) · V[e] (C×P), one GEMM per tile position.
        let uc = s_v.as_ref().map(|_| {
            let mut uc = u.clone();
            TensorQuant::codes_of(&mut uc, &self.q_u.scales(), 1);
            uc
        });
        let mut mh = hadamard_stage(&geo, uc.as_ref().unwrap_or(&u), &v, uc.is_some());
        let y = match &s_v {
            Some(s_v) => {
                let s_u = self.q_u.scales();
                let g = s_u.len().max(s_v.len());
                let pick = |s: &[f64], e: usize| if s.len() == 1 { s[0] } else { s[e] };
                let in_scale: Vec<f64> = (0..g).map(|e| pick(&s_u, e) * pick(s_v, e)).collect();
                let s_m = self.q_m.requant_codes(&mut mh, &in_scale, mode, 1); // [T][K][P]
                TensorQuant::scale_codes(&mut v, s_v, c); // V back to values for backward
                if let [s_m] = s_m[..] {
                    // One scale for all taps: Y = s_a²·s_m · (Aᵀ M A on codes), an exact
                    // integer sum requantized once (the engine computes the same integers).
                    let s_a = self.q_a.scales()[0];
                    let mut ac = at.clone();
                    TensorQuant::codes_of(&mut ac, &[s_a], 1);
                    let ac: Vec<i32> = ac.iter().map(|&v| v as i32).collect();
                    let mut y = Tensor::from_vec(&[n, k, h, w], output_stage_codes(&geo, &mh, &ac));
                    let s_out = self.q_out.requant_codes(&mut y.data, &[s_a * s_a * s_m], mode, 1);
                    TensorQuant::scale_codes(&mut y.data, &s_out, 1);
                    y
                } else {
                    // A scale per tap: Aᵀ M A on the dequantized values with fused multiply-adds,
                    // requantized with the multiplier 1/s_out, as the engine does.
                    TensorQuant::scale_codes(&mut mh, &s_m, 1);
                    let mut y = Tensor::from_vec(&[n, k, h, w], output_stage_fused(&geo, &mh, &at));
                    let s_out = self.q_out.requant_codes(&mut y.data, &[1.0], mode, 1);
                    TensorQuant::scale_codes(&mut y.data, &s_out, 1);
                    y
                }
            }
            None => {
                self.q_m.apply(&mut mh, mode, 1); // [T][K][P]
                let mut y = Tensor::from_vec(&[n, k, h, w], output_stage(&geo, &mh, &at));
                self.q_out.apply(&mut y.data, mode, 1);
                y
            }
        };

        if mode == Mode::Train {
            let mq = self.flex.then_some(mh);
            self.cache = Some(Cache {
                geo,
                xq,
                wt,
                at,
                bt,
                g,
                u,
                v,
                mq,
            });
        }
        y
    }
}
