//! INT8 im2row convolution (r×r, stride 1, "same" padding; r = 1 or 3) on channel-last
//! (N×H×W×C) codes: each output pixel's window becomes one GEMM row — r runs of r·C
//! contiguous bytes of the zero-padded input — times the packed weight codes [r·r·C × K],
//! int32 accumulation, and requantization per output channel; the output is channel-last too.

use super::{gemm_isa, grow, pad_nhwc, parallel_parts, requant_cols_isa, PackedA, PackedB, MR};
use rayon::prelude::*;
use winq_quant::codes::{group_scale, multiplier};
use winq_quant::simd::{self, Isa};

/// Per-thread working buffers, reused across calls: the padded input and its pixel sums
/// (caller), and one chunk's GEMM rows and accumulators (whichever thread runs the chunk).
#[derive(Default)]
struct Scratch {
    xpad: Vec<i8>,
    sums: Vec<i32>,
}

#[derive(Default)]
struct ChunkScratch {
    rows: PackedA,
    acc: Vec<i32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
    static CHUNK: std::cell::RefCell<ChunkScratch> = std::cell::RefCell::new(ChunkScratch::default());
}

/// Output pixels per parallel chunk at least (fewer are not worth a task).
const MIN_CHUNK: usize = 96;

/// A layer ready to run.
pub struct Im2rowI8 {
    pub c: usize,
    pub k: usize,
    pub r: usize,
    /// Weight codes as the GEMM's column operand: rows (u, v, c), columns output channels.
    w: PackedB,
    /// s_in · s_w[k] / s_out per output channel: one accumulator step in output codes.
    mul: Vec<f32>,
    /// The instruction set the GEMM and requantization run on.
    isa: Isa,
}

impl Im2rowI8 {
    /// `qw` are weight codes [K, C, r, r]; scales of input, weights (one, or one per output
    /// channel) and output.
    pub fn new(qw: &[i8], c: usize, k: usize, r: usize, s_in: f64, s_w: &[f64], s_out: f64) -> Im2rowI8 {
        assert!(r % 2 == 1, "same padding needs an odd kernel");
        assert_eq!(qw.len(), k * c * r * r, "weights must be [K, C, r, r]");
        assert!(
            s_w.len() == 1 || s_w.len() == k,
            "one weight scale or one per output channel"
        );
        let taps = r * r * c;
        let mut rows = vec![0i8; taps * k];
        for ko in 0..k {
            for ci in 0..c {
                for uv in 0..r * r {
                    rows[(uv * c + ci) * k + ko] = qw[(ko * c + ci) * r * r + uv];
                }
            }
        }
        let mul = (0..k)
            .map(|i| multiplier(s_in * group_scale(s_w, i), s_out))
            .collect();
        Im2rowI8 {
            c,
            k,
            r,
            w: PackedB::from_rows(&rows, taps, k, k),
            mul,
            isa: simd::isa(),
        }
    }

    /// Runs on an explicit instruction set (capped to what the CPU has); by default the best.
    pub fn with_isa(mut self, isa: Isa) -> Im2rowI8 {
        self.isa = if simd::supports(isa) { isa } else { Isa::Scalar };
        self
    }

    /// Output codes N×H×W×K into `y` for input codes N×H×W×C.
    pub fn forward(&self, x: &[i8], n: usize, h: usize, w: usize, y: &mut [i8]) {
        let (c, k, r) = (self.c, self.k, self.r);
        assert_eq!(x.len(), n * h * w * c, "input must be N×H×W×C");
        assert_eq!(y.len(), n * h * w * k, "output must be N×H×W×K");
        let (hp, wp) = (h + r - 1, w + r - 1);
        let taps = r * r * c;
        // Taken out of the thread-local while the chunks run: rayon may start another layer
        // on this thread meanwhile (work stealing), which must not find it borrowed.
        let mut scratch = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        {
            let Scratch { xpad, sums } = &mut scratch;
            pad_nhwc(x, (n, h, w, c), (hp, wp), ((r - 1) / 2, (r - 1) / 2), xpad);
            // Channel sums per padded pixel: a row's sum (for the GEMM's +128 correction) is
            // the sum of its window's r×r pixel sums.
            sums.clear();
            sums.extend(
                xpad.chunks_exact(c)
                    .map(|px| px.iter().map(|&v| v as i32).sum::<i32>()),
            );
            let (xpad, sums) = (&*xpad, &*sums);
            // Output pixels p0.. into `out` (its rows of K codes): lower, multiply, requantize.
            let chunk = |p0: usize, out: &mut [i8]| {
                CHUNK.with(|cell| {
                    let mut cs = cell.borrow_mut();
                    let ChunkScratch { rows, acc } = &mut *cs;
                    let np = out.len() / k;
                    rows.fill_rows(np, taps, |pr, dst| {
                        let p = p0 + pr;
                        let (ni, i, j) = (p / (h * w), p / w % h, p % w);
                        let mut sum = 0;
                        for u in 0..r {
                            let src = ((ni * hp + i + u) * wp + j) * c;
                            dst[u * r * c..(u + 1) * r * c].copy_from_slice(&xpad[src..src + r * c]);
                            sum += sums[src / c..src / c + r].iter().sum::<i32>();
                        }
                        dst[taps..].fill(0);
                        sum
                    });
                    let acc = grow(acc, np * k);
                    gemm_isa(self.isa, rows, &self.w, acc, k);
                    requant_cols_isa(self.isa, acc, &self.mul, out);
                })
            };
            let pixels = n * h * w;
            let parts = parallel_parts(pixels, MIN_CHUNK);
            if parts == 1 {
                chunk(0, y);
            } else {
                // Whole microkernel row blocks per part; parts write disjoint output rows.
                let per = pixels.div_ceil(parts).div_ceil(MR) * MR;
                y.par_chunks_mut(per * k)
                    .enumerate()
                    .for_each(|(i, out)| chunk(i * per, out));
            }
        }
        SCRATCH.with(|cell| *cell.borrow_mut() = scratch);
    }
}
