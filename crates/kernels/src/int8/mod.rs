//! INT8 matrix products for the integer engine: C (i32, M×N) = W (i8, M×K) · X (i8, K×N).
//!
//! X is packed in panels of 64 columns, each [K/4][64][4] bytes of x + 128 (unsigned), so one
//! 64-byte load holds 4 consecutive k of 16 columns — the operand layout of AVX-512 VNNI's
//! vpdpbusd (u8 × i8, 4 products summed into each i32 lane) — and a panel is contiguous over
//! K (no page-strided walks). The +128 is undone with per-row sums of W:
//! Σ (x + 128)·w = Σ x·w + 128·Σ w. W stays row-major i8 with K padded to a multiple of 4 and
//! M to a multiple of the microkernel's rows. The convolutions put activations in W (output
//! pixels or Winograd tiles as rows, repacked every call, row sums from the lowering) and the
//! weights in X (output channels as vector lanes, packed once at model load).
//!
//! Paths: AVX-512 VNNI and AVX2 (i16 vpmaddwd) microkernels in `x86.rs`, NEON (dot product
//! and widening multiplies) in `arm.rs`, and a portable path (plain loops, compiled per ISA by
//! `multiversion!`) used elsewhere and under `WINQ_ISA=scalar`. Every path is tested against
//! `reference`.

#[cfg(target_arch = "aarch64")]
mod arm;
pub mod conv;
mod wino_blocks;
pub mod winograd;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_wino;

use winq_quant::simd::{self, Isa};

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

fn round_up(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

/// The row operand of `gemm`: row-major, K padded to a multiple of 4, M to a multiple of MR.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PackedW {
    pub m: usize,
    pub k: usize,
    pub kp: usize,
    pub mp: usize,
    /// Rows per microkernel step (MR or MR_SMALL); mp is a multiple of it.
    pub mr: usize,
    pub data: Vec<i8>,
    /// 128 · Σ_k w[row][k], subtracted from every output of the row.
    pub bias128: Vec<i32>,
}

impl PackedW {
    pub fn new(w: &[i8], m: usize, k: usize) -> PackedW {
        let mut p = PackedW::default();
        p.fill(w, m, k);
        p
    }

    /// Repacks in place, reusing the buffers (operands packed on every call).
    pub fn fill(&mut self, w: &[i8], m: usize, k: usize) {
        assert_eq!(w.len(), m * k, "weights must be M×K");
        self.fill_rows(m, k, |r, dst| {
            let row = &w[r * k..(r + 1) * k];
            dst[..k].copy_from_slice(row);
            dst[k..].fill(0);
            row.iter().map(|&v| v as i32).sum()
        });
    }

    /// Repacks M rows of K from a writer: `row(r, dst)` fills all `kp` bytes of row r (zeros
    /// past K) and returns the sum of its codes — callers that know the sums cheaply (from
    /// per-pixel channel sums) skip a second pass over the data.
    pub fn fill_rows(&mut self, m: usize, k: usize, mut row: impl FnMut(usize, &mut [i8]) -> i32) {
        self.set_shape(m, k);
        self.bias128.clear();
        for (r, dst) in self.data.chunks_exact_mut(self.kp).take(m).enumerate() {
            self.bias128.push(128 * row(r, dst));
        }
        self.bias128.resize(self.mp, 0);
    }

    /// Sets the shape for writing rows directly into `data` (row r at r·kp; the padding rows
    /// are zeroed, padding columns are the writer's); `update_sums` must follow.
    pub fn set_shape(&mut self, m: usize, k: usize) {
        let (kp, mp, mr) = PackedW::shape_of(m, k);
        (self.m, self.k, self.kp, self.mp, self.mr) = (m, k, kp, mp, mr);
        grow(&mut self.data, mp * kp);
        self.data.truncate(mp * kp);
        self.data[m * kp..].fill(0);
    }

    /// Recomputes the row sums after direct writes.
    pub fn update_sums(&mut self) {
        self.bias128.resize(self.mp, 0);
        row_sums128(&self.data, self.kp, &mut self.bias128);
    }
}

winq_quant::multiversion! {
    /// out[r] = 128 · Σ of row r's codes (rows `kp` bytes apart); vectorized per ISA (the
    /// baseline build of this loop cost 9% of a Winograd layer).
    pub(crate) fn row_sums128 / row_sums128_isa(data: &[i8], kp: usize, out: &mut [i32]) {
        for (o, r) in out.iter_mut().zip(data.chunks_exact(kp)) {
            *o = 128 * r.iter().map(|&v| v as i32).sum::<i32>();
        }
    }
}

