//! AVX-512 VNNI microkernel: 4 rows of W × 64 columns of X per step, 16 zmm accumulators,
//! each vpdpbusd adding 4 products per i32 lane.

use super::{PackedW, PackedX, MR, MR_SMALL, NV, PANEL};
use std::arch::x86_64::*;

pub fn has_vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// Vectors per register block (a full panel).
const NB: usize = PANEL / NV;

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
    let (kq, np) = (w.kp / 4, x.np);
    let mut tail = [0i32; NV];
    for i0 in (0..w.mp).step_by(R) {
        let wrow = |r: usize| w.data.as_ptr().add((i0 + r) * w.kp) as *const i32;
        let mut j0 = 0;
        while j0 < np {
            let pw = x.panel_width(j0);
            let nb = pw / NV;
            let panel = x.data.as_ptr().add(j0 * x.kp);
            let mut acc = [[_mm512_setzero_si512(); NB]; R];
            for q in 0..kq {
                let xp = panel.add(q * pw * 4);
                let mut xv = [_mm512_setzero_si512(); NB];
                for (b, v) in xv.iter_mut().enumerate().take(nb) {
                    *v = _mm512_loadu_si512(xp.add(b * 64) as *const _);
                }
                for (r, accr) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_epi32(wrow(r).add(q).read_unaligned());
                    for b in 0..nb {
                        accr[b] = _mm512_dpbusd_epi32(accr[b], xv[b], wv);
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
                for (b, &ab) in accr.iter().enumerate().take(nb) {
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
            j0 += nb * NV;
        }
    }
}
