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

use super::wino_blocks::{
    f32_nonzeros, input_stage, nonzeros, output_stage, Geometry, OutTransform, Span, CB,
};
use super::{
    gemm_isa, gemm_requant_isa, grow, pad_nhwc, parallel_parts, requant_isa, row_sums128_isa, to_code,
    PackedW, PackedX, WRows,
};
use crate::tile::{sandwich_lanes_i32_isa, sandwich_lanes_isa};
use crate::Tiling;
use rayon::prelude::*;
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
    ut: Vec<PackedX>,
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
    /// Bᵀ for the VNNI input transform (x86_64; None where it does not apply).
    #[cfg(target_arch = "x86_64")]
    quad_b: Option<super::x86_wino::QuadB>,
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
            .map(|e| PackedX::from_rows(&transpose_i8(&spec.u[e * k * c..(e + 1) * k * c], k, c), c, k, k))
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
        let quad_b = super::x86_wino::QuadB::new(&qb, t);
        let tt = t * t;
        let v_mul: Vec<f32> = (0..tt)
            .map(|e| multiplier(spec.s_bt * spec.s_bt * spec.s_in, group_scale(&spec.s_v, e)))
            .collect();
        let s_m_f32: Vec<f32> = (0..tt).map(|e| group_scale(&spec.s_m, e) as f32).collect();
        // Every path must round the same numbers: a zero or infinite multiplier would turn
        // zero sums into NaN, which the vector paths and `to_code` saturate differently.
        let hadamard_mul = (0..tt)
            .map(|e| group_scale(&spec.s_u, e) * group_scale(&spec.s_v, e) / group_scale(&spec.s_m, e));
        let muls = v_mul
            .iter()
            .map(|&v| v as f64)
            .chain(hadamard_mul)
            .chain([spec.s_at * spec.s_at / spec.s_out]);
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
            out_codes,
            v_mul,
            s_m_f32,
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
        let (c, k, m, t) = (s.c, s.k, s.m, self.t);
        assert_eq!(x.len(), n * h * w * c, "input must be N×H×W×C");
        assert_eq!(y.len(), n * h * w * k, "output must be N×H×W×K");
        if y.is_empty() {
            return;
        }
        let g = Grid::new(n, h, w, m);
        let (p, tt) = (g.p(), t * t);
        let (cp, kp) = (c * p, k * p);
        if self.block_path() {
            return self.forward_blocks(x, &g, h, w, y);
        }
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let Scratch {
                xpad,
                ypad,
                vq,
                d,
                v,
                tmp,
                qm,
                acc,
                vw,
                mt,
                yt,
                tmpf,
            } = &mut *scratch;

            // V = Bᵀ d B exactly in i32, requantized per tap: vq [T][P][C].
            let v_mul: Vec<f32> = (0..tt)
                .map(|e| multiplier(s.s_bt * s.s_bt * s.s_in, group_scale(&s.s_v, e)))
                .collect();
            let vq = grow(vq, tt * cp);
            pad_nhwc(
                x,
                (n, h, w, c),
                g.padded_in(),
                (1 + g.before.0, 1 + g.before.1),
                xpad,
            );
            let (d, v, tmp) = (grow(d, tt * LANES), grow(v, tt * LANES), grow(tmp, tt * LANES));
            for l0 in (0..cp).step_by(LANES) {
                let lanes = LANES.min(cp - l0);
                g.gather_hwc(xpad, c, l0, lanes, d);
                sandwich_lanes_i32_isa(self.isa, &self.qb, t, t, d, lanes, v, lanes, lanes, tmp);
                for e in 0..tt {
                    requant_isa(
                        self.isa,
                        &v[e * lanes..(e + 1) * lanes],
                        v_mul[e],
                        &mut vq[e * cp + l0..e * cp + l0 + lanes],
                    );
                }
            }

            // Per tap: the channel sum as one INT8 GEMM, requantized: qm [T][P][K].
            let qm = grow(qm, tt * kp);
            let acc = grow(acc, kp);
            for e in 0..tt {
                let mul = multiplier(
                    group_scale(&s.s_u, e) * group_scale(&s.s_v, e),
                    group_scale(&s.s_m, e),
                );
                vw.fill(&vq[e * cp..(e + 1) * cp], p, c);
                gemm_isa(self.isa, vw, &self.ut[e], acc, k);
                requant_isa(self.isa, acc, mul, &mut qm[e * kp..(e + 1) * kp]);
            }

            // Y = Aᵀ M A per tile, requantized to s_out: on codes with one Hadamard scale,
            // else on the dequantized values (code × f32 scale) with the same f32 kernel and
            // division as the training model's eval forward. Either way both round exactly
            // the same numbers.
            let a_vals: Vec<f32> = s.at.iter().map(|&v| value(v as i32, s.s_at)).collect();
            let s_m: Vec<f32> = (0..tt).map(|e| group_scale(&s.s_m, e) as f32).collect();
            let s_out = s.s_out as f32;
            let (hm, wm) = (g.tiles_y * m, g.tiles_x * m);
            let ypad = grow(ypad, n * hm * wm * k);
            let (mt, yt, tmpf) = (
                grow(mt, tt * LANES),
                grow(yt, m * m * LANES),
                grow(tmpf, m * t * LANES),
            );
            // The input stage's i32 buffers (tt·LANES each) serve the integer output transform.
            let (mi, yi, tmpi) = (&mut d[..], &mut v[..m * m * LANES], &mut tmp[..m * t * LANES]);
            for l0 in (0..kp).step_by(LANES) {
                let lanes = LANES.min(kp - l0);
                let src = |e: usize| &qm[e * kp + l0..][..lanes];
                match &self.out_codes {
                    Some(oc) => {
                        for e in 0..tt {
                            let dst = &mut mi[e * lanes..(e + 1) * lanes];
                            dst.iter_mut().zip(src(e)).for_each(|(o, &q)| *o = q as i32);
                        }
                        sandwich_lanes_i32_isa(self.isa, &self.qa, m, t, mi, lanes, yi, lanes, lanes, tmpi);
                        let yt = &mut yt[..m * m * lanes];
                        yt.iter_mut().zip(&yi[..]).for_each(|(o, &v)| *o = v as f32);
                        g.scatter_hwc(yt, |v| to_code(v * oc.mul), l0, lanes, ypad, k);
                    }
                    None => {
                        for e in 0..tt {
                            let dst = &mut mt[e * lanes..(e + 1) * lanes];
                            dst.iter_mut()
                                .zip(src(e))
                                .for_each(|(o, &q)| *o = q as f32 * s_m[e]);
                        }
                        sandwich_lanes_isa(self.isa, &a_vals, m, t, mt, lanes, yt, lanes, lanes, tmpf);
                        g.scatter_hwc(yt, |v| to_code(v / s_out), l0, lanes, ypad, k);
                    }
                }
            }

            // Crop the tiled output back to N×H×W×K.
            let (oy, ox) = g.before;
            for ni in 0..n {
                for i in 0..h {
                    let src = ((ni * hm + i + oy) * wm + ox) * k;
                    y[(ni * h + i) * w * k..][..w * k].copy_from_slice(&ypad[src..src + w * k]);
                }
            }
        })
    }
}