/// A borrowed row operand: the fields of `PackedW` over any memory (several taps' rows in
/// one buffer, say). The kernels take this.
#[derive(Debug, Clone, Copy)]
pub struct WRows<'a> {
    pub m: usize,
    pub k: usize,
    pub kp: usize,
    pub mp: usize,
    pub mr: usize,
    /// mp rows of kp bytes.
    pub data: &'a [i8],
    /// mp row sums × 128.
    pub bias128: &'a [i32],
}

impl PackedW {
    pub fn rows(&self) -> WRows<'_> {
        WRows {
            m: self.m,
            k: self.k,
            kp: self.kp,
            mp: self.mp,
            mr: self.mr,
            data: &self.data,
            bias128: &self.bias128,
        }
    }

    /// (kp, mp, mr) of an M×K operand.
    pub fn shape_of(m: usize, k: usize) -> (usize, usize, usize) {
        // The 4-row kernel for few rows that it pads less (16 Winograd tiles: 16 rows, not 18);
        // on many rows the 6-row kernel's better load/compute ratio wins (256 rows: 20%).
        let mr = if m <= MR_SMALL || (m <= 32 && m.is_multiple_of(MR_SMALL) && !m.is_multiple_of(MR)) {
            MR_SMALL
        } else {
            MR
        };
        (round_up(k.max(1), 4), round_up(m.max(1), mr), mr)
    }
}

/// The shape invariants the microkernels' unchecked reads rely on (`WRows` and `PackedX` have
/// public fields).
fn check_operands(w: &WRows, x: &PackedX) {
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

/// Activations packed for `gemm`: panels of 64 columns (the last one narrower, a multiple of
/// 16), each [K/4][width][4] bytes of x + 128; K padded to a multiple of 4 with x = 0 (byte 128,
/// cancelled by the zero weights there), N padded to a multiple of 16.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedX {
    pub k: usize,
    pub n: usize,
    pub kp: usize,
    pub np: usize,
    pub data: Vec<u8>,
}

impl PackedX {
    /// An all-zero (x = 0) packed matrix to fill with `set`.
    pub fn zeros(k: usize, n: usize) -> PackedX {
        let (kp, np) = (round_up(k.max(1), 4), round_up(n.max(1), NV));
        PackedX {
            k,
            n,
            kp,
            np,
            data: vec![128u8; kp * np],
        }
    }

    /// Packs a row-major K×N matrix whose rows are `rs` apart.
    pub fn from_rows(x: &[i8], k: usize, n: usize, rs: usize) -> PackedX {
        let mut p = PackedX::zeros(k, n);
        p.fill_from_rows(x, rs);
        p
    }

    /// Overwrites the packed matrix from row-major rows `rs` apart (K rows of N codes), four
    /// rows at a time so every write is a contiguous 4-byte group.
    pub fn fill_from_rows(&mut self, x: &[i8], rs: usize) {
        let (k, n) = (self.k, self.n);
        for q in 0..self.kp / 4 {
            let rows: [Option<&[i8]>; 4] =
                std::array::from_fn(|r| (4 * q + r < k).then(|| &x[(4 * q + r) * rs..(4 * q + r) * rs + n]));
            for j0 in (0..self.np).step_by(PANEL) {
                let pw = self.panel_width(j0);
                let base = j0 * self.kp + q * pw * 4;
                let dst = &mut self.data[base..base + pw * 4];
                let cols = n.saturating_sub(j0).min(pw);
                for (r, row) in rows.iter().enumerate() {
                    match row {
                        // i8 → u8 with +128 is flipping the sign bit.
                        Some(row) => {
                            for (d, &v) in dst.chunks_exact_mut(4).zip(&row[j0..j0 + cols]) {
                                d[r] = (v as u8) ^ 0x80;
                            }
                        }
                        None => dst.chunks_exact_mut(4).take(cols).for_each(|d| d[r] = 0x80),
                    }
                }
            }
        }
    }

    /// Width of the panel starting at column j0.
    #[inline]
    pub fn panel_width(&self, j0: usize) -> usize {
        PANEL.min(self.np - j0)
    }

    /// Byte offset of element (kk, j).
    #[inline]
    pub fn offset(&self, kk: usize, j: usize) -> usize {
        let j0 = j / PANEL * PANEL;
        j0 * self.kp + (kk / 4) * self.panel_width(j0) * 4 + (j - j0) * 4 + kk % 4
    }

