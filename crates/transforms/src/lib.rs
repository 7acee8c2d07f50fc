//! Exact Toom-Cook (Winograd) transforms: Aᵀ, Bᵀ and G for F(m, r) from interpolation
//! points in rational arithmetic, each triple proven to compute a correlation before use.

mod error;
mod matrix;
mod point;
mod sets;
mod toom_cook;

pub use error::{Inexact, TransformError};
pub use matrix::{rational_to_f64, Mat, RatMatrix};
pub use point::{join, parse_points, parse_rational, parse_scaling, Point, Rational};
pub use sets::{transform, PointSet};
pub use toom_cook::{FloatTransform, Scalings, Transform};
