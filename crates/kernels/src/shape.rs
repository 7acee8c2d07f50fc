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

#[cfg(test)]
mod tests {
    use super::*;

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
