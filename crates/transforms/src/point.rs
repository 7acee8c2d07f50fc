use crate::error::TransformError;
use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};
use std::fmt;
use std::str::FromStr;

/// Exact rational number used for all transform arithmetic.
pub type Rational = BigRational;

/// An interpolation point of the Toom-Cook construction in homogeneous form (f, g):
/// a finite point `a` is (a, 1); infinity is (1, 0) and stands for the leading coefficient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    Finite(Rational),
    Infinity,
}

impl Point {
    pub fn int(v: i64) -> Self {
        Point::Finite(Rational::from_integer(BigInt::from(v)))
    }

    pub fn frac(n: i64, d: i64) -> Self {
        Point::Finite(Rational::new(BigInt::from(n), BigInt::from(d)))
    }

    /// Homogeneous coordinates (f, g).
    pub fn homogeneous(&self) -> (Rational, Rational) {
        match self {
            Point::Finite(a) => (a.clone(), Rational::one()),
            Point::Infinity => (Rational::one(), Rational::zero()),
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Finite(a) => write!(f, "{a}"),
            Point::Infinity => write!(f, "inf"),
        }
    }
}

impl FromStr for Point {
    type Err = TransformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "inf" | "infinity" | "∞" => Ok(Point::Infinity),
            _ => parse_rational(t)
                .map(Point::Finite)
                .ok_or_else(|| TransformError::BadPoint(s.to_string())),
        }
    }
}

/// Parses "3", "-3/2" or "0.125" into an exact rational. Returns None for anything else.
pub fn parse_rational(s: &str) -> Option<Rational> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some((n, d)) = s.split_once('/') {
        let n = BigInt::from_str(n.trim()).ok()?;
        let d = BigInt::from_str(d.trim()).ok()?;
        if d.is_zero() {
            return None;
        }
        return Some(Rational::new(n, d));
    }
    if let Some((int, frac)) = s.split_once('.') {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let negative = int.trim_start().starts_with('-');
        let int_part = match int.trim() {
            "" | "-" | "+" => BigInt::zero(),
            i => BigInt::from_str(i).ok()?,
        };
        let denom = num_traits::pow(BigInt::from(10), frac.len());
        let frac_part = BigInt::from_str(frac).ok()?;
        let magnitude = int_part.magnitude().clone();
        let num = BigInt::from(magnitude) * &denom + frac_part;
        let num = if negative { -num } else { num };
        return Some(Rational::new(num, denom));
    }
    BigInt::from_str(s).ok().map(Rational::from_integer)
}

/// Parses a comma-separated list of points, e.g. "0,1,-1,2,-2,1/2,-1/2,inf".
pub fn parse_points(s: &str) -> Result<Vec<Point>, TransformError> {
    s.split(',').map(Point::from_str).collect()
}

/// Parses a comma-separated list of rationals (a diagonal scaling).
pub fn parse_scaling(s: &str) -> Result<Vec<Rational>, TransformError> {
    s.split(',')
        .map(|v| parse_rational(v).ok_or_else(|| TransformError::BadScalar(v.to_string())))
        .collect()
}

/// Joins values with ", " for messages.
pub fn join<T: fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integers_fractions_decimals_and_infinity() {
        let pts = parse_points("0, -1, 3/2, -0.5, 1.25, inf, ∞").unwrap();
        assert_eq!(pts[0], Point::int(0));
        assert_eq!(pts[1], Point::int(-1));
        assert_eq!(pts[2], Point::frac(3, 2));
        assert_eq!(pts[3], Point::frac(-1, 2));
        assert_eq!(pts[4], Point::frac(5, 4));
        assert_eq!(pts[5], Point::Infinity);
        assert_eq!(pts[6], Point::Infinity);
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in ["", "x", "1/0", "1.", "1.2.3", "--1", "1/2/3", "0x10"] {
            assert!(
                matches!(Point::from_str(bad), Err(TransformError::BadPoint(_))),
                "accepted '{bad}'"
            );
        }
    }
}
