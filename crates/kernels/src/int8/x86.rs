//! AVX-512 VNNI microkernel: 4 rows of W × 64 columns of X per step, 16 zmm accumulators,
//! each vpdpbusd adding 4 products per i32 lane.

use super::{PackedW, PackedX, MR, MR_SMALL, NV};
use std::arch::x86_64::*;

pub fn has_vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// # Safety
/// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI; `c` must hold M rows of `ldc`
/// with ldc ≥ N (checked by the caller).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn gemm_vnni(w: &PackedW, x: &PackedX, c: &mut [i32], ldc: usize) {
    if w.mr == MR_SMALL {
        kernel::<MR_SMALL>(w, x, c, ldc)
    } else {
        kernel::<MR>(w, x, c, ldc)
    }
}

/// # Safety
/// As `gemm_vnni`; `w.mp` must be a multiple of R.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const R: usize>(w: &PackedW, x: &PackedX, c: &mut [i32], ldc: usize) {
    let np = x.np;
    for i0 in (0..w.mp).step_by(R) {
        let mut j0 = 0;
        while j0 < np {
            // Compile-time block widths keep all R×B accumulators in registers.
            match x.panel_width(j0) / NV {
                4 => block::<R, 4>(w, x, c, ldc, i0, j0),
                3 => block::<R, 3>(w, x, c, ldc, i0, j0),
                2 => block::<R, 2>(w, x, c, ldc, i0, j0),
                _ => block::<R, 1>(w, x, c, ldc, i0, j0),
            }
            j0 += x.panel_width(j0);
        }
    }
}

/// One R-row × B-vector block of C over the whole K.
///
/// # Safety
/// As `kernel`; the panel at j0 must be B·16 columns wide.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn block<const R: usize, const B: usize>(
    w: &PackedW,
    x: &PackedX,
    c: &mut [i32],
    ldc: usize,
    i0: usize,
    j0: usize,
) {
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
    let mut tail = [0i32; NV];
    for (r, accr) in acc.iter().enumerate() {
        let i = i0 + r;
        if i >= w.m {
            break;
        }
        let bias = _mm512_set1_epi32(w.bias128[i]);
        for (b, &ab) in accr.iter().enumerate() {
            let v = _mm512_sub_epi32(ab, bias);
            let col = j0 + b * NV;
            if col + NV <= x.n {
                _mm512_storeu_si512(c.as_mut_ptr().add(i * ldc + col) as *mut _, v);
            } else if col < x.n {
                _mm512_storeu_si512(tail.as_mut_ptr() as *mut _, v);
                c[i * ldc + col..i * ldc + x.n].copy_from_slice(&tail[..x.n - col]);
            }
        }
    }
}