impl WinogradI8 {
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

    /// Whether the block path's input transform runs on VNNI dot products here.
    fn vnni_input(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.transforms == Transforms::Native
            && self.quad_b.is_some()
            && super::x86::runs(self.isa, Isa::Avx512Vnni)
        {
            return true;
        }
        false
    }

    /// Whether the block path's output transform runs the AVX-512 kernel here (one Hadamard
    /// scale: the transform on codes).
    fn avx512_output(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.transforms == Transforms::Native
            && self.out_codes.is_some()
            && super::x86::runs(self.isa, Isa::Avx512)
        {
            return true;
        }
        false
    }

    /// The block path's input transform with VNNI (`vnni_input` must hold).
    #[allow(unused_variables)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(clippy::ptr_arg))]
    #[allow(clippy::too_many_arguments)]
    fn input_vnni(
        &self,
        geo: &Geometry,
        span: Span,
        x: &[i8],
        v_mul: &[f32],
        rows: &mut [&mut [i8]],
        kp: usize,
        quads: &mut Vec<u8>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(qb) = &self.quad_b {
            use super::x86_wino::{build_quads, input_vnni};
            let c = self.spec.c;
            // SAFETY: `vnni_input` checked AVX-512F/BW and VNNI; c is a multiple of 16 on the
            // block path; the quads are built for this span just before use.
            unsafe {
                build_quads(geo, span, x, c, qb, quads);
                match self.t {
                    4 => input_vnni::<4, 1>(geo, span, quads, c, qb, v_mul, rows, kp),
                    6 => input_vnni::<6, 2>(geo, span, quads, c, qb, v_mul, rows, kp),
                    8 => input_vnni::<8, 2>(geo, span, quads, c, qb, v_mul, rows, kp),
                    t => panic!("no tile transform for t = {t}"),
                }
            }
            return;
        }
        unreachable!("input_vnni without vnni_input");
    }

