//! INT8 Winograd F(m×m, 3×3) convolution executing the Winograd-aware pipeline in integers:
//! input transform with the quantized Bᵀ (exact in i32), requantization to the Winograd-domain
//! input scale, one INT8 GEMM per tile position (VNNI where available), requantization of the
//! Hadamard sum, output transform with the quantized Aᵀ and requantization to the output scale,
//! all rounding half to even as the training model's fake quantizers do.
//!
//! Lanes of the tile transforms are (tile, channel) pairs, channel fastest, over channel-last
//! zero-padded images, so every window element is a contiguous channel run. The per-tap
//! product is Mᵀ[e] = V[e]ᵀ·U[e]ᵀ: tiles are the GEMM's rows and output channels its vector
//! lanes, which wastes nothing on batch 1 with few tiles and measured as fast or faster than
//! tiles-in-lanes everywhere else.

//!
//! Files: this one (the layer, its construction and path choice), `lanes` (the lane-wise
//! pipeline, any channel count), `blocks` (the register-block pipeline) with its stage kernels
//! in `block_kernels` (portable, compiled per ISA) and `x86` (AVX-512 / VNNI transforms).

mod block_kernels;
mod blocks;
mod lanes;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::int8::PackedB;
use crate::TileGrid;
use block_kernels::{f32_nonzeros, nonzeros, CB};
use winq_ir::QuantWinograd;
use winq_quant::codes::{group_scale, multiplier, value};
use winq_quant::simd::{self, Isa};

/// A layer ready to run: U[e]ᵀ (C×K) packed per tap at construction.
pub struct WinogradI8 {
    spec: QuantWinograd,
    /// Codes of Aᵀ (m×t) and Bᵀ (t×t) widened for the integer transforms.
    qa: Vec<i32>,
    qb: Vec<i32>,
    t: usize,
    ut: Vec<PackedB>,
    /// Nonzeros of Bᵀ (codes) and Aᵀ (dequantized), for the register-block transforms.
    nz_b: Vec<Vec<(usize, i32)>>,
    /// The same in f32 when the f32 input transform is exact.
    nz_b_f32: Option<Vec<Vec<(usize, f32)>>>,
    nz_a: Vec<Vec<(usize, f32)>>,
    /// With one Hadamard scale for all taps, the output transform runs on codes (exact
    /// integers; f32 when exact) and requantizes once with this multiplier s_a²·s_m / s_out.
    out_codes: Option<OutCodes>,
    /// Per-layer constants of the block path, computed once (allocations per call cost
    /// measurable time at these sizes): the per-tap input multipliers, the per-tap Hadamard
    /// scales as f32.
    v_mul: Vec<f32>,
    s_m_f32: Vec<f32>,
    /// With per-tap Hadamard scales, the output requantization multiplier 1/s_out (as the
    /// training model's per-tap eval forward requantizes).
    out_mul: f32,
    /// Aᵀ's codes as f32 (the AVX-512 output transform on codes).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    qa_f32: Vec<f32>,
    /// Per tap: the multiplier of the Hadamard sums (s_u·s_v / s_m), and Aᵀ's values (code ×
    /// f32 scale) for the output transform on values.
    hadamard_mul: Vec<f32>,
    a_vals: Vec<f32>,
    /// Bᵀ for the VNNI input transform (x86_64; None where it does not apply).
    #[cfg(target_arch = "x86_64")]
    quad_b: Option<x86::QuadB>,
    /// The instruction set every step runs on, and which tile transforms.
    isa: Isa,
    transforms: Transforms,
}

/// Which tile transforms an INT8 Winograd layer runs. Every choice computes the same codes;
/// tests compare them all on every instruction set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transforms {
    /// Lane-wise transforms over (tile, channel) pairs: any channel count.
    Lanes,
    /// Portable register blocks of 16 channels (C and K multiples of 16, t ∈ {4, 6, 8}),
    /// compiled per instruction set.
    Blocks,
    /// The register blocks with the hand-written transforms of the instruction set where they
    /// apply (AVX-512 output transform, VNNI input transform), else as `Blocks`. The default.
    Native,
}

struct OutCodes {
    mul: f32,
    nz: Vec<Vec<(usize, i32)>>,
    nz_f32: Option<Vec<Vec<(usize, f32)>>>,
}

fn transpose_i8(x: &[i8], r: usize, c: usize) -> Vec<i8> {
    let mut out = vec![0i8; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = x[i * c + j];
        }
    }
    out
}

