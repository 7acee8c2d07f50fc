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

    /// Whether the block path's output transform runs an AVX-512 kernel here (on codes with
    /// one Hadamard scale, on values with per-tap scales).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn avx512_output(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.transforms == Transforms::Native && simd::enabled(self.isa, Isa::Avx512) {
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

    /// The block path's output transform with AVX-512 where it applies (on codes with one
    /// Hadamard scale, f32 where exact, else i32; on values with per-tap scales); false where
    /// the portable stage must run.
    #[allow(unused_variables)]
    fn output_avx512(&self, geo: &TileGrid, span: Span, qm: &[i8], qs: usize, out: &mut [i8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.avx512_output() {
            use x86::{F32Arith, I32Arith, OutArith};
            /// The kernel compiled for this tile size; false where there is none.
            /// # Safety
            /// As `x86::output_avx512`.
            #[allow(clippy::too_many_arguments)]
            unsafe fn by_tile<A: OutArith>(
                t: usize,
                g: &TileGrid,
                span: Span,
                qm: &[i8],
                qs: usize,
                k: usize,
                arith: &A,
                mul: f32,
                out: &mut [i8],
            ) -> bool {
                use x86::output_avx512 as run;
                // SAFETY: forwarded from the caller.
                unsafe {
                    match t {
                        4 => run::<A, 4, 2>(g, span, qm, qs, k, arith, mul, out),
                        6 => run::<A, 6, 4>(g, span, qm, qs, k, arith, mul, out),
                        8 => run::<A, 8, 6>(g, span, qm, qs, k, arith, mul, out),
                        _ => return false,
                    }
                }
                true
            }
            let (t, k) = (self.t, self.spec.k);
            // SAFETY: `avx512_output` checked AVX-512F/BW; k is a multiple of 16 on this path;
            // Aᵀ is M×T and the scales one per tap; the f32 arithmetic on codes only where Aᵀ
            // meets its bound (`nz_f32`).
            return unsafe {
                match &self.out_codes {
                    None => {
                        let arith = F32Arith::<true> {
                            a: &self.a_vals,
                            s_m: &self.s_m_f32,
                        };
                        by_tile(t, geo, span, qm, qs, k, &arith, self.out_mul, out)
                    }
                    Some(OutCodes {
                        mul, nz_f32: Some(_), ..
                    }) => {
                        let arith = F32Arith::<false> {
                            a: &self.qa_f32,
                            s_m: &[],
                        };
                        by_tile(t, geo, span, qm, qs, k, &arith, *mul, out)
                    }
                    Some(OutCodes {
                        mul, nz_f32: None, ..
                    }) => by_tile(t, geo, span, qm, qs, k, &I32Arith(&self.qa), *mul, out),
                }
            };
        }
        false
    }

    /// The input transform of the tiles of `span` into every tap's GEMM rows (`rows[e]`, rows
    /// `kp` bytes apart): VNNI dot products over row quads built from the unpadded input
    /// (`vnni`, where `vnni_input` holds), else the block kernels on the padded copy.
    #[allow(clippy::too_many_arguments)]
    fn input_span(
        &self,
        geo: &TileGrid,
        span: Span,
        (x, xpad): (&[i8], &[i8]),
        rows: &mut [&mut [i8]],
        kp: usize,
        quads: &mut Vec<u8>,
        vnni: bool,
    ) {
        if vnni {
            self.input_vnni(geo, span, x, &self.v_mul, rows, kp, quads);
        } else {
            let (t, c) = (self.t, self.spec.c);
            let nz_f32 = self.nz_b_f32.as_deref();
            input_stage(
                self.isa,
                geo,
                span,
                t,
                xpad,
                c,
                &self.nz_b,
                nz_f32,
                &self.v_mul,
                rows,
                kp,
            );
        }
    }

    /// The output transform of the per-tap products `qm` (tap e at e·qs) of `span` into its
    /// output rows: the AVX-512 kernel where it applies, else the block kernels.
    fn output_span(
        &self,
        geo: &TileGrid,
        span: Span,
        (qm, qs): (&[i8], usize),
        how: &OutTransform,
        out: &mut [i8],
    ) {
        if !self.output_avx512(geo, span, qm, qs, out) {
            output_stage(self.isa, geo, span, self.t, qm, qs, self.spec.k, how, out);
        }
    }

    /// How the output transform computes (on codes, f32 or i32, or on values).
    fn out_transform(&self) -> OutTransform<'_> {
        match &self.out_codes {
            Some(OutCodes {
                mul,
                nz_f32: Some(nz),
                ..
            }) => OutTransform::CodesF32 { nz, mul: *mul },
            Some(OutCodes { mul, nz, .. }) => OutTransform::CodesI32 { nz, mul: *mul },
            None => OutTransform::Values {
                nz_a: &self.nz_a,
                s_m: &self.s_m_f32,
                mul: self.out_mul,
            },
        }
    }

    /// The same pipeline with register-block transforms (C and K multiples of 16).
    pub(super) fn forward_blocks(&self, x: &[i8], g: &TileGrid, h: usize, w: usize, y: &mut [i8]) {
        let s = &self.spec;
        let (c, k, m, t, n) = (s.c, s.k, s.m, self.t, g.n);
        let tt = t * t;
        let (hp, wp) = g.padded_in();
        let geo = *g;
        let how = self.out_transform();
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
                    self.input_span(&geo, span, (x, xpad), &mut dst, kp, quads, vnni);
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
                        let mul = self.hadamard_mul[e];
                        let qm_e = &mut qm[e * qs..e * qs + pc * k];
                        gemm_requant_isa(self.isa, &w, &self.ut[e], mul, qm_e, k, acc);
                    }
                    self.output_span(&geo, span, (qm, qs), &how, out);
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

