//! Toom-Cook construction of Winograd transforms in exact arithmetic.
//!
//! For a correlation y_i = sum_k g_k d_{i+k} (m outputs, r taps, t = m + r - 1 inputs) the
//! transposed Toom-Cook algorithm gives y = Aᵀ[(G g) ⊙ (Bᵀ d)] with
//! Aᵀ = V(t×m)ᵀ·Sy, Bᵀ = Sx·V(t×t)⁻ᵀ, G = Sw·V(t×r), V(t×n)[i][c] = f_i^c g_i^(n-1-c),
//! which is exact iff Sy ⊙ Sx ⊙ Sw = 1. The 2-D form Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A nests the 1-D
//! one in each axis, so its coefficients are products of 1-D coefficients: checking the 1-D
//! bilinear form exactly proves the 2-D one.

use crate::error::TransformError;
use crate::matrix::{Mat, RatMatrix};
use crate::point::{join, Point, Rational};
use num_traits::{One, Zero};

/// Diagonal scalings (Sy, Sx, Sw), one entry per interpolation point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalings {
    pub sy: Vec<Rational>,
    pub sx: Vec<Rational>,
    pub sw: Vec<Rational>,
}

impl Scalings {
    /// Sx_i = prod_{j != i, finite} (a_i - a_j) for finite points, 1 at infinity; Sw = 1/Sx;
    /// Sy = 1. This makes Bᵀ rows integer polynomials (Lavin's F(4,3) scaling).
    pub fn lagrange(points: &[Point]) -> Scalings {
        let sx: Vec<Rational> = points
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Point::Infinity => Rational::one(),
                Point::Finite(a) => points
                    .iter()
                    .enumerate()
                    .filter_map(|(j, q)| match q {
                        Point::Finite(b) if j != i => Some(a - b),
                        _ => None,
                    })
                    .fold(Rational::one(), |acc, v| acc * v),
            })
            .collect();
        let sw = sx.iter().map(|v| v.recip()).collect();
        Scalings {
            sy: vec![Rational::one(); points.len()],
            sx,
            sw,
        }
    }
}

/// An exact Winograd transform triple for F(m, r) and the points it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub m: usize,
    pub r: usize,
    pub points: Vec<Point>,
    pub scalings: Scalings,
    /// Output transform Aᵀ, m×t.
    pub at: RatMatrix,
    /// Input transform Bᵀ, t×t.
    pub bt: RatMatrix,
    /// Kernel transform G, t×r.
    pub g: RatMatrix,
}

/// Float views of a transform, as kernels consume them.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatTransform<T> {
    pub m: usize,
    pub r: usize,
    pub at: Mat<T>,
    pub bt: Mat<T>,
    pub g: Mat<T>,
}

impl Transform {
    /// Tile size t = m + r - 1.
    pub fn t(&self) -> usize {
        self.m + self.r - 1
    }

    pub fn to_f64(&self) -> FloatTransform<f64> {
        FloatTransform {
            m: self.m,
            r: self.r,
            at: self.at.to_f64(),
            bt: self.bt.to_f64(),
            g: self.g.to_f64(),
        }
    }

    pub fn to_f32(&self) -> FloatTransform<f32> {
        FloatTransform {
            m: self.m,
            r: self.r,
            at: self.at.to_f32(),
            bt: self.bt.to_f32(),
            g: self.g.to_f32(),
        }
    }

    /// Builds and verifies F(m, r) from points and optional scalings (Lagrange scalings when
    /// None). Refuses a triple that is not an exact correlation.
    pub fn build(
        m: usize,
        r: usize,
        points: &[Point],
        scalings: Option<Scalings>,
    ) -> Result<Transform, TransformError> {
        if m < 1 {
            return Err(TransformError::OutputSize(m));
        }
        if r < 2 {
            return Err(TransformError::KernelSize(r));
        }
        let t = m + r - 1;
        if points.len() != t {
            return Err(TransformError::PointCount {
                m,
                r,
                expected: t,
                got: points.len(),
                points: join(points),
            });
        }
        for (i, p) in points.iter().enumerate() {
            if points[..i].contains(p) {
                return Err(TransformError::RepeatedPoint(p.to_string()));
            }
        }
        let s = scalings.unwrap_or_else(|| Scalings::lagrange(points));
        for (name, v) in [("Sy", &s.sy), ("Sx", &s.sx), ("Sw", &s.sw)] {
            if v.len() != t {
                return Err(TransformError::ScalingLength {
                    name,
                    expected: t,
                    got: v.len(),
                });
            }
            if let Some(index) = v.iter().position(|x| x.is_zero()) {
                return Err(TransformError::ZeroScaling { name, index });
            }
        }

        let v_tm = vandermonde(points, m);
        let v_tr = vandermonde(points, r);
        let v_inv = vandermonde(points, t)
            .inverse()
            .ok_or_else(|| TransformError::RepeatedPoint(join(points)))?;
        let at = RatMatrix::from_fn(m, t, |i, j| v_tm.at(j, i) * &s.sy[j]);
        let bt = RatMatrix::from_fn(t, t, |i, j| &s.sx[i] * v_inv.at(j, i));
        let g = RatMatrix::from_fn(t, r, |i, c| &s.sw[i] * v_tr.at(i, c));
        let tr = Transform {
            m,
            r,
            points: points.to_vec(),
            scalings: s,
            at,
            bt,
            g,
        };
        tr.verify()?;
        Ok(tr)
    }

    /// Checks symbolically that Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of d with g: the
    /// coefficient of g_k·d_l in y_i must be 1 when l = i + k and 0 otherwise.
    pub fn verify(&self) -> Result<(), TransformError> {
        let t = self.t();
        for i in 0..self.m {
            for k in 0..self.r {
                for l in 0..t {
                    let mut c = Rational::zero();
                    for j in 0..t {
                        c += self.at.at(i, j) * self.g.at(j, k) * self.bt.at(j, l);
                    }
                    let expected = if l == i + k {
                        Rational::one()
                    } else {
                        Rational::zero()
                    };
                    if c != expected {
                        return Err(TransformError::NotExact(Box::new(crate::error::Inexact {
                            points: join(&self.points),
                            sy: join(&self.scalings.sy),
                            sx: join(&self.scalings.sx),
                            sw: join(&self.scalings.sw),
                            i,
                            k,
                            l,
                            got: c.to_string(),
                            expected: expected.to_string(),
                        })));
                    }
                }
            }
        }
        Ok(())
    }
}

/// V(t×n)[i][c] = f_i^c · g_i^(n-1-c) in homogeneous coordinates.
fn vandermonde(points: &[Point], n: usize) -> RatMatrix {
    RatMatrix::from_fn(points.len(), n, |i, c| {
        let (f, g) = points[i].homogeneous();
        num_traits::pow(f, c) * num_traits::pow(g, n - 1 - c)
    })
}