    /// The block path's output transform with AVX-512 where it applies (one Hadamard scale,
    /// exact f32 sums); false where the portable stage must run.
    #[allow(unused_variables)]
    fn output_avx512(&self, geo: &Geometry, span: Span, qm: &[i8], qs: usize, out: &mut [i8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(OutCodes { mul, nz_f32, .. })) = (self.avx512_output(), &self.out_codes) {
            use super::x86_wino::{output_avx512 as run, F32Arith as F, I32Arith as I};
            let (qa, k, mul) = (&self.qa, self.spec.k, *mul);
            // SAFETY: `avx512_output` checked AVX-512F/BW; k is a multiple of 16 on this path; the
            // f32 arithmetic only where Aᵀ meets its bound (`nz_f32`).
            unsafe {
                match (self.t, nz_f32.is_some()) {
                    (4, true) => run::<F, 4, 2>(geo, span, qm, qs, k, qa, mul, out),
                    (6, true) => run::<F, 6, 4>(geo, span, qm, qs, k, qa, mul, out),
                    (8, true) => run::<F, 8, 6>(geo, span, qm, qs, k, qa, mul, out),
                    (4, false) => run::<I, 4, 2>(geo, span, qm, qs, k, qa, mul, out),
                    (6, false) => run::<I, 6, 4>(geo, span, qm, qs, k, qa, mul, out),
                    (8, false) => run::<I, 8, 6>(geo, span, qm, qs, k, qa, mul, out),
                    _ => return false,
                }
            }
            return true;
        }
        false
    }