impl WinogradI8 {
    pub fn new(spec: QuantWinograd) -> WinogradI8 {
        let t = spec.m + 2;
        let (k, c) = (spec.k, spec.c);
        assert_eq!(spec.at.len(), spec.m * t, "Aᵀ must be m×t");
        assert_eq!(spec.bt.len(), t * t, "Bᵀ must be t×t");
        assert_eq!(spec.u.len(), t * t * k * c, "U must be [T][K][C]");
        let widen = |v: &[i8]| -> Vec<i32> { v.iter().map(|&x| x as i32).collect() };
        let (qa, qb) = (widen(&spec.at), widen(&spec.bt));
        let ut = (0..t * t)
            .map(|e| PackedB::from_rows(&transpose_i8(&spec.u[e * k * c..(e + 1) * k * c], k, c), c, k, k))
            .collect();
        let nz_b = nonzeros(&qb, t, t);
        let nz_b_f32 = f32_nonzeros(&nz_b);
        let a_vals: Vec<f32> = spec.at.iter().map(|&v| value(v as i32, spec.s_at)).collect();
        let nz_a = nonzeros(&a_vals, spec.m, t);
        let out_codes = match spec.s_m[..] {
            [s_m] => {
                let nz = nonzeros(&qa, spec.m, t);
                Some(OutCodes {
                    mul: multiplier(spec.s_at * spec.s_at * s_m, spec.s_out),
                    nz_f32: f32_nonzeros(&nz),
                    nz,
                })
            }
            _ => None,
        };
        #[cfg(target_arch = "x86_64")]
        let quad_b = x86::QuadB::new(&qb, t);
        let tt = t * t;
        let v_mul: Vec<f32> = (0..tt)
            .map(|e| multiplier(spec.s_bt * spec.s_bt * spec.s_in, group_scale(&spec.s_v, e)))
            .collect();
        let s_m_f32: Vec<f32> = (0..tt).map(|e| group_scale(&spec.s_m, e) as f32).collect();
        let out_mul = multiplier(1.0, spec.s_out);
        let qa_f32 = qa.iter().map(|&v| v as f32).collect();
        // Every path must round the same numbers: a zero or infinite multiplier would turn
        // zero sums into NaN, which the vector paths and `to_code` saturate differently.
        let hadamard_mul: Vec<f32> = (0..tt)
            .map(|e| {
                multiplier(
                    group_scale(&spec.s_u, e) * group_scale(&spec.s_v, e),
                    group_scale(&spec.s_m, e),
                )
            })
            .collect();
        let muls = v_mul
            .iter()
            .chain(&hadamard_mul)
            .map(|&v| v as f64)
            .chain([spec.s_at * spec.s_at / spec.s_out, out_mul as f64]);
        assert!(
            muls.chain(s_m_f32.iter().map(|&v| v as f64))
                .all(|v| v.is_finite() && v > 0.0 && (v as f32).is_normal()),
            "Winograd layer scales must give positive, finite multipliers"
        );
        WinogradI8 {
            spec,
            qa,
            qb,
            t,
            ut,
            nz_b,
            nz_b_f32,
            nz_a,
            a_vals,
            out_codes,
            v_mul,
            hadamard_mul,
            s_m_f32,
            out_mul,
            qa_f32,
            #[cfg(target_arch = "x86_64")]
            quad_b,
            isa: simd::isa(),
            transforms: Transforms::Native,
        }
    }

    /// Runs on an explicit instruction set (capped to what the CPU has) with the given tile
    /// transforms; by default the best instruction set and `Transforms::Native`.
    pub fn with_path(mut self, isa: Isa, transforms: Transforms) -> WinogradI8 {
        self.isa = if simd::supports(isa) { isa } else { Isa::Scalar };
        self.transforms = transforms;
        self
    }

    pub fn spec(&self) -> &QuantWinograd {
        &self.spec
    }

    /// Output codes (scale `s_out`, N×H×W×K) into `y` for input codes (scale `s_in`,
    /// N×H×W×C).
    pub fn forward(&self, x: &[i8], n: usize, h: usize, w: usize, y: &mut [i8]) {
        let s = &self.spec;
        assert_eq!(x.len(), n * h * w * s.c, "input must be N×H×W×C");
        assert_eq!(y.len(), n * h * w * s.k, "output must be N×H×W×K");
        if y.is_empty() {
            return;
        }
        let g = TileGrid::new(n, h, w, s.m);
        if self.block_path() {
            return self.forward_blocks(x, &g, h, w, y);
        }
        self.forward_lanes(x, &g, y)
    }

    /// Whether the register-block transforms run (channel counts multiples of 16).
    fn block_path(&self) -> bool {
        self.transforms != Transforms::Lanes
            && self.spec.c.is_multiple_of(CB)
            && self.spec.k.is_multiple_of(CB)
            && matches!(self.t, 4 | 6 | 8)
    }

    /// Which tile transforms run on this machine for input (c) and output (k) channel counts,
    /// for reports: "vnni+avx512" (the x86 fast paths), "blocks" (portable register blocks) or
    /// "lanes" (other channel counts).
    pub fn transform_path(&self) -> &'static str {
        if !self.block_path() {
            return "lanes";
        }
        #[cfg(target_arch = "x86_64")]
        {
            let out_fast = self.avx512_output();
            match (self.vnni_input(), out_fast) {
                (true, true) => return "vnni+avx512",
                (true, false) => return "vnni+blocks",
                (false, true) => return "blocks+avx512",
                _ => {}
            }
        }
        "blocks"
    }
}
