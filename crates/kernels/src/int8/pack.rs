//! The two operands of the INT8 GEMM, packed for the microkernels (layouts in `super`'s docs).

use super::{grow, MR, MR_SMALL, NV, PANEL};

fn round_up(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

/// The row operand of `gemm`: row-major, K padded to a multiple of 4, M to a multiple of MR.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PackedA {
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

impl PackedA {
    pub fn new(w: &[i8], m: usize, k: usize) -> PackedA {
        let mut p = PackedA::default();
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
        let (kp, mp, mr) = PackedA::shape_of(m, k);
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

/// A borrowed row operand: the fields of `PackedA` over any memory (several taps' rows in
/// one buffer, say). The kernels take this.
#[derive(Debug, Clone, Copy)]
pub struct ARows<'a> {
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

impl PackedA {
    pub fn rows(&self) -> ARows<'_> {
        ARows {
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

/// Activations packed for `gemm`: panels of 64 columns (the last one narrower, a multiple of
/// 16), each [K/4][width][4] bytes of x + 128; K padded to a multiple of 4 with x = 0 (byte 128,
/// cancelled by the zero weights there), N padded to a multiple of 16.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedB {
    pub k: usize,
    pub n: usize,
    pub kp: usize,
    pub np: usize,
    pub data: Vec<u8>,
}

impl PackedB {
    /// An all-zero (x = 0) packed matrix to fill with `set`.
    pub fn zeros(k: usize, n: usize) -> PackedB {
        let (kp, np) = (round_up(k.max(1), 4), round_up(n.max(1), NV));
        PackedB {
            k,
            n,
            kp,
            np,
            data: vec![128u8; kp * np],
        }
    }

    /// Packs a row-major K×N matrix whose rows are `rs` apart.
    pub fn from_rows(x: &[i8], k: usize, n: usize, rs: usize) -> PackedB {
        let mut p = PackedB::zeros(k, n);
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