    /// The same pipeline with register-block transforms (C and K multiples of 16).
    fn forward_blocks(&self, x: &[i8], g: &Grid, h: usize, w: usize, y: &mut [i8]) {
        let s = &self.spec;
        let (c, k, m, t, n) = (s.c, s.k, s.m, self.t, g.n);
        let tt = t * t;
        let (hp, wp) = g.padded_in();
        let geo = Geometry {
            m,
            tiles_x: g.tiles_x,
            tiles: g.tiles,
            wp,
            hp,
            before: g.before,
            h,
            w,
        };
        let (v_mul, s_m) = (&self.v_mul, &self.s_m_f32);
        let how = match &self.out_codes {
            Some(OutCodes {
                mul,
                nz_f32: Some(nz),
                ..
            }) => OutTransform::CodesF32 { nz, mul: *mul },
            Some(OutCodes { mul, nz, .. }) => OutTransform::CodesI32 { nz, mul: *mul },
            None => OutTransform::Values {
                nz_a: &self.nz_a,
                s_m,
                s_out: s.s_out as f32,
            },
        };
        // Out of the thread-local while the parts run (another layer may start on this thread
        // meanwhile: rayon work stealing).
        let mut xpad_buf = XPAD.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        {
            // The VNNI input transform reads row quads built from x; the others a padded copy.
            let vnni = self.vnni_input();
            if !vnni {
                pad_nhwc(
                    x,
                    (n, h, w, c),
                    (hp, wp),
                    (1 + g.before.0, 1 + g.before.1),
                    &mut xpad_buf,
                );
            }
            let xpad = &xpad_buf[..];
            // Tiles p0..p1 into `out` (its output rows): input transform, per-tap GEMMs,
            // output transform.
            let part = |span: Span, out: &mut [i8]| {
                BLOCKS.with(|cell| {
                    let mut scratch = cell.borrow_mut();
                    let BlockScratch {
                        taps,
                        sums,
                        acc,
                        qm,
                        quads,
                    } = &mut *scratch;
                    let pc = span.p1 - span.p0;
                    // All taps' GEMM rows in one buffer, one cache line between taps beyond
                    // their size: the input transform writes 16 bytes of every tap at once, and
                    // tap buffers a power of two apart (separate allocations often are) put
                    // those writes in the same few cache sets.
                    let (kp, mp, mr) = PackedW::shape_of(pc, c);
                    let stride = mp * kp + 64;
                    let taps = grow(taps, tt * stride);
                    let mut dst: Vec<&mut [i8]> = taps
                        .chunks_exact_mut(stride)
                        .map(|tap| {
                            tap[pc * kp..mp * kp].fill(0);
                            &mut tap[..mp * kp]
                        })
                        .collect();
                    if vnni {
                        self.input_vnni(&geo, span, x, v_mul, &mut dst, kp, quads);
                    } else {
                        input_stage(
                            self.isa,
                            &geo,
                            span,
                            t,
                            xpad,
                            c,
                            &self.nz_b,
                            self.nz_b_f32.as_deref(),
                            v_mul,
                            &mut dst,
                            kp,
                        );
                    }
                    let sums = grow(sums, tt * mp);
                    // The per-tap products likewise, for the output transform's reads.
                    let qs = pc * k + 64;
                    let qm = grow(qm, tt * qs);
                    for e in 0..tt {
                        let (data, bias128) =
                            (&taps[e * stride..][..mp * kp], &mut sums[e * mp..(e + 1) * mp]);
                        row_sums128_isa(self.isa, data, kp, bias128);
                        let w = WRows {
                            m: pc,
                            k: c,
                            kp,
                            mp,
                            mr,
                            data,
                            bias128,
                        };
                        let mul = multiplier(
                            group_scale(&s.s_u, e) * group_scale(&s.s_v, e),
                            group_scale(&s.s_m, e),
                        );
                        let qm_e = &mut qm[e * qs..e * qs + pc * k];
                        gemm_requant_isa(self.isa, &w, &self.ut[e], mul, qm_e, k, acc);
                    }
                    if !self.output_avx512(&geo, span, qm, qs, out) {
                        output_stage(self.isa, &geo, span, t, qm, qs, k, &how, out);
                    }
                })
            };
            // Parallel parts are runs of whole tile rows: their output rows are contiguous.
            let tile_rows = n * g.tiles_y;
            let parts = parallel_parts(tile_rows, 1);
            let first_row = |r: usize| {
                let (ni, ty) = (r / g.tiles_y, r % g.tiles_y);
                ni * h + (ty * m).saturating_sub(g.before.0).min(h)
            };
            let bounds: Vec<usize> = (0..=parts).map(|i| i * tile_rows / parts).collect();
            let mut pieces = Vec::with_capacity(parts);
            let mut rest = y;
            for win in bounds.windows(2) {
                let (r0, r1) = (win[0], win[1]);
                let (row0, row1) = (first_row(r0), if r1 == tile_rows { n * h } else { first_row(r1) });
                let (head, tail) = rest.split_at_mut((row1 - row0) * w * k);
                rest = tail;
                let span = Span {
                    p0: r0 * g.tiles_x,
                    p1: r1 * g.tiles_x,
                    y_row0: row0,
                };
                pieces.push((span, head));
            }
            if parts == 1 {
                pieces.into_iter().for_each(|(span, out)| part(span, out));
            } else {
                pieces.into_par_iter().for_each(|(span, out)| part(span, out));
            }
        }
        XPAD.with(|cell| *cell.borrow_mut() = xpad_buf);
    }
}

#[derive(Default)]
struct BlockScratch {
    /// Every tap's GEMM rows (see `forward_blocks`) and their row sums.
    taps: Vec<i8>,
    sums: Vec<i32>,
    acc: Vec<i32>,
    qm: Vec<i8>,
    /// Row quads of the VNNI input transform.
    quads: Vec<u8>,
}

