//! f32 matrix products through the `gemm` crate (runtime-dispatched AVX-512/AVX2/NEON
//! microkernels), behind a safe, bounds-checked interface.

use gemm::Parallelism;

/// How an operand is stored: as is (row-major rows×cols) or transposed (stored cols×rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As is.
    N,
    /// Transposed.
    T,
}

/// C (m×n, row-major, leading dimension n) = [C +] A·B, with A logically m×k and B k×n.
/// `threads` > 1 lets gemm split the product over rayon's pool.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    op_a: Layout,
    b: &[f32],
    op_b: Layout,
    c: &mut [f32],
    accumulate: bool,
    threads: usize,
) {
    let a_view = match op_a {
        Layout::N => View {
            data: a,
            rs: k,
            cs: 1,
        },
        Layout::T => View {
            data: a,
            rs: 1,
            cs: m,
        },
    };
    let b_view = match op_b {
        Layout::N => View {
            data: b,
            rs: n,
            cs: 1,
        },
        Layout::T => View {
            data: b,
            rs: 1,
            cs: k,
        },
    };
    sgemm_view(m, n, k, a_view, b_view, c, n, accumulate, threads);
}

/// y[i][o] = bias[o] + Σ_k x[i][k]·w[o][k], summed in ascending k (x n×din, w dout×din).
/// The classifier's product is tiny; a fixed summation order makes training and the engine
/// compute identical logits whatever the batch split (a GEMM library may block differently
/// for different batch sizes).
pub fn linear_rows(x: &[f32], n: usize, din: usize, w: &[f32], dout: usize, bias: &[f32]) -> Vec<f32> {
    assert!(
        x.len() >= n * din && w.len() >= dout * din && bias.len() >= dout,
        "linear shapes"
    );
    let mut y = Vec::with_capacity(n * dout);
    for xi in x.chunks_exact(din).take(n) {
        for (wo, &b) in w.chunks_exact(din).zip(bias).take(dout) {
            let mut acc = b;
            for (&a, &v) in xi.iter().zip(wo) {
                acc += a * v;
            }
            y.push(acc);
        }
    }
    y
}

/// Most products of two 8-bit codes (|v| ≤ 128 each) whose f32 sum is exact in any order:
/// 1023 · 128² < 2^24.
pub const EXACT_CODE_TERMS: usize = 1023;

/// C (m×n, rows `c_rs` apart) = A·B exactly, for A and B holding 8-bit integer codes as f32,
/// rounded once to f32 (what `i32 as f32` gives the integer engine): sums of at most
/// `EXACT_CODE_TERMS` products in f32, longer ones in chunks of that length added in f64.
#[allow(clippy::too_many_arguments)]
pub fn code_gemm(m: usize, n: usize, k: usize, a: View, b: View, c: &mut [f32], c_rs: usize) {
    if k <= EXACT_CODE_TERMS {
        sgemm_view(m, n, k, a, b, c, c_rs, false, 1);
        return;
    }
    let mut acc = vec![0.0f64; m * n];
    let mut part = vec![0.0f32; m * n];
    for k0 in (0..k).step_by(EXACT_CODE_TERMS) {
        let kk = EXACT_CODE_TERMS.min(k - k0);
        let a_sub = View {
            data: &a.data[k0 * a.cs..],
            rs: a.rs,
            cs: a.cs,
        };
        let b_sub = View {
            data: &b.data[k0 * b.rs..],
            rs: b.rs,
            cs: b.cs,
        };
        sgemm_view(m, n, kk, a_sub, b_sub, &mut part, n, false, 1);
        acc.iter_mut().zip(&part).for_each(|(s, &p)| *s += p as f64);
    }
    for (i, row) in acc.chunks_exact(n).enumerate() {
        for (o, &v) in c[i * c_rs..i * c_rs + n].iter_mut().zip(row) {
            *o = v as f32;
        }
    }
}

/// A read-only strided matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl View<'_> {
    fn check(&self, rows: usize, cols: usize, name: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        // Checked arithmetic: a wrapped product must not pass the bounds check.
        let last = (rows - 1)
            .checked_mul(self.rs)
            .and_then(|a| (cols - 1).checked_mul(self.cs).and_then(|b| a.checked_add(b)))
            .filter(|_| self.rs <= isize::MAX as usize && self.cs <= isize::MAX as usize);
        let last = last.unwrap_or(usize::MAX);
        assert!(
            last < self.data.len(),
            "sgemm: {name} view {rows}x{cols} (rs {}, cs {}) needs {} elements, has {}",
            self.rs,
            self.cs,
            last + 1,
            self.data.len()
        );
    }
}

