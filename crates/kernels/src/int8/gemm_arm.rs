//! aarch64 NEON microkernels on the same packed operands as the x86 paths.
//!
//! A 16-byte register of a packed X panel holds 4 columns × 4 consecutive k. The bytes are
//! x + 128; flipping the sign bit gives x back as i8, so these kernels compute Σ x·w directly
//! and ignore the row sums the x86 paths subtract.
//! - `gemm_dot` (ARMv8.2 dot product): sdot by element — one instruction adds 4 products into
//!   each of 4 i32 lanes; 6 rows × 16 columns of C in 24 registers.
//! - `gemm_neon` (every aarch64 CPU): smull/smull2 give exact i16 products, sadalp adds
//!   neighbouring pairs into i32 (never two products in one i16, which could overflow).

use super::{ARows, PackedB};
use std::arch::aarch64::*;
use std::arch::asm;

/// Columns of C per block: 4 registers of 4 i32 lanes.
const NB: usize = 16;

/// The 4-byte k-group q of row r as an i32 (0 past the padded rows).
#[inline(always)]
unsafe fn w_quad(w: &ARows, r: usize, q: usize) -> i32 {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        if r < w.mp {
            (w.data.as_ptr().add(r * w.kp + 4 * q) as *const i32).read_unaligned()
        } else {
            0
        }
    }
}

/// x (signed) for 4 columns × 4 k at `p`.
#[inline(always)]
unsafe fn load_x(p: *const u8) -> int8x16_t {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe { vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p), vdupq_n_u8(0x80))) }
}

/// The 4 registers (16 columns × 4 k) of one k-group of a 16-column strip.
#[inline(always)]
unsafe fn load_x4(p: *const u8) -> [int8x16_t; 4] {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe { [load_x(p), load_x(p.add(16)), load_x(p.add(32)), load_x(p.add(48))] }
}

/// Stores rows i0.. and columns j.. of a block, clipped to M×N.
#[inline(always)]
unsafe fn store<const R: usize>(
    acc: &[[int32x4_t; 4]; R],
    w: &ARows,
    x: &PackedB,
    c: &mut [i32],
    ldc: usize,
    i0: usize,
    j: usize,
) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        let mut tmp = [0i32; NB];
        for (r, row) in acc.iter().enumerate() {
            let i = i0 + r;
            if i >= w.m {
                break;
            }
            for (v, &a) in row.iter().enumerate() {
                vst1q_s32(tmp.as_mut_ptr().add(4 * v), a);
            }
            let cols = NB.min(x.n.saturating_sub(j));
            c[i * ldc + j..i * ldc + j + cols].copy_from_slice(&tmp[..cols]);
        }
    }
}

/// Walks C in blocks of R rows × 16 columns (a panel is a multiple of 16 columns wide).
#[inline(always)]
unsafe fn for_blocks<const R: usize>(
    w: &ARows,
    x: &PackedB,
    mut f: impl FnMut(usize, *const u8, usize, usize),
) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        for i0 in (0..w.m).step_by(R) {
            let mut j0 = 0;
            while j0 < x.np {
                let pw = x.panel_width(j0);
                let panel = x.data.as_ptr().add(j0 * x.kp);
                for s in (0..pw).step_by(NB) {
                    // Strip s of the panel: 64 bytes per k-group, pw·4 bytes apart.
                    f(i0, panel.add(s * 4), pw * 4, j0 + s);
                }
                j0 += pw;
            }
        }
    }
}

/// sdot v.4s, x.16b, w.4b[L]: lane i of acc += Σ_t x[4i + t] · w[4L + t].
macro_rules! sdot_lane {
    ($acc:expr, $x:expr, $w:expr, $lane:literal) => {
        asm!(
            concat!("sdot {a:v}.4s, {x:v}.16b, {w:v}.4b[", $lane, "]"),
            a = inout(vreg) $acc,
            x = in(vreg) $x,
            w = in(vreg) $w,
            options(pure, nomem, nostack)
        )
    };
}

/// # Safety
/// The CPU must support the dot-product extension; `c` must hold M rows of `ldc` with
/// ldc ≥ N (checked by the caller).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn gemm_dot(w: &ARows, x: &PackedB, c: &mut [i32], ldc: usize) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        const R: usize = 6;
        let kq = w.kp / 4;
        for_blocks::<R>(w, x, |i0, strip, step, j| {
            let mut acc = [[vdupq_n_s32(0); 4]; R];
            for q in 0..kq {
                let xp = strip.add(q * step);
                let xv = load_x4(xp);
                // Rows i0..i0+3 in one register, i0+4..i0+5 in the low lanes of another.
                let wa = vreinterpretq_s8_s32(vld1q_s32(
                    [
                        w_quad(w, i0, q),
                        w_quad(w, i0 + 1, q),
                        w_quad(w, i0 + 2, q),
                        w_quad(w, i0 + 3, q),
                    ]
                    .as_ptr(),
                ));
                let wb = vreinterpretq_s8_s32(vld1q_s32(
                    [w_quad(w, i0 + 4, q), w_quad(w, i0 + 5, q), 0, 0].as_ptr(),
                ));
                for (v, &xb) in xv.iter().enumerate() {
                    sdot_lane!(acc[0][v], xb, wa, "0");
                    sdot_lane!(acc[1][v], xb, wa, "1");
                    sdot_lane!(acc[2][v], xb, wa, "2");
                    sdot_lane!(acc[3][v], xb, wa, "3");
                    sdot_lane!(acc[4][v], xb, wb, "0");
                    sdot_lane!(acc[5][v], xb, wb, "1");
                }
            }
            store(&acc, w, x, c, ldc, i0, j);
        });
    }
}

/// # Safety
/// Any aarch64 CPU (NEON is part of the base architecture); `c` as for `gemm_dot`.
#[target_feature(enable = "neon")]
pub unsafe fn gemm_neon(w: &ARows, x: &PackedB, c: &mut [i32], ldc: usize) {
    // SAFETY: the caller upholds this function's safety contract (the CPU features it
    // enables, the operand sizes documented on it), which every operation below relies on.
    unsafe {
        // 2 rows × 16 columns: 16 pair accumulators + 4 x + 1 w of the 32 registers.
        const R: usize = 2;
        let kq = w.kp / 4;
        for_blocks::<R>(w, x, |i0, strip, step, j| {
            // lo[r][v] lanes: (col 4v, k01), (col 4v, k23), (col 4v+1, k01), (col 4v+1, k23);
            // hi the same for columns 4v+2, 4v+3.
            let mut lo = [[vdupq_n_s32(0); 4]; R];
            let mut hi = [[vdupq_n_s32(0); 4]; R];
            for q in 0..kq {
                let xp = strip.add(q * step);
                let xv = load_x4(xp);
                for r in 0..R {
                    let wr = vreinterpretq_s8_s32(vdupq_n_s32(w_quad(w, i0 + r, q)));
                    for (v, &xb) in xv.iter().enumerate() {
                        lo[r][v] = vpadalq_s16(lo[r][v], vmull_s8(vget_low_s8(xb), vget_low_s8(wr)));
                        hi[r][v] = vpadalq_s16(hi[r][v], vmull_high_s8(xb, wr));
                    }
                }
            }
            let mut acc = [[vdupq_n_s32(0); 4]; R];
            for r in 0..R {
                for v in 0..4 {
                    acc[r][v] = vpaddq_s32(lo[r][v], hi[r][v]);
                }
            }
            store(&acc, w, x, c, ldc, i0, j);
        });
    }
}