/// The hand-written x86 tile transforms against the portable block kernels, one span at a
/// time (NNPACK-style per-ISA transform tests): spans of one tile row, of rows across an image
/// boundary and of the whole batch; the VNNI input transform must write the same GEMM rows as
/// the portable one, the AVX-512 output transform the same codes (f32 and i32 arithmetic).
#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::int8::winograd::Transforms;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use winq_ir::QuantWinograd;

    /// A layer with the transforms' real codes (Aᵀ scaled up by `a_gain` to reach the i32
    /// output arithmetic) and random weights.
    fn layer(m: usize, c: usize, k: usize, a_gain: f64, rng: &mut ChaCha8Rng) -> QuantWinograd {
        let tr = winq_transforms::transform(m, 3, &winq_transforms::PointSet::Default)
            .expect("transform")
            .to_f64();
        let code = |v: &[f64], gain: f64| -> (Vec<i8>, f64) {
            let s = v.iter().fold(0.0f64, |a, x| a.max(x.abs())) / 127.5 / gain;
            (
                v.iter()
                    .map(|x| (x / s).round().clamp(-128.0, 127.0) as i8)
                    .collect(),
                s,
            )
        };
        let ((at, s_at), (bt, s_bt)) = (code(&tr.at.data, a_gain), code(&tr.bt.data, 1.0));
        let t = m + 2;
        QuantWinograd {
            c,
            k,
            m,
            at,
            bt,
            s_at,
            s_bt,
            u: (0..t * t * k * c).map(|_| rng.gen()).collect(),
            s_u: vec![0.004],
            s_in: 0.05,
            s_v: (0..t * t).map(|_| rng.gen_range(0.02..0.2)).collect(),
            s_m: vec![0.3],
            s_out: 0.1,
        }
    }

    #[test]
    fn native_transforms_equal_portable_on_single_spans() {
        if !simd::supports(Isa::Avx512Vnni) {
            eprintln!("skipped: this CPU has no AVX-512 VNNI (the x86 transforms cannot run)");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let (n, h, w) = (2, 11, 9);
        let mut kinds = std::collections::BTreeSet::new();
        for (m, c, k, a_gain, per_tap) in [
            (2, 16, 16, 1.0, false),
            (4, 32, 16, 1.0, false),
            (4, 16, 32, 40.0, false),
            (6, 16, 16, 1.0, false),
            (6, 16, 16, 30.0, false),
            (2, 16, 32, 1.0, true),
            (4, 32, 16, 1.0, true),
            (6, 16, 16, 30.0, true),
        ] {
            let mut spec = layer(m, c, k, a_gain, &mut rng);
            if per_tap {
                // One Hadamard scale per tap: the output transform on values.
                spec.s_m = (0..(m + 2) * (m + 2)).map(|_| rng.gen_range(0.1..0.6)).collect();
            }
            let native = WinogradI8::new(spec.clone()).with_path(Isa::Avx512Vnni, Transforms::Native);
            let portable = WinogradI8::new(spec).with_path(Isa::Scalar, Transforms::Blocks);
            // F6's Bᵀ is beyond the VNNI input transform's bound: its input runs the block
            // kernels (compiled for AVX-512) against the scalar build.
            let vnni = native.vnni_input();
            assert_eq!(vnni, m != 6, "F{m}: where the VNNI input transform applies");
            assert!(
                native.avx512_output(),
                "F{m}: the AVX-512 output transform applies"
            );
            kinds.insert(match native.out_transform() {
                OutTransform::CodesF32 { .. } => "codes f32",
                OutTransform::CodesI32 { .. } => "codes i32",
                OutTransform::Values { .. } => "values",
            });
            let g = TileGrid::new(n, h, w, m);
            let (hp, wp) = g.padded_in();
            let x: Vec<i8> = (0..n * h * w * c).map(|_| rng.gen()).collect();
            let mut xpad = Vec::new();
            pad_nhwc(
                &x,
                (n, h, w, c),
                (hp, wp),
                (1 + g.before.0, 1 + g.before.1),
                &mut xpad,
            );
            let first_row = |r: usize| {
                let (ni, ty) = (r / g.tiles_y, r % g.tiles_y);
                ni * h + (ty * m).saturating_sub(g.before.0).min(h)
            };
            let rows = n * g.tiles_y;
            for (r0, r1) in [(0, 1), (1, 2), (g.tiles_y - 1, g.tiles_y + 1), (0, rows)] {
                let span = Span {
                    p0: r0 * g.tiles_x,
                    p1: r1 * g.tiles_x,
                    y_row0: first_row(r0),
                };
                let pc = span.p1 - span.p0;
                let tt = g.tt();
                let (kp, mp, _) = PackedA::shape_of(pc, c);
                let input = |l: &WinogradI8, vnni: bool| {
                    let mut buf = vec![0i8; tt * mp * kp];
                    let mut dst: Vec<&mut [i8]> = buf.chunks_exact_mut(mp * kp).collect();
                    l.input_span(&g, span, (&x, &xpad), &mut dst, kp, &mut Vec::new(), vnni);
                    buf
                };
                let ctx = format!("F{m} {c}->{k} tile rows {r0}..{r1}");
                assert_eq!(
                    input(&native, vnni),
                    input(&portable, false),
                    "{ctx}: input transform"
                );
                let qs = pc * k + 64;
                let qm: Vec<i8> = (0..tt * qs).map(|_| rng.gen()).collect();
                let row1 = if r1 == rows { n * h } else { first_row(r1) };
                let output = |l: &WinogradI8| {
                    let mut out = vec![0i8; (row1 - span.y_row0) * w * k];
                    l.output_span(&g, span, (&qm, qs), &l.out_transform(), &mut out);
                    out
                };
                let want = output(&portable);
                assert!(want.iter().any(|&v| v != want[0]), "{ctx}: outputs vary");
                assert_eq!(output(&native), want, "{ctx}: output transform");
            }
        }
        assert_eq!(
            kinds.len(),
            3,
            "every output arithmetic (codes f32 and i32, values) tested"
        );
    }
}
