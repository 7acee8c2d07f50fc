use crate::point::Rational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use serde::Serialize;

/// Dense row-major matrix of exact rationals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<Rational>,
}

/// Dense row-major matrix of floats: the view kernels use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mat<T> {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<T>,
}

impl<T: Copy> Mat<T> {
    pub fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.cols + j]
    }

    pub fn transpose(&self) -> Mat<T> {
        let mut data = Vec::with_capacity(self.data.len());
        for j in 0..self.cols {
            for i in 0..self.rows {
                data.push(self.at(i, j));
            }
        }
        Mat {
            rows: self.cols,
            cols: self.rows,
            data,
        }
    }
}

impl RatMatrix {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        RatMatrix {
            rows,
            cols,
            data: vec![Rational::zero(); rows * cols],
        }
    }

    pub fn from_fn(rows: usize, cols: usize, f: impl Fn(usize, usize) -> Rational) -> Self {
        let data = (0..rows * cols).map(|k| f(k / cols, k % cols)).collect();
        RatMatrix { rows, cols, data }
    }

    pub fn at(&self, i: usize, j: usize) -> &Rational {
        &self.data[i * self.cols + j]
    }

    pub fn transpose(&self) -> RatMatrix {
        RatMatrix::from_fn(self.cols, self.rows, |i, j| self.at(j, i).clone())
    }

    pub fn to_f64(&self) -> Mat<f64> {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(rational_to_f64).collect(),
        }
    }

    pub fn to_f32(&self) -> Mat<f32> {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|v| rational_to_f64(v) as f32).collect(),
        }
    }

    /// Exact inverse by Gauss-Jordan elimination; None when singular.
    pub fn inverse(&self) -> Option<RatMatrix> {
        assert_eq!(self.rows, self.cols, "inverse of a non-square matrix");
        let n = self.rows;
        let mut a = self.clone();
        let mut inv = RatMatrix::from_fn(
            n,
            n,
            |i, j| {
                if i == j {
                    Rational::one()
                } else {
                    Rational::zero()
                }
            },
        );
        for col in 0..n {
            let pivot = (col..n).find(|&r| !a.at(r, col).is_zero())?;
            if pivot != col {
                for j in 0..n {
                    a.data.swap(pivot * n + j, col * n + j);
                    inv.data.swap(pivot * n + j, col * n + j);
                }
            }
            let p = a.at(col, col).clone();
            for j in 0..n {
                a.data[col * n + j] /= &p;
                inv.data[col * n + j] /= &p;
            }
            for r in 0..n {
                if r == col || a.at(r, col).is_zero() {
                    continue;
                }
                let factor = a.at(r, col).clone();
                for j in 0..n {
                    let (sa, si) = (a.at(col, j).clone(), inv.at(col, j).clone());
                    a.data[r * n + j] -= &factor * sa;
                    inv.data[r * n + j] -= &factor * si;
                }
            }
        }
        Some(inv)
    }
}

/// Nearest f64 to an exact rational (exact for dyadic values, correctly rounded otherwise
/// for the moderate sizes transforms use).
pub fn rational_to_f64(v: &Rational) -> f64 {
    if let (Some(n), Some(d)) = (v.numer().to_f64(), v.denom().to_f64()) {
        if n.abs() < 9.007_199_254_740_992e15 && d < 9.007_199_254_740_992e15 {
            return n / d;
        }
    }
    // Large numerator or denominator: scale into range before dividing.
    let sign = if v.is_negative() { -1.0 } else { 1.0 };
    let bits = v.numer().bits() as i64 - v.denom().bits() as i64;
    let shift = 60 - bits;
    let scaled = if shift >= 0 {
        (v.abs().numer() << shift as usize) / v.denom()
    } else {
        v.abs().numer() / (v.denom() << (-shift) as usize)
    };
    sign * scaled.to_f64().unwrap_or(f64::NAN) * 2f64.powi(-shift as i32)
}
