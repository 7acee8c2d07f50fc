//! Lowering of a "same"-padded r×r convolution to a matrix product (f32): one row per
//! (channel, kernel tap), one column per output pixel, built by row copies.

/// Valid output columns [j0, j1) for kernel column v: those whose source j + v - p is inside.
fn valid_cols(w: usize, v: usize, p: usize) -> (usize, usize) {
    (p.saturating_sub(v), (w + p).saturating_sub(v).min(w))
}

/// cols (C·r·r × H·W) of one image for a "same"-padded r×r kernel.
pub fn im2col(x: &[f32], c: usize, h: usize, w: usize, r: usize, cols: &mut [f32]) {
    let p = (r - 1) / 2;
    let hw = h * w;
    for ci in 0..c {
        let xc = &x[ci * hw..(ci + 1) * hw];
        for u in 0..r {
            for v in 0..r {
                let row = &mut cols[((ci * r + u) * r + v) * hw..][..hw];
                let (j0, j1) = valid_cols(w, v, p);
                for i in 0..h {
                    let out = &mut row[i * w..(i + 1) * w];
                    let Some(si) = (i + u).checked_sub(p).filter(|&s| s < h) else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..j0].fill(0.0);
                    out[j1..].fill(0.0);
                    if j0 < j1 {
                        let s0 = si * w + j0 + v - p;
                        out[j0..j1].copy_from_slice(&xc[s0..s0 + (j1 - j0)]);
                    }
                }
            }
        }
    }
}

/// Adds cols (C·r·r × H·W) back into the image gradient (the adjoint of im2col).
pub fn col2im(cols: &[f32], c: usize, h: usize, w: usize, r: usize, dx: &mut [f32]) {
    let p = (r - 1) / 2;
    let hw = h * w;
    for ci in 0..c {
        let dxc = &mut dx[ci * hw..(ci + 1) * hw];
        for u in 0..r {
            for v in 0..r {
                let row = &cols[((ci * r + u) * r + v) * hw..][..hw];
                let (j0, j1) = valid_cols(w, v, p);
                if j0 >= j1 {
                    continue;
                }
                for i in 0..h {
                    let Some(si) = (i + u).checked_sub(p).filter(|&s| s < h) else {
                        continue;
                    };
                    let s0 = si * w + j0 + v - p;
                    let dst = &mut dxc[s0..s0 + (j1 - j0)];
                    for (d, s) in dst.iter_mut().zip(&row[i * w + j0..i * w + j1]) {
                        *d += s;
                    }
                }
            }
        }
    }
}
