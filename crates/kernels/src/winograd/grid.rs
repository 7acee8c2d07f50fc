//! A Winograd layer's tile grid over an N×C×H×W batch with its channel counts and index
//! tables: which input pixels each tile reads and which output pixels it writes, and the
//! gathers/scatters that move tiles between NCHW planes and lane-wise blocks (one tile per
//! vector lane). Training's Winograd-aware layer and the engine's FP32 Winograd layers use it.

use crate::{TileGrid, Tiling};

/// The grid of one forward (`TileGrid`, reached through `Deref`), its channel counts and
/// per-tile index tables (-1 marks padding or crop).
#[derive(Debug, Clone)]
pub struct NchwTiles {
    pub grid: TileGrid,
    pub c: usize,
    pub k: usize,
    /// Input row (column) of window element a of tile row (column) i: [tiles][t].
    pub rows_in: Vec<i32>,
    pub cols_in: Vec<i32>,
    /// Output row (column) of tile element a: [tiles][m].
    pub rows_out: Vec<i32>,
    pub cols_out: Vec<i32>,
}

fn table(
    tl: &Tiling,
    size: usize,
    len: usize,
    f: impl Fn(&Tiling, usize, usize, usize) -> Option<usize>,
) -> Vec<i32> {
    (0..tl.tiles)
        .flat_map(|i| (0..len).map(move |a| (i, a)))
        .map(|(i, a)| f(tl, size, i, a).map_or(-1, |v| v as i32))
        .collect()
}

impl std::ops::Deref for NchwTiles {
    type Target = TileGrid;
    fn deref(&self) -> &TileGrid {
        &self.grid
    }
}

impl NchwTiles {
    pub fn new(n: usize, c: usize, h: usize, w: usize, k: usize, m: usize) -> NchwTiles {
        let grid = TileGrid::new(n, h, w, m);
        let (ty, tx) = grid.axes();
        let t = grid.t;
        NchwTiles {
            grid,
            c,
            k,
            rows_in: table(&ty, h, t, Tiling::source),
            cols_in: table(&tx, w, t, Tiling::source),
            rows_out: table(&ty, h, m, Tiling::target),
            cols_out: table(&tx, w, m, Tiling::target),
        }
    }
    /// Lane-wise windows of size s×s (rows/cols tables map window element to plane
    /// position, -1 outside) of columns p0.. of channel `ci` of an NCHW tensor with `ch`
    /// channels, into d [s][s][lanes]; zeros outside.
    #[allow(clippy::too_many_arguments)]
    fn gather(
        &self,
        x: &[f32],
        ch: usize,
        ci: usize,
        p0: usize,
        lanes: usize,
        s: usize,
        tables: (&[i32], &[i32]),
        d: &mut [f32],
    ) {
        let (h, w) = (self.h, self.w);
        for lane in 0..lanes {
            let (ni, tyi, txi) = self.locate(p0 + lane);
            let plane = &x[(ni * ch + ci) * h * w..][..h * w];
            let cols = &tables.1[txi * s..][..s];
            for (a, &i) in tables.0[tyi * s..][..s].iter().enumerate() {
                let dst = &mut d[a * s * lanes + lane..];
                if i < 0 {
                    (0..s).for_each(|b| dst[b * lanes] = 0.0);
                    continue;
                }
                let row = &plane[i as usize * w..][..w];
                for (b, &j) in cols.iter().enumerate() {
                    dst[b * lanes] = if j < 0 { 0.0 } else { row[j as usize] };
                }
            }
        }
    }

    /// The reverse of `gather` into one channel's planes ([N][H][W]): `put(plane value, lane
    /// value)` for every position inside.
    #[allow(clippy::too_many_arguments)]
    fn scatter(
        &self,
        src: &[f32],
        p0: usize,
        lanes: usize,
        s: usize,
        tables: (&[i32], &[i32]),
        planes: &mut [f32],
        put: impl Fn(&mut f32, f32),
    ) {
        let (h, w) = (self.h, self.w);
        for lane in 0..lanes {
            let (ni, tyi, txi) = self.locate(p0 + lane);
            let plane = &mut planes[ni * h * w..][..h * w];
            let cols = &tables.1[txi * s..][..s];
            for (a, &i) in tables.0[tyi * s..][..s].iter().enumerate() {
                if i < 0 {
                    continue;
                }
                let row = &mut plane[i as usize * w..][..w];
                let sv = &src[a * s * lanes + lane..];
                for (b, &j) in cols.iter().enumerate() {
                    if j >= 0 {
                        put(&mut row[j as usize], sv[b * lanes]);
                    }
                }
            }
        }
    }

    pub fn gather_in(&self, x: &[f32], ch: usize, ci: usize, p0: usize, lanes: usize, d: &mut [f32]) {
        self.gather(x, ch, ci, p0, lanes, self.t, (&self.rows_in, &self.cols_in), d)
    }

    pub fn scatter_add_in(&self, dd: &[f32], p0: usize, lanes: usize, planes: &mut [f32]) {
        self.scatter(
            dd,
            p0,
            lanes,
            self.t,
            (&self.rows_in, &self.cols_in),
            planes,
            |p, v| *p += v,
        )
    }

    pub fn gather_out(&self, y: &[f32], ko: usize, p0: usize, lanes: usize, d: &mut [f32]) {
        self.gather(
            y,
            self.k,
            ko,
            p0,
            lanes,
            self.m,
            (&self.rows_out, &self.cols_out),
            d,
        )
    }

    pub fn scatter_out(&self, yt: &[f32], p0: usize, lanes: usize, planes: &mut [f32]) {
        self.scatter(
            yt,
            p0,
            lanes,
            self.m,
            (&self.rows_out, &self.cols_out),
            planes,
            |p, v| *p = v,
        )
    }
}
