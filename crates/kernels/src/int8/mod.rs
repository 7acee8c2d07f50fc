//! INT8 kernels of the integer engine: the GEMM C (i32, M×N) = A (i8, M×K) · B (i8, K×N), and
//! the im2row (`conv`) and Winograd (`winograd`) convolutions built on it.
//!
//! B is packed in panels of 64 columns, each [K/4][64][4] bytes of b + 128 (unsigned), so one
//! 64-byte load holds 4 consecutive k of 16 columns — the operand layout of AVX-512 VNNI's
//! vpdpbusd (u8 × i8, 4 products summed into each i32 lane) — and a panel is contiguous over
//! K (no page-strided walks). The +128 is undone with per-row sums of A:
//! Σ a·(b + 128) = Σ a·b + 128·Σ a. A stays row-major i8 with K padded to a multiple of 4 and
//! M to a multiple of the microkernel's rows. The convolutions put activations in A (output
//! pixels or Winograd tiles as rows, repacked every call, row sums from the lowering) and the
//! weights in B (output channels as vector lanes, packed once at model load).
//!
//! Files: `pack` (the operands), `gemm` (reference, portable path, dispatch), `requant`,
//! per-ISA microkernels side by side — `gemm_x86` (AVX-512 VNNI, AVX2 vpmaddwd), `gemm_arm`
//! (NEON sdot, widening multiplies) — and the portable path (plain loops compiled per ISA by
//! `multiversion!`) elsewhere and under `WINQ_ISA=scalar`. Every path is tested against
//! `reference`.

pub mod conv;
mod gemm;
#[cfg(target_arch = "aarch64")]
mod gemm_arm;
#[cfg(target_arch = "x86_64")]
mod gemm_x86;
mod pack;
mod requant;
pub mod winograd;

pub use gemm::{
    gemm, gemm_isa, gemm_kernel_name, gemm_requant, gemm_requant_isa, gemm_rows_isa, path_name, reference,
};
pub(crate) use pack::row_sums128_isa;
pub use pack::{ARows, PackedA, PackedB};
pub use requant::{requant, requant_cols, requant_cols_isa, requant_isa, to_code, to_code_f64};

/// The first n elements of a reusable buffer, grown as needed; callers overwrite them before
/// reading.
pub(crate) fn grow<T: Default + Clone>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// Copies N×H×W×C codes into zero-padded images N×Hp×Wp×C, the data starting at (top,
/// left): the kernels then read every window without bounds checks.
pub(crate) fn pad_nhwc(
    x: &[i8],
    (n, h, w, c): (usize, usize, usize, usize),
    (hp, wp): (usize, usize),
    (top, left): (usize, usize),
    out: &mut Vec<i8>,
) {
    assert_eq!(x.len(), n * h * w * c, "input must be N×H×W×C");
    assert!(hp >= top + h && wp >= left + w, "padding must hold the image");
    // Every byte written once: borders zeroed, the interior copied (no full clear first).
    out.resize(n * hp * wp * c, 0);
    let (row, run) = (wp * c, w * c);
    if hp * row == 0 {
        return;
    }
    for (ni, img) in out.chunks_exact_mut(hp * row).enumerate() {
        img[..top * row].fill(0);
        img[(top + h) * row..].fill(0);
        for (i, r) in img[top * row..(top + h) * row].chunks_exact_mut(row).enumerate() {
            r[..left * c].fill(0);
            r[left * c..left * c + run].copy_from_slice(&x[(ni * h + i) * run..][..run]);
            r[left * c + run..].fill(0);
        }
    }
}

/// How many pieces of `units` to run in parallel on rayon's pool (1: run inline).
pub(crate) fn parallel_parts(units: usize, min_per_part: usize) -> usize {
    let threads = rayon::current_num_threads();
    if threads < 2 {
        1
    } else {
        (units / min_per_part.max(1)).clamp(1, threads)
    }
}

/// Rows of W per microkernel step: 6 × 64 columns fill 24 of the 32 zmm registers; matrices
/// of at most 4 rows (few Winograd tiles) use 4 so nothing is padded.
pub const MR: usize = 6;
pub const MR_SMALL: usize = 4;
/// Columns per vector (i32 lanes of a 512-bit register).
pub const NV: usize = 16;
/// Columns per packed panel of X.
pub const PANEL: usize = 64;
