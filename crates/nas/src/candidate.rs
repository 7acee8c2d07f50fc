//! The candidates of one searchable layer: algorithm × transform mode × bit-width.

use crate::error::{NasError, Result};
use winq_nn::models::{fitted_tile, Algo, ConvChoice, ConvSite};
use winq_nn::Precision;

/// What every searchable layer may choose from (before fitting to its map size).
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateSpace {
    /// Whether im2row is a candidate.
    pub im2row: bool,
    /// Winograd output tiles m of F(m×m, 3×3).
    pub tiles: Vec<usize>,
    /// Transform modes of Winograd candidates (false = static, true = flex).
    pub flex: Vec<bool>,
    pub bits: Vec<Precision>,
}

impl Default for CandidateSpace {
    /// wiNAS-WA: im2row, F2, F4, F6, static and flex, INT8.
    fn default() -> Self {
        CandidateSpace {
            im2row: true,
            tiles: vec![2, 4, 6],
            flex: vec![false, true],
            bits: vec![Precision::Int(8)],
        }
    }
}

impl CandidateSpace {
    /// Parses "im2row,F2,F4,F6" (case-insensitive).
    pub fn with_algos(mut self, list: &[String]) -> Result<CandidateSpace> {
        self.im2row = false;
        self.tiles.clear();
        for a in list {
            let a = a.trim().to_ascii_lowercase();
            if a == "im2row" {
                self.im2row = true;
            } else if let Some(m) = a.strip_prefix('f').and_then(|m| m.parse::<usize>().ok()) {
                if !(2..=6).contains(&m) || m % 2 != 0 {
                    return Err(NasError::Invalid(format!(
                        "unsupported Winograd tile '{a}': use F2, F4 or F6"
                    )));
                }
                if !self.tiles.contains(&m) {
                    self.tiles.push(m);
                }
            } else {
                return Err(NasError::Invalid(format!(
                    "unknown algorithm '{a}': use im2row, F2, F4, F6"
                )));
            }
        }
        if !self.im2row && self.tiles.is_empty() {
            return Err(NasError::invalid("no algorithm to search over"));
        }
        Ok(self)
    }
}

/// The candidates of a layer at `site`, in a fixed order (im2row first, then by tile, static
/// before flex, then by bits). A tile larger than the map is dropped rather than fitted: the
/// smaller tile it would fall back to is a candidate of its own (no duplicates).
pub fn candidates(space: &CandidateSpace, site: &ConvSite) -> Vec<ConvChoice> {
    let mut out = Vec::new();
    let mut push = |algo: Algo, p: Precision| {
        let c = ConvChoice { algo, precision: p };
        if !out.contains(&c) {
            out.push(c);
        }
    };
    for &p in &space.bits {
        if space.im2row {
            push(Algo::Im2row, p);
        }
    }
    for &m in &space.tiles {
        if fitted_tile(m, site.height, site.width) != m {
            continue;
        }
        for &flex in &space.flex {
            for &p in &space.bits {
                push(Algo::Winograd { m, flex }, p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(h: usize) -> ConvSite {
        ConvSite {
            index: 0,
            in_channels: 8,
            out_channels: 8,
            height: h,
            width: h,
        }
    }

    #[test]
    fn tiles_that_do_not_fit_are_dropped() {
        let names = |h| -> Vec<String> {
            candidates(&CandidateSpace::default(), &site(h))
                .iter()
                .map(|c| c.to_string())
                .collect()
        };
        assert_eq!(
            names(7),
            [
                "im2row-int8",
                "F2-static-int8",
                "F2-flex-int8",
                "F4-static-int8",
                "F4-flex-int8",
                "F6-static-int8",
                "F6-flex-int8"
            ]
        );
        assert_eq!(
            names(4),
            [
                "im2row-int8",
                "F2-static-int8",
                "F2-flex-int8",
                "F4-static-int8",
                "F4-flex-int8"
            ]
        );
        assert_eq!(names(3), ["im2row-int8", "F2-static-int8", "F2-flex-int8"]);
    }

    #[test]
    fn bits_multiply_the_space_and_keys_merge_modes() {
        let space = CandidateSpace {
            bits: vec![Precision::Int(8), Precision::Fp32],
            ..CandidateSpace::default()
        }
        .with_algos(&["im2row".into(), "f4".into()])
        .unwrap();
        let c = candidates(&space, &site(8));
        assert_eq!(c.len(), 2 + 2 * 2);
        let keys: Vec<String> = c.iter().map(ConvChoice::kernel_key).collect();
        assert_eq!(
            keys,
            [
                "im2row-int8",
                "im2row-fp32",
                "F4-int8",
                "F4-fp32",
                "F4-int8",
                "F4-fp32"
            ]
        );
        assert!(CandidateSpace::default().with_algos(&["F3".into()]).is_err());
        assert!(CandidateSpace::default().with_algos(&["gemm".into()]).is_err());
    }
}