thread_local! {
    static XPAD: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) };
    static BLOCKS: std::cell::RefCell<BlockScratch> = std::cell::RefCell::new(BlockScratch::default());
}

/// Per-thread working buffers, reused across calls (large fresh allocations cost page faults).
#[derive(Default)]
struct Scratch {
    xpad: Vec<i8>,
    ypad: Vec<i8>,
    vq: Vec<i8>,
    d: Vec<i32>,
    v: Vec<i32>,
    tmp: Vec<i32>,
    qm: Vec<i8>,
    acc: Vec<i32>,
    vw: PackedW,
    mt: Vec<f32>,
    yt: Vec<f32>,
    tmpf: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Tiles processed together by the lane-wise transforms.
const LANES: usize = 512;

/// Tiling of one forward.
struct Grid {
    n: usize,
    m: usize,
    t: usize,
    tiles_x: usize,
    tiles_y: usize,
    tiles: usize,
    /// Extra padding before the data (rows, columns), on top of the kernel's 1.
    before: (usize, usize),
}

impl Grid {
    fn new(n: usize, h: usize, w: usize, m: usize) -> Grid {
        let (ty, tx) = (Tiling::new(h, m, 3), Tiling::new(w, m, 3));
        Grid {
            n,
            m,
            t: m + 2,
            tiles_x: tx.tiles,
            tiles_y: ty.tiles,
            tiles: ty.tiles * tx.tiles,
            before: (ty.before, tx.before),
        }
    }

    fn p(&self) -> usize {
        self.n * self.tiles
    }

    /// (image, tile row, tile column) of tile p.
    fn locate(&self, p: usize) -> (usize, usize, usize) {
        let (ni, tile) = (p / self.tiles, p % self.tiles);
        (ni, tile / self.tiles_x, tile % self.tiles_x)
    }

    /// Padded image size: every tile window lies inside, so gathers need no bounds.
    fn padded_in(&self) -> (usize, usize) {
        (self.tiles_y * self.m + 2, self.tiles_x * self.m + 2)
    }

    /// Input windows for lanes l0.. (lane = tile·C + channel) into d [t][t][lanes]: each
    /// window element is a contiguous channel run of the channel-last padded images.
    fn gather_hwc(&self, xp: &[i8], c: usize, l0: usize, lanes: usize, d: &mut [i32]) {
        let (hp, wp) = self.padded_in();
        let (m, t) = (self.m, self.t);
        let mut l = l0;
        while l < l0 + lanes {
            let (p, c0) = (l / c, l % c);
            let run = (c - c0).min(l0 + lanes - l);
            let (ni, tyi, txi) = self.locate(p);
            let origin = ((ni * hp + tyi * m) * wp + txi * m) * c + c0;
            for a in 0..t {
                for b in 0..t {
                    let src = &xp[origin + (a * wp + b) * c..][..run];
                    let dst = &mut d[(a * t + b) * lanes + (l - l0)..][..run];
                    for (o, &v) in dst.iter_mut().zip(src) {
                        *o = v as i32;
                    }
                }
            }
            l += run;
        }
    }

    /// Requantizes (`code`) lane-wise output tiles (lane = tile·K + channel) into channel-last tiled
    /// outputs [N][tiles_y·m][tiles_x·m][K].
    fn scatter_hwc(
        &self,
        yt: &[f32],
        code: impl Fn(f32) -> i8,
        l0: usize,
        lanes: usize,
        ypad: &mut [i8],
        k: usize,
    ) {
        let m = self.m;
        let (hm, wm) = (self.tiles_y * m, self.tiles_x * m);
        let mut l = l0;
        while l < l0 + lanes {
            let (p, k0) = (l / k, l % k);
            let run = (k - k0).min(l0 + lanes - l);
            let (ni, tyi, txi) = self.locate(p);
            let origin = ((ni * hm + tyi * m) * wm + txi * m) * k + k0;
            for a in 0..m {
                for b in 0..m {
                    let src = &yt[(a * m + b) * lanes + (l - l0)..][..run];
                    let dst = &mut ypad[origin + (a * wm + b) * k..][..run];
                    for (o, &v) in dst.iter_mut().zip(src) {
                        *o = code(v);
                    }
                }
            }
            l += run;
        }
    }
}
