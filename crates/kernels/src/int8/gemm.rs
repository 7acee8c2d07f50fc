//! The INT8 GEMM: the plain reference, the portable path, and the dispatch to the per-ISA
//! microkernels (`gemm_x86`, `gemm_arm`), plain or with requantization fused.

#[cfg(target_arch = "aarch64")]
use super::gemm_arm as arm;
#[cfg(target_arch = "x86_64")]
use super::gemm_x86 as x86;
use super::pack::{ARows, PackedA, PackedB};
use super::requant::requant_isa;
use super::{grow, MR, MR_SMALL, NV, PANEL};
use winq_quant::simd::{self, Isa};

/// The shape invariants the microkernels' unchecked reads rely on (`ARows` and `PackedB` have
/// public fields).
fn check_operands(w: &ARows, x: &PackedB) {
    assert_eq!(
        w.kp, x.kp,
        "inner dimensions differ: W has K={}, X has K={}",
        w.k, x.k
    );
    let rows = if w.mr == MR_SMALL { MR_SMALL } else { MR };
    assert!(
        w.data.len() >= w.mp * w.kp
            && w.bias128.len() >= w.mp
            && w.mp >= w.m
            && w.mp.is_multiple_of(rows)
            && w.kp.is_multiple_of(4),
        "W is malformed"
    );
    assert!(
        x.data.len() >= x.kp * x.np && x.np.is_multiple_of(NV) && x.np >= x.n,
        "X is malformed"
    );
}

/// Plain reference: C = W·X in i32 (W M×K, X K×N, both row-major).
pub fn reference(w: &[i8], x: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    let mut c = vec![0i32; m * n];
    for i in 0..m {
        for p in 0..k {
            let wv = w[i * k + p] as i32;
            for j in 0..n {
                c[i * n + j] += wv * x[p * n + j] as i32;
            }
        }
    }
    c
}

winq_quant::multiversion! {
    /// The portable path: same packed operands, plain loops (vectorized per ISA by the compiler).
    fn gemm_portable / gemm_portable_isa(w: &ARows, x: &PackedB, c: &mut [i32], ldc: usize) {
        let (m, n, kq) = (w.m, x.n, w.kp / 4);
        let mut acc = vec![0i32; x.np];
        for i in 0..m {
            acc.fill(0);
            let wr = &w.data[i * w.kp..(i + 1) * w.kp];
            for j0 in (0..x.np).step_by(PANEL) {
                let pw = x.panel_width(j0);
                let panel = &x.data[j0 * x.kp..j0 * x.kp + pw * x.kp];
                let acc = &mut acc[j0..j0 + pw];
                for q in 0..kq {
                    let (w0, w1, w2, w3) =
                        (wr[4 * q] as i32, wr[4 * q + 1] as i32, wr[4 * q + 2] as i32, wr[4 * q + 3] as i32);
                    let xr = &panel[q * pw * 4..(q + 1) * pw * 4];
                    for (a, xb) in acc.iter_mut().zip(xr.chunks_exact(4)) {
                        *a += w0 * xb[0] as i32 + w1 * xb[1] as i32 + w2 * xb[2] as i32 + w3 * xb[3] as i32;
                    }
                }
            }
            let b = w.bias128[i];
            for (o, a) in c[i * ldc..i * ldc + n].iter_mut().zip(&acc) {
                *o = a - b;
            }
        }
    }
}

/// C (M×N, rows `ldc` apart) = W·X, on the best instruction set available.
pub fn gemm(w: &PackedA, x: &PackedB, c: &mut [i32], ldc: usize) {
    gemm_isa(simd::isa(), w, x, c, ldc)
}

/// The same on an explicit instruction set (falls back to the portable path when the CPU or
/// the build lacks it).
pub fn gemm_isa(isa: Isa, w: &PackedA, x: &PackedB, c: &mut [i32], ldc: usize) {
    gemm_rows_isa(isa, &w.rows(), x, c, ldc)
}

