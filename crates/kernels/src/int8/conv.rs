//! INT8 im2row convolution (r×r, stride 1, "same" padding; r = 1 or 3): input codes are
//! lowered straight into the GEMM's packed layout, multiplied by the packed weight codes with
//! int32 accumulation, and requantized to the output scale (round half to even).

use super::{gemm, grow, requant, PackedW, PackedX};

/// The lowered matrix of one image (rows (c, u, v), columns output pixels) by row copies.
fn lower(img: &[i8], c: usize, h: usize, w: usize, r: usize, p: usize, cols: &mut [i8]) {
    let hw = h * w;
    for ci in 0..c {
        let plane = &img[ci * hw..(ci + 1) * hw];
        for u in 0..r {
            for v in 0..r {
                let row = &mut cols[((ci * r + u) * r + v) * hw..][..hw];
                let (j0, j1) = (p.saturating_sub(v), (w + p).saturating_sub(v).min(w));
                for i in 0..h {
                    let out = &mut row[i * w..(i + 1) * w];
                    match (i + u).checked_sub(p).filter(|&s| s < h) {
                        Some(si) if j0 < j1 => {
                            out[..j0].fill(0);
                            out[j1..].fill(0);
                            let s0 = si * w + j0 + v - p;
                            out[j0..j1].copy_from_slice(&plane[s0..s0 + (j1 - j0)]);
                        }
                        _ => out.fill(0),
                    }
                }
            }
        }
    }
}

/// Per-thread working buffers, reused across calls.
#[derive(Default)]
struct Scratch {
    cols: Vec<i8>,
    acc: Vec<i32>,
    xp: Vec<PackedX>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// A layer ready to run.
pub struct Im2rowI8 {
    pub c: usize,
    pub k: usize,
    pub r: usize,
    w: PackedW,
    /// s_in · s_w[k] / s_out per output channel: one accumulator step in output codes.
    mul: Vec<f64>,
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
        let mul = (0..k)
            .map(|i| s_in * s_w[if s_w.len() == 1 { 0 } else { i }] / s_out)
            .collect();
        Im2rowI8 {
            c,
            k,
            r,
            w: PackedW::new(qw, k, c * r * r),
            mul,
        }
    }

    /// Output codes N×K×H×W for input codes N×C×H×W.
    pub fn forward(&self, x: &[i8], n: usize, h: usize, w: usize) -> Vec<i8> {
        let (c, k, r) = (self.c, self.k, self.r);
        assert_eq!(x.len(), n * c * h * w, "input must be N×C×H×W");
        let p = (r - 1) / 2;
        let hw = h * w;
        let taps = c * r * r;
        let mut y = vec![0i8; n * k * hw];
        SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            let Scratch { cols, acc, xp } = &mut *s;
            let (acc, cols) = (grow(acc, k * hw), grow(cols, taps * hw));
            // The packed operand keeps its padding rows from creation, so keep one per shape
            // (a network has a handful of layer shapes).
            let i = match xp.iter().position(|q| (q.k, q.n) == (taps, hw)) {
                Some(i) => i,
                None => {
                    xp.push(PackedX::zeros(taps, hw));
                    xp.len() - 1
                }
            };
            let xp = &mut xp[i];
            for ni in 0..n {
                let img = &x[ni * c * hw..(ni + 1) * c * hw];
                if r == 1 {
                    xp.fill_from_rows(img, hw);
                } else {
                    lower(img, c, h, w, r, p, cols);
                    xp.fill_from_rows(cols, hw);
                }
                gemm(&self.w, xp, acc, hw);
                for (ko, (orow, arow)) in y[ni * k * hw..(ni + 1) * k * hw]
                    .chunks_mut(hw)
                    .zip(acc.chunks(hw))
                    .enumerate()
                {
                    requant(arow, self.mul[ko] as f32, orow);
                }
            }
        });
        y
    }
}
