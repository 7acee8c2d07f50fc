/// Shape of an NCHW tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nchw {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Nchw {
    pub fn new(n: usize, c: usize, h: usize, w: usize) -> Self {
        Nchw { n, c, h, w }
    }

    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn index(&self, n: usize, c: usize, y: usize, x: usize) -> usize {
        ((n * self.c + c) * self.h + y) * self.w + x
    }
}

/// How a Winograd F(m, r) layer tiles one spatial axis of length `size`.
///
/// After the usual "same" padding of (r-1)/2, the reference pads extra so that the axis holds
/// a whole number of m-wide output tiles: P = ceil(size/m)·m - size, split with floor(P/2)
/// before and the rest after, then crops the output back. For even P this is exactly the
/// reference's round((1-frac)·m) split evenly; for odd P the reference's symmetric split
/// loses or gains a column and breaks, so we put the odd element after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Output tile size m.
    pub m: usize,
    /// Kernel size r.
    pub r: usize,
    /// Extra padding before the data (on top of (r-1)/2).
    pub before: usize,
    /// Number of tiles along the axis.
    pub tiles: usize,
}

impl Tiling {
    pub fn new(size: usize, m: usize, r: usize) -> Self {
        let tiles = size.div_ceil(m);
        let extra = tiles * m - size;
        Tiling {
            m,
            r,
            before: extra / 2,
            tiles,
        }
    }

    /// Tile size t = m + r - 1.
    pub fn t(&self) -> usize {
        self.m + self.r - 1
    }

    /// Position in the original (unpadded) axis of element `i` of tile `tile`'s input window;
    /// None when it falls in padding.
    pub fn source(&self, size: usize, tile: usize, i: usize) -> Option<usize> {
        let padded = tile * self.m + i; // coordinate in the fully padded axis
        let offset = (self.r - 1) / 2 + self.before;
        padded.checked_sub(offset).filter(|&p| p < size)
    }

    /// Position in the original axis of output element `i` of tile `tile`; None when cropped.
    pub fn target(&self, size: usize, tile: usize, i: usize) -> Option<usize> {
        (tile * self.m + i).checked_sub(self.before).filter(|&p| p < size)
    }
}

/// The tile grid of a Winograd F(m×m, 3×3) layer on N images of h×w: `Tiling` on both axes.
/// Tiles are numbered p = image·tiles + tile row·tiles_x + tile column; every pipeline
/// (training's lane stages, the INT8 engine's lanes and register blocks) walks this one grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileGrid {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// Output tile m and input tile t = m + 2.
    pub m: usize,
    pub t: usize,
    pub tiles_y: usize,
    pub tiles_x: usize,
    /// Tiles per image.
    pub tiles: usize,
    /// Extra padding before the data (rows, columns), on top of the kernel's 1.
    pub before: (usize, usize),
}

impl TileGrid {
    pub fn new(n: usize, h: usize, w: usize, m: usize) -> TileGrid {
        let (ty, tx) = (Tiling::new(h, m, 3), Tiling::new(w, m, 3));
        TileGrid {
            n,
            h,
            w,
            m,
            t: m + 2,
            tiles_y: ty.tiles,
            tiles_x: tx.tiles,
            tiles: ty.tiles * tx.tiles,
            before: (ty.before, tx.before),
        }
    }

    /// The per-axis tilings (rows, columns).
    pub fn axes(&self) -> (Tiling, Tiling) {
        (Tiling::new(self.h, self.m, 3), Tiling::new(self.w, self.m, 3))
    }

    /// Tiles of the whole batch.
    pub fn p(&self) -> usize {
        self.n * self.tiles
    }

    /// Taps per tile, t².
    pub fn tt(&self) -> usize {
        self.t * self.t
    }

    /// (image, tile row, tile column) of tile p.
    #[inline]
    pub fn locate(&self, p: usize) -> (usize, usize, usize) {
        let (ni, tile) = (p / self.tiles, p % self.tiles);
        (ni, tile / self.tiles_x, tile % self.tiles_x)
    }

    /// Size (rows, columns) of an image padded so that every tile window lies inside.
    pub fn padded_in(&self) -> (usize, usize) {
        (self.tiles_y * self.m + 2, self.tiles_x * self.m + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_numbers_tiles_image_row_column() {
        let g = TileGrid::new(2, 7, 9, 4);
        assert_eq!((g.tiles_y, g.tiles_x, g.tiles, g.p(), g.tt()), (2, 3, 6, 12, 36));
        assert_eq!(g.before, (0, 1));
        assert_eq!(g.padded_in(), (10, 14));
        assert_eq!(g.locate(0), (0, 0, 0));
        assert_eq!(g.locate(5), (0, 1, 2));
        assert_eq!(g.locate(7), (1, 0, 1));
        assert_eq!(g.axes().1, Tiling::new(9, 4, 3));
    }

    #[test]
    fn reference_padding_for_resnet_sizes() {
        // The reference pads 2, 1, 2 on each side for F6 at 32, 16, 8.
        assert_eq!(Tiling::new(32, 6, 3).before, 2);
        assert_eq!(Tiling::new(16, 6, 3).before, 1);
        assert_eq!(Tiling::new(8, 6, 3).before, 2);
        assert_eq!(Tiling::new(32, 4, 3).before, 0);
        assert_eq!(Tiling::new(32, 6, 3).tiles, 6);
    }

    #[test]
    fn odd_extra_padding_goes_after() {
        let t = Tiling::new(7, 4, 3);
        assert_eq!((t.before, t.tiles), (0, 2));
        let t = Tiling::new(5, 4, 3);
        assert_eq!((t.before, t.tiles), (1, 2));
        // Every output position is produced exactly once.
        for size in 1..40 {
            for m in 1..9 {
                let t = Tiling::new(size, m, 3);
                let mut hit = vec![0; size];
                for tile in 0..t.tiles {
                    for i in 0..m {
                        if let Some(p) = t.target(size, tile, i) {
                            hit[p] += 1;
                        }
                    }
                }
                assert!(hit.iter().all(|&h| h == 1), "size {size} m {m}");
            }
        }
    }
}