/// `gemm_isa` on a borrowed row operand.
pub fn gemm_rows_isa(isa: Isa, w: &ARows, x: &PackedB, c: &mut [i32], ldc: usize) {
    check_operands(w, x);
    assert!(
        ldc >= x.n && (w.m == 0 || c.len() >= (w.m - 1) * ldc + x.n),
        "C is too small"
    );
    if w.m == 0 || x.n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if simd::enabled(isa, Isa::Avx512Vnni) {
        // SAFETY: AVX-512F/BW and VNNI were detected at run time.
        unsafe { x86::gemm_vnni(w, x, c, ldc) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if simd::enabled(isa, Isa::Avx2) {
        // SAFETY: AVX2 was detected at run time.
        unsafe { x86::gemm_avx2(w, x, c, ldc) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if isa == Isa::NeonDot && simd::supports(Isa::NeonDot) {
        // SAFETY: the dot-product extension was detected at run time.
        unsafe { arm::gemm_dot(w, x, c, ldc) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if isa == Isa::Neon {
        // SAFETY: NEON is part of every aarch64 CPU.
        unsafe { arm::gemm_neon(w, x, c, ldc) };
        return;
    }
    gemm_portable_isa(isa, w, x, c, ldc)
}

/// out (M×N codes, rows `ldo` apart) = requantized W·X: `requant` of each row of C by `mul`,
/// in the VNNI microkernel's epilogue where it runs (else through `scratch`).
pub fn gemm_requant(w: &ARows, x: &PackedB, mul: f32, out: &mut [i8], ldo: usize, scratch: &mut Vec<i32>) {
    gemm_requant_isa(simd::isa(), w, x, mul, out, ldo, scratch)
}

/// The same on an explicit instruction set.
pub fn gemm_requant_isa(
    isa: Isa,
    w: &ARows,
    x: &PackedB,
    mul: f32,
    out: &mut [i8],
    ldo: usize,
    scratch: &mut Vec<i32>,
) {
    check_operands(w, x);
    assert!(
        ldo >= x.n && (w.m == 0 || out.len() >= (w.m - 1) * ldo + x.n),
        "the output is too small"
    );
    #[cfg(target_arch = "x86_64")]
    if simd::enabled(isa, Isa::Avx512Vnni) && w.m > 0 && x.n > 0 {
        // SAFETY: AVX-512F/BW and VNNI were detected at run time; sizes checked above.
        unsafe { x86::gemm_vnni_requant(w, x, mul, out, ldo) };
        return;
    }
    let c = grow(scratch, w.m * x.n);
    gemm_rows_isa(isa, w, x, c, x.n);
    for (o, row) in out.chunks_mut(ldo).zip(c.chunks_exact(x.n.max(1))).take(w.m) {
        requant_isa(isa, row, mul, &mut o[..x.n]);
    }
}

/// The GEMM path that runs on this machine (for reports).
pub fn path_name() -> &'static str {
    gemm_kernel_name(simd::isa())
}

/// The GEMM kernel `gemm_isa(isa, ..)` runs here.
pub fn gemm_kernel_name(isa: Isa) -> &'static str {
    let isa = if simd::supports(isa) { isa } else { Isa::Scalar };
    match isa {
        Isa::Avx512 => Isa::Avx2.name(),
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::requant::{to_code, to_code_f64};

    fn rnd(seed: &mut u64) -> i8 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 56) as u8 as i8
    }

    #[test]
    fn every_path_matches_the_reference_exactly() {
        let mut seed = 11;
        let shapes = [
            (1, 1, 1),
            (3, 5, 17),
            (4, 4, 16),
            (5, 9, 15),
            (17, 288, 100),
            (64, 36, 65),
            (7, 1, 300),
            (33, 130, 129),
            (64, 2304, 256),
            (12, 1152, 64),
        ];
        for (m, k, n) in shapes {
            let mut w: Vec<i8> = (0..m * k).map(|_| rnd(&mut seed)).collect();
            let mut x: Vec<i8> = (0..k * n).map(|_| rnd(&mut seed)).collect();
            // Extremes included: -128 · -128 products and full 127 rows.
            w[0] = -128;
            x[0] = -128;
            if k > 1 {
                x[1] = 127;
            }
            let want = reference(&w, &x, m, k, n);
            let pw = PackedA::new(&w, m, k);
            let px = PackedB::from_rows(&x, k, n, n);
            // Requantized: a multiplier that spreads the sums over the code range.
            let spread = want.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0).max(1) as f32;
            let mul = 150.0 / spread;
            let want_codes: Vec<i8> = want.iter().map(|&v| to_code(v as f32 * mul)).collect();
            for &isa in simd::available() {
                let ldc = n + 3;
                let mut c = vec![i32::MIN; m * ldc];
                gemm_isa(isa, &pw, &px, &mut c, ldc);
                let mut q = vec![99i8; m * ldc];
                gemm_requant_isa(isa, &pw.rows(), &px, mul, &mut q, ldc, &mut Vec::new());
                for i in 0..m {
                    assert_eq!(
                        &c[i * ldc..i * ldc + n],
                        &want[i * n..(i + 1) * n],
                        "{isa:?} {m}x{k}x{n} row {i}"
                    );
                    assert_eq!(
                        &q[i * ldc..i * ldc + n],
                        &want_codes[i * n..(i + 1) * n],
                        "{isa:?} {m}x{k}x{n} requantized row {i}"
                    );
                    assert!(
                        q[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 99),
                        "wrote past N"
                    );
                }
            }
            let saturated = want_codes.iter().filter(|&&v| v == 127 || v == -128).count();
            if m * n >= 64 {
                assert!(
                    saturated > 0 && saturated * 3 < m * n,
                    "{m}x{k}x{n}: {saturated} saturated"
                );
            }
        }
    }

    #[test]
    fn fused_requantization_rounds_ties_to_even() {
        // C = x exactly (one row, K = 1, weight 1); x·0.5 hits every .5 tie.
        let x: Vec<i8> = (-128..=127).map(|v| v as i8).collect();
        let (pw, px) = (PackedA::new(&[1], 1, 1), PackedB::from_rows(&x, 1, 256, 256));
        let want: Vec<i8> = x
            .iter()
            .map(|&v| (v as f32 * 0.5).round_ties_even() as i8)
            .collect();
        for &isa in simd::available() {
            let mut q = vec![0i8; 256];
            gemm_requant_isa(isa, &pw.rows(), &px, 0.5, &mut q, 256, &mut Vec::new());
            assert_eq!(q, want, "{isa:?}");
            gemm_requant_isa(isa, &pw.rows(), &px, 3.0, &mut q, 256, &mut Vec::new());
            assert!(
                q.iter()
                    .zip(&x)
                    .all(|(&q, &v)| q as i32 == (3 * v as i32).clamp(-128, 127)),
                "{isa:?} saturation"
            );
        }
    }

    #[test]
    fn requant_paths_round_half_even_and_saturate() {
        let src: Vec<i32> = (-3000..3000)
            .step_by(7)
            .chain([i32::MAX / 4, i32::MIN / 4, 5, -5, 15, -15])
            .collect();
        for mul in [0.1f32, 0.05, 1.0, 0.0371] {
            let want: Vec<i8> = src
                .iter()
                .map(|&v| (v as f32 * mul).round_ties_even().clamp(-128.0, 127.0) as i8)
                .collect();
            for &isa in simd::available() {
                let mut got = vec![0i8; src.len()];
                requant_isa(isa, &src, mul, &mut got);
                assert_eq!(got, want, "{isa:?} mul {mul}");
            }
        }
    }

    #[test]
    fn to_code_rounds_half_to_even_and_saturates() {
        for (v, c) in [
            (0.5f32, 0i8),
            (1.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (126.5, 126),
            (127.6, 127),
            (1e9, 127),
            (-1e9, -128),
            (-128.4, -128),
        ] {
            assert_eq!(to_code(v), c, "{v}");
            assert_eq!(to_code_f64(v as f64), c, "{v}");
        }
    }

    #[test]
    fn set_run_matches_set() {
        let mut a = PackedB::zeros(9, 150);
        let mut b = PackedB::zeros(9, 150);
        let vals: Vec<i8> = (0..140).map(|v| (v * 13 % 256) as u8 as i8).collect();
        a.set_run(5, 7, &vals);
        for (i, &v) in vals.iter().enumerate() {
            b.set(5, 7 + i, v);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn set_matches_from_rows() {
        let x: Vec<i8> = (0..7 * 19).map(|v| (v * 37 % 256) as u8 as i8).collect();
        let a = PackedB::from_rows(&x, 7, 19, 19);
        let mut b = PackedB::zeros(7, 19);
        for kk in 0..7 {
            for j in 0..19 {
                b.set(kk, j, x[kk * 19 + j]);
            }
        }
        assert_eq!(a, b);
    }
}
