//! AVX-512 VNNI microkernel: 4 rows of W × 64 columns of X per step, 16 zmm accumulators,
//! each vpdpbusd adding 4 products per i32 lane.

use super::{ARows, PackedB, MR, MR_SMALL, NV};
use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI; `c` must hold M rows of `ldc`
/// with ldc ≥ N (checked by the caller).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn gemm_vnni(w: &ARows, x: &PackedB, c: &mut [i32], ldc: usize) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        let out = Out::I32 { c, ldc };
        if w.mr == MR_SMALL {
            kernel::<MR_SMALL>(w, x, out)
        } else {
            kernel::<MR>(w, x, out)
        }
    }
}

/// The same with requantization in the microkernel's epilogue: out (M×N codes, rows `ldo`
/// apart) = to_code(C · mul), with `to_code`'s rounding (clamp, then half to even).
///
/// # Safety
/// As `gemm_vnni`; `out` must hold M rows of `ldo` with ldo ≥ N.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn gemm_vnni_requant(w: &ARows, x: &PackedB, mul: f32, out: &mut [i8], ldo: usize) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        let out = Out::Codes { out, ldo, mul };
        if w.mr == MR_SMALL {
            kernel::<MR_SMALL>(w, x, out)
        } else {
            kernel::<MR>(w, x, out)
        }
    }
}

/// Where a block's sums go.
enum Out<'a> {
    I32 { c: &'a mut [i32], ldc: usize },
    Codes { out: &'a mut [i8], ldo: usize, mul: f32 },
}

/// # Safety
/// As `gemm_vnni`; `w.mp` must be a multiple of R.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const R: usize>(w: &ARows, x: &PackedB, mut out: Out) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        let np = x.np;
        for i0 in (0..w.mp).step_by(R) {
            let mut j0 = 0;
            while j0 < np {
                // Compile-time block widths keep all R×B accumulators in registers.
                match x.panel_width(j0) / NV {
                    4 => block::<R, 4>(w, x, &mut out, i0, j0),
                    3 => block::<R, 3>(w, x, &mut out, i0, j0),
                    2 => block::<R, 2>(w, x, &mut out, i0, j0),
                    _ => block::<R, 1>(w, x, &mut out, i0, j0),
                }
                j0 += x.panel_width(j0);
            }
        }
    }
}

/// One R-row × B-vector block of C over the whole K.
///
/// # Safety
/// As `kernel`; the panel at j0 must be B·16 columns wide.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn block<const R: usize, const B: usize>(w: &ARows, x: &PackedB, out: &mut Out, i0: usize, j0: usize) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        let kq = w.kp / 4;
        let pw = B * NV;
        let panel = x.data.as_ptr().add(j0 * x.kp);
        let wbase = w.data.as_ptr().add(i0 * w.kp) as *const i32;
        let wstride = w.kp / 4;
        let mut acc = [[_mm512_setzero_si512(); B]; R];
        for q in 0..kq {
            let xp = panel.add(q * pw * 4);
            let mut xv = [_mm512_setzero_si512(); B];
            for (b, v) in xv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(xp.add(b * 64) as *const _);
            }
            for (r, accr) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_epi32(wbase.add(r * wstride + q).read_unaligned());
                for (a, &xb) in accr.iter_mut().zip(&xv) {
                    *a = _mm512_dpbusd_epi32(*a, xb, wv);
                }
            }
        }
        // Undo the +128 and store the valid rows and columns.
        for (r, accr) in acc.iter().enumerate() {
            let i = i0 + r;
            if i >= w.m {
                break;
            }
            let bias = _mm512_set1_epi32(w.bias128[i]);
            for (b, &ab) in accr.iter().enumerate() {
                let v = _mm512_sub_epi32(ab, bias);
                let col = j0 + b * NV;
                if col >= x.n {
                    break;
                }
                // Lanes past N are masked off.
                let mask: __mmask16 = if col + NV <= x.n {
                    !0
                } else {
                    (1 << (x.n - col)) - 1
                };
                match out {
                    Out::I32 { c, ldc } => {
                        _mm512_mask_storeu_epi32(c.as_mut_ptr().add(i * *ldc + col) as *mut _, mask, v)
                    }
                    Out::Codes { out, ldo, mul } => {
                        // to_code: (v as f32 · mul) clamped to [-128, 127], rounded half to even
                        // (the default rounding mode of the conversion).
                        let f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(*mul));
                        let f =
                            _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(-128.0)), _mm512_set1_ps(127.0));
                        let q = _mm512_cvtps_epi32(f);
                        _mm512_mask_cvtepi32_storeu_epi8(
                            out.as_mut_ptr().add(i * *ldo + col) as *mut _,
                            mask,
                            q,
                        );
                    }
                }
            }
        }
    }
}

/// AVX2 path (no VNNI): bytes widened to i16 and multiplied with vpmaddwd (exact: each i32
/// lane gets two u8 × i8 products), 4 rows × 64 columns per step.
///
/// # Safety
/// The CPU must support AVX2; `c` must hold M rows of `ldc` with ldc ≥ N (checked by the
/// caller).
#[target_feature(enable = "avx2")]
pub unsafe fn gemm_avx2(w: &ARows, x: &PackedB, c: &mut [i32], ldc: usize) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        const R: usize = 4;
        let kq = w.kp / 4;
        let np = x.np;
        let mut i0 = 0;
        while i0 < w.m {
            let rows = R.min(w.m - i0);
            let mut j0 = 0;
            while j0 < np {
                let pw = x.panel_width(j0);
                let groups = pw / 4; // 4 columns per 256-bit register of i16
                let panel = x.data.as_ptr().add(j0 * x.kp);
                // acc[r][g]: lanes (2·col + half) for 4 columns of group g.
                let mut acc = [[_mm256_setzero_si256(); 16]; R];
                for q in 0..kq {
                    let xp = panel.add(q * pw * 4);
                    let mut wv = [_mm256_setzero_si256(); R];
                    for (r, v) in wv.iter_mut().enumerate().take(rows) {
                        let b = (w.data.as_ptr().add((i0 + r) * w.kp + 4 * q) as *const i32).read_unaligned();
                        // [w0 w1 w2 w3] as i16, repeated for the 4 columns.
                        let w16 = _mm256_cvtepi8_epi16(_mm_set1_epi32(b));
                        *v = w16;
                    }
                    for g in 0..groups {
                        let x16 = _mm256_cvtepu8_epi16(_mm_loadu_si128(xp.add(g * 16) as *const _));
                        for (accr, &wr) in acc.iter_mut().zip(&wv).take(rows) {
                            accr[g] = _mm256_add_epi32(accr[g], _mm256_madd_epi16(x16, wr));
                        }
                    }
                }
                for (r, accr) in acc.iter().enumerate().take(rows) {
                    let i = i0 + r;
                    let bias = w.bias128[i];
                    let mut lanes = [0i32; 8];
                    for (g, &a) in accr.iter().enumerate().take(groups) {
                        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut _, a);
                        for col in 0..4 {
                            let j = j0 + g * 4 + col;
                            if j < x.n {
                                c[i * ldc + j] = lanes[2 * col] + lanes[2 * col + 1] - bias;
                            }
                        }
                    }
                }
                j0 += pw;
            }
            i0 += R;
        }
    }
}
