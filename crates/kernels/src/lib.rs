//! Convolution kernels. `reference` holds the plain, obviously-correct implementations
//! every fast kernel and every later test is compared against.

pub mod gemm;
pub mod im2col;
pub mod int8;
pub mod reference;
mod shape;
pub mod tile;
pub mod winograd;

pub use shape::{Nchw, TileGrid, Tiling};
