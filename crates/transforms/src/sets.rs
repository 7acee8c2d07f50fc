//! Named interpolation point sets.

use crate::error::TransformError;
use crate::point::{Point, Rational};
use crate::toom_cook::{Scalings, Transform};
use num_bigint::BigInt;
use std::fmt;
use std::str::FromStr;

/// Which points (and scalings) to build a transform from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointSet {
    /// `lavin`: identical to `paper` for F(2,3) and F(4,3); for F(6,3) it takes ±1/2 instead
    /// of the paper's ±3/2, which is 14x more accurate in FP32, 6x at INT16 and 22x at INT8
    /// (docs/ERROR_STUDY.md).
    Default,
    /// The authors' points and scalings, with F6's Sx corrected (docs/REFERENCE.md; the bug
    /// and its correction: docs/DESIGN.md, "The released F6 bug").
    Paper,
    /// The paper's F6 scaling exactly as released (Sx 4,-6,-6,24,24,1,-12,-12): not a
    /// convolution. Kept so tests and docs can show the build refuses it.
    PaperReleasedF6,
    /// 0, ±1, ±2, ±1/2, ±3, ... then infinity, Lagrange scalings (F(2,3) and F(4,3) give Lavin
    /// & Gray's matrices; F(6,3) uses ±1/2).
    Lavin,
    /// User points, with optional user scalings (Lagrange scalings when None).
    Custom(Vec<Point>, Option<Scalings>),
}

impl FromStr for PointSet {
    type Err = TransformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "default" => Ok(PointSet::Default),
            "paper" => Ok(PointSet::Paper),
            "paper-released" => Ok(PointSet::PaperReleasedF6),
            "lavin" => Ok(PointSet::Lavin),
            _ => crate::point::parse_points(s).map(|p| PointSet::Custom(p, None)),
        }
    }
}

impl fmt::Display for PointSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointSet::Default => write!(f, "default"),
            PointSet::Paper => write!(f, "paper"),
            PointSet::PaperReleasedF6 => write!(f, "paper-released"),
            PointSet::Lavin => write!(f, "lavin"),
            PointSet::Custom(p, _) => write!(f, "{}", crate::point::join(p)),
        }
    }
}

fn q(n: i64, d: i64) -> Rational {
    Rational::new(BigInt::from(n), BigInt::from(d))
}

fn qs(v: &[(i64, i64)]) -> Vec<Rational> {
    v.iter().map(|&(n, d)| q(n, d)).collect()
}

fn ints(v: &[i64]) -> Vec<Rational> {
    v.iter().map(|&n| q(n, 1)).collect()
}

/// The order finite points are taken in by `lavin` (and by `default` past the paper's sets):
/// small magnitudes and their reciprocals first, which keeps the transforms well conditioned.
const FINITE_SEQUENCE: [(i64, i64); 21] = [
    (0, 1),
    (1, 1),
    (-1, 1),
    (2, 1),
    (-2, 1),
    (1, 2),
    (-1, 2),
    (3, 1),
    (-3, 1),
    (1, 3),
    (-1, 3),
    (3, 2),
    (-3, 2),
    (2, 3),
    (-2, 3),
    (4, 1),
    (-4, 1),
    (1, 4),
    (-1, 4),
    (5, 2),
    (-5, 2),
];

fn paper(m: usize, r: usize, released_f6: bool) -> Result<(Vec<Point>, Scalings), TransformError> {
    let unknown = |why: &str| TransformError::UnknownSet {
        name: if released_f6 { "paper-released" } else { "paper" }.into(),
        m,
        r,
        why: why.into(),
    };
    if r != 3 {
        return Err(unknown("the paper's point sets are for 3x3 kernels only"));
    }
    let base = [Point::int(0), Point::int(1), Point::int(-1)];
    match (m, released_f6) {
        (2, false) => Ok((
            vec![base[0].clone(), base[1].clone(), base[2].clone(), Point::Infinity],
            Scalings {
                sy: ints(&[1, 1, 1, -1]),
                sx: ints(&[1, 2, 2, -1]),
                sw: qs(&[(1, 1), (1, 2), (1, 2), (1, 1)]),
            },
        )),
        (4, false) => {
            let mut p = base.to_vec();
            p.extend([Point::int(2), Point::int(-2), Point::Infinity]);
            Ok((
                p,
                Scalings {
                    sy: ints(&[1; 6]),
                    sx: ints(&[4, -6, -6, 24, 24, 1]),
                    sw: qs(&[(1, 4), (-1, 6), (-1, 6), (1, 24), (1, 24), (1, 1)]),
                },
            ))
        }
        (6, _) => {
            let mut p = base.to_vec();
            p.extend([
                Point::int(2),
                Point::int(-2),
                Point::frac(3, 2),
                Point::frac(-3, 2),
                Point::Infinity,
            ]);
            let sx = if released_f6 {
                ints(&[4, -6, -6, 24, 24, 1, -12, -12])
            } else {
                ints(&[4, -6, -6, 24, 24, -12, -12, 1])
            };
            Ok((
                p,
                Scalings {
                    sy: ints(&[1; 8]),
                    sx,
                    sw: qs(&[
                        (1, 4),
                        (-1, 6),
                        (-1, 6),
                        (1, 24),
                        (1, 24),
                        (-1, 12),
                        (-1, 12),
                        (1, 1),
                    ]),
                },
            ))
        }
        (_, true) => Err(unknown("the released-code variant exists for F(6,3) only")),
        _ => Err(unknown("the paper defines F(2,3), F(4,3) and F(6,3)")),
    }
}

fn lavin(m: usize, r: usize) -> Result<(Vec<Point>, Option<Scalings>), TransformError> {
    let t = m + r - 1;
    if t > FINITE_SEQUENCE.len() + 1 {
        return Err(TransformError::UnknownSet {
            name: "lavin".into(),
            m,
            r,
            why: format!(
                "it lists {} points; give --points for t = {t}",
                FINITE_SEQUENCE.len() + 1
            ),
        });
    }
    if m == 2 && r == 3 {
        // Lavin & Gray's F(2,3) scales the infinity column of Aᵀ by -1.
        let (p, s) = paper(2, 3, false)?;
        return Ok((p, Some(s)));
    }
    let mut p: Vec<Point> = FINITE_SEQUENCE[..t - 1]
        .iter()
        .map(|&(n, d)| Point::frac(n, d))
        .collect();
    p.push(Point::Infinity);
    Ok((p, None))
}

impl PointSet {
    /// The points and scalings this set gives for F(m, r).
    pub fn resolve(&self, m: usize, r: usize) -> Result<(Vec<Point>, Option<Scalings>), TransformError> {
        match self {
            PointSet::Paper => paper(m, r, false).map(|(p, s)| (p, Some(s))),
            PointSet::PaperReleasedF6 => paper(m, r, true).map(|(p, s)| (p, Some(s))),
            PointSet::Lavin => lavin(m, r),
            PointSet::Default => lavin(m, r),
            PointSet::Custom(p, s) => Ok((p.clone(), s.clone())),
        }
    }
}

/// Builds (and proves exact) F(m, r) from a named or custom point set.
pub fn transform(m: usize, r: usize, set: &PointSet) -> Result<Transform, TransformError> {
    if m < 1 {
        return Err(TransformError::OutputSize(m));
    }
    if r < 2 {
        return Err(TransformError::KernelSize(r));
    }
    let (points, scalings) = set.resolve(m, r)?;
    Transform::build(m, r, &points, scalings)
}
