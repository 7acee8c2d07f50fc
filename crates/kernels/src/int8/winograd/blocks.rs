//! The register-block pipeline of the INT8 Winograd layer (C and K multiples of 16): the
//! per-ISA choice of tile transforms (`block_kernels`, `x86`) around the per-tap GEMMs, split
//! over threads by tile rows.

use super::block_kernels::{input_stage, output_stage, OutTransform, Span};
#[cfg(target_arch = "x86_64")]
use super::x86;
#[cfg(target_arch = "x86_64")]
use super::Transforms;
use super::{OutCodes, WinogradI8};
use crate::int8::{gemm_requant_isa, grow, pad_nhwc, parallel_parts, row_sums128_isa, ARows, PackedA};
use crate::TileGrid;
use rayon::prelude::*;
use winq_quant::codes::{group_scale, multiplier};
#[cfg(target_arch = "x86_64")]
use winq_quant::simd::{self, Isa};

impl WinogradI8 {
    /// Whether the block path's input transform runs on VNNI dot products here.
    pub(super) fn vnni_input(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.transforms == Transforms::Native
            && self.quad_b.is_some()
            && simd::enabled(self.isa, Isa::Avx512Vnni)
        {
            return true;
        }
        false
    }

    /// Whether the block path's output transform runs the AVX-512 kernel here (one Hadamard
    /// scale: the transform on codes).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn avx512_output(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.transforms == Transforms::Native
            && self.out_codes.is_some()
            && simd::enabled(self.isa, Isa::Avx512)
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
        geo: &TileGrid,
        span: Span,
        x: &[i8],
        v_mul: &[f32],
        rows: &mut [&mut [i8]],
        kp: usize,
        quads: &mut Vec<u8>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(qb) = &self.quad_b {
            use x86::{build_quads, input_vnni};
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
    fn output_avx512(&self, geo: &TileGrid, span: Span, qm: &[i8], qs: usize, out: &mut [i8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(OutCodes { mul, nz_f32, .. })) = (self.avx512_output(), &self.out_codes) {
            use x86::{output_avx512 as run, F32Arith as F, I32Arith as I};
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
    pub(super) fn forward_blocks(&self, x: &[i8], g: &TileGrid, h: usize, w: usize, y: &mut [i8]) {
        let s = &self.spec;
        let (c, k, m, t, n) = (s.c, s.k, s.m, self.t, g.n);
        let tt = t * t;
        let (hp, wp) = g.padded_in();
        let geo = *g;
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
                    let (kp, mp, mr) = PackedA::shape_of(pc, c);
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
                        let w = ARows {
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