    /// Writes codes for row `kk`, columns j..j + vals.len().
    pub fn set_run(&mut self, kk: usize, j: usize, vals: &[i8]) {
        let mut done = 0;
        while done < vals.len() {
            let jj = j + done;
            let j0 = jj / PANEL * PANEL;
            let pw = self.panel_width(j0);
            let take = (j0 + pw - jj).min(vals.len() - done);
            let base = j0 * self.kp + (kk / 4) * pw * 4 + kk % 4 + (jj - j0) * 4;
            for (i, &v) in vals[done..done + take].iter().enumerate() {
                self.data[base + i * 4] = (v as u8) ^ 0x80;
            }
            done += take;
        }
    }

    #[inline]
    pub fn set(&mut self, kk: usize, j: usize, v: i8) {
        let o = self.offset(kk, j);
        self.data[o] = (v as i16 + 128) as u8;
    }
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
    fn gemm_portable / gemm_portable_isa(w: &WRows, x: &PackedX, c: &mut [i32], ldc: usize) {
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

pub use winq_quant::codes::{to_code, to_code_f64};

winq_quant::multiversion! {
    /// dst = clamp(round_half_even(src · mul), -128, 127): requantization to 8-bit codes.
    pub fn requant / requant_isa(src: &[i32], mul: f32, dst: &mut [i8]) {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = to_code(v as f32 * mul);
        }
    }
}

winq_quant::multiversion! {
    /// Requantization of rows of N accumulators with one multiplier per column (per output
    /// channel of a channel-last output).
    pub fn requant_cols / requant_cols_isa(src: &[i32], mul: &[f32], dst: &mut [i8]) {
        let n = mul.len();
        for (d, s) in dst.chunks_exact_mut(n).zip(src.chunks_exact(n)) {
            for ((d, &v), &m) in d.iter_mut().zip(s).zip(mul) {
                *d = to_code(v as f32 * m);
            }
        }
    }
}

/// C (M×N, rows `ldc` apart) = W·X, on the best instruction set available.
pub fn gemm(w: &PackedW, x: &PackedX, c: &mut [i32], ldc: usize) {
    gemm_isa(simd::isa(), w, x, c, ldc)
}

/// The same on an explicit instruction set (falls back to the portable path when the CPU or
/// the build lacks it).
pub fn gemm_isa(isa: Isa, w: &PackedW, x: &PackedX, c: &mut [i32], ldc: usize) {
    gemm_rows_isa(isa, &w.rows(), x, c, ldc)
}

/// `gemm_isa` on a borrowed row operand.
pub fn gemm_rows_isa(isa: Isa, w: &WRows, x: &PackedX, c: &mut [i32], ldc: usize) {
    check_operands(w, x);
    assert!(
        ldc >= x.n && (w.m == 0 || c.len() >= (w.m - 1) * ldc + x.n),
        "C is too small"
    );
    if w.m == 0 || x.n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86::runs(isa, Isa::Avx512Vnni) {
        // SAFETY: AVX-512F/BW and VNNI were detected at run time.
        unsafe { x86::gemm_vnni(w, x, c, ldc) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if x86::runs(isa, Isa::Avx2) {
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
pub fn gemm_requant(w: &WRows, x: &PackedX, mul: f32, out: &mut [i8], ldo: usize, scratch: &mut Vec<i32>) {
    gemm_requant_isa(simd::isa(), w, x, mul, out, ldo, scratch)
}

/// The same on an explicit instruction set.
pub fn gemm_requant_isa(
    isa: Isa,
    w: &WRows,
    x: &PackedX,
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
    if x86::runs(isa, Isa::Avx512Vnni) && w.m > 0 && x.n > 0 {
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
            let pw = PackedW::new(&w, m, k);
            let px = PackedX::from_rows(&x, k, n, n);
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
        let (pw, px) = (PackedW::new(&[1], 1, 1), PackedX::from_rows(&x, 1, 256, 256));
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
        let mut a = PackedX::zeros(9, 150);
        let mut b = PackedX::zeros(9, 150);
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
        let a = PackedX::from_rows(&x, 7, 19, 19);
        let mut b = PackedX::zeros(7, 19);
        for kk in 0..7 {
            for j in 0..19 {
                b.set(kk, j, x[kk * 19 + j]);
            }
        }
        assert_eq!(a, b);
    }
}