/// C (m×n, rows `c_rs` apart, unit column stride) = [C +] A·B for strided A (m×k), B (k×n).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_view(
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: View,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        c_rs >= n && c_rs <= isize::MAX as usize,
        "sgemm: bad C row stride {c_rs} for n {n}"
    );
    let c_need = (m - 1).checked_mul(c_rs).and_then(|v| v.checked_add(n));
    assert!(
        c_need.is_some_and(|need| c.len() >= need),
        "sgemm: C is too small for {m}x{n}"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * c_rs..i * c_rs + n].fill(0.0);
            }
        }
        return;
    }
    a.check(m, k, "A");
    b.check(k, n, "B");
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: every index the views and C can reach was bounds-checked above, and C does not
    // alias A or B (a unique borrow next to shared ones).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums of 8-bit code products beyond f32's exact range: `code_gemm` gives the exact
    /// integer rounded once (as `i64 as f32`), where a plain f32 GEMM would round partial sums.
    #[test]
    fn code_gemm_is_exact_beyond_two_to_the_24() {
        let (m, n, k) = (3, 5, 2600);
        let a: Vec<f32> = (0..m * k)
            .map(|i| if i % 7 == 3 { -127.0 } else { -128.0 })
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| if i % 5 == 1 { 127.0 } else { -128.0 })
            .collect();
        // Products of the first `terms` columns of A and rows of B.
        let run = |terms: usize| {
            let mut c = vec![0.0f32; m * n];
            let (va, vb) = (
                View {
                    data: &a,
                    rs: k,
                    cs: 1,
                },
                View {
                    data: &b,
                    rs: n,
                    cs: 1,
                },
            );
            code_gemm(m, n, terms, va, vb, &mut c, n);
            c
        };
        let c = run(k);
        for i in 0..m {
            for j in 0..n {
                let exact: i64 = (0..k).map(|p| a[i * k + p] as i64 * b[p * n + j] as i64).sum();
                assert!(exact.abs() > 1 << 24, "the test must leave f32's exact range");
                assert_eq!(c[i * n + j], exact as f32, "({i}, {j})");
            }
        }
        // Short sums take the plain path and are exact as well.
        let c2 = run(1000);
        let exact: i64 = (0..1000).map(|p| a[p] as i64 * b[p * n] as i64).sum();
        assert_eq!(c2[0], exact as f32);
    }

    #[test]
    fn linear_rows_sums_in_index_order() {
        let x = [1e8f32, 1.0, -1e8, 1.0];
        let w = [1.0f32, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5];
        // Ascending order: ((b + 1e8) + 1) - 1e8 + 1 loses the first 1 to rounding.
        let y = linear_rows(&x, 1, 4, &w, 2, &[0.0, 2.0]);
        assert_eq!(
            y,
            vec![((1e8f32 + 1.0) - 1e8) + 1.0, (((2.0 + 5e7f32) + 0.5) - 5e7) + 0.5]
        );
    }

    fn naive(m: usize, n: usize, k: usize, a: &[f32], ta: bool, b: &[f32], tb: bool) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av as f64 * bv as f64;
                }
            }
        }
        c
    }

    #[test]
    fn all_transpose_combinations_and_odd_sizes() {
        let mut seed = 1u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 33, 65), (64, 1, 9), (2, 100, 3)] {
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            for (oa, ob) in [
                (Layout::N, Layout::N),
                (Layout::T, Layout::N),
                (Layout::N, Layout::T),
                (Layout::T, Layout::T),
            ] {
                for threads in [1, 2] {
                    let want = naive(m, n, k, &a, oa == Layout::T, &b, ob == Layout::T);
                    let mut c = vec![1.0f32; m * n];
                    sgemm(m, n, k, &a, oa, &b, ob, &mut c, true, threads);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((*x as f64 - (y + 1.0)).abs() < 1e-4, "{m}x{n}x{k} {oa:?}{ob:?}");
                    }
                    sgemm(m, n, k, &a, oa, &b, ob, &mut c, false, threads);
                    for (x, y) in c.iter().zip(&want) {
                        assert!((*x as f64 - y).abs() < 1e-4);
                    }
                }
            }
        }
    }
}
