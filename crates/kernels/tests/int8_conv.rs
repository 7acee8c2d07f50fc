//! The channel-last INT8 im2row kernel against a plain integer direct convolution followed by
//! the same requantization: exactly equal, on awkward shapes (1 channel, odd sizes, 1×1,
//! channel counts not a multiple of 4, batch > 1). CI reruns this under WINQ_ISA=scalar and
//! avx2 so every GEMM path is exercised.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use winq_kernels::int8::conv::Im2rowI8;
use winq_kernels::int8::to_code;

/// Direct convolution in i32 on N×H×W×C codes, weights [K, C, r, r], then requantized.
#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[i8],
    qw: &[i8],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    r: usize,
    mul: &[f32],
) -> Vec<i8> {
    let p = (r - 1) as isize / 2;
    let mut y = vec![0i8; n * h * w * k];
    for ni in 0..n {
        for i in 0..h {
            for j in 0..w {
                for ko in 0..k {
                    let mut acc = 0i32;
                    for ci in 0..c {
                        for u in 0..r {
                            for v in 0..r {
                                let (si, sj) = (i as isize + u as isize - p, j as isize + v as isize - p);
                                if si < 0 || sj < 0 || si >= h as isize || sj >= w as isize {
                                    continue;
                                }
                                let xv = x[((ni * h + si as usize) * w + sj as usize) * c + ci] as i32;
                                acc += xv * qw[((ko * c + ci) * r + u) * r + v] as i32;
                            }
                        }
                    }
                    y[((ni * h + i) * w + j) * k + ko] = to_code(acc as f32 * mul[ko]);
                }
            }
        }
    }
    y
}

#[test]
fn im2row_int8_equals_integer_direct_convolution() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for &(n, c, k, h, w, r, per_channel) in &[
        (1, 1, 1, 1, 1, 3, false),
        (1, 1, 5, 7, 3, 3, false),
        (2, 3, 7, 5, 9, 3, true),
        (1, 32, 32, 8, 8, 3, false),
        (1, 13, 17, 11, 6, 1, true),
        (3, 6, 70, 4, 5, 3, true),
        (1, 64, 10, 3, 3, 1, false),
    ] {
        let x: Vec<i8> = (0..n * h * w * c).map(|_| rng.gen()).collect();
        let mut qw: Vec<i8> = (0..k * c * r * r).map(|_| rng.gen()).collect();
        qw[0] = -128;
        let (s_in, s_out) = (0.02, 0.9);
        let s_w: Vec<f64> = if per_channel {
            (0..k).map(|_| rng.gen_range(0.001..0.02)).collect()
        } else {
            vec![0.01]
        };
        let mul: Vec<f32> = (0..k)
            .map(|i| (s_in * s_w[if per_channel { i } else { 0 }] / s_out) as f32)
            .collect();
        let layer = Im2rowI8::new(&qw, c, k, r, s_in, &s_w, s_out);
        let mut y = vec![0i8; n * h * w * k];
        layer.forward(&x, n, h, w, &mut y);
        assert_eq!(
            y,
            reference(&x, &qw, n, h, w, c, k, r, &mul),
            "n{n} c{c} k{k} {h}x{w} r{r}"
        );
    }
}
