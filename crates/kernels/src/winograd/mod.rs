//! Winograd F(m×m, 3×3) on NCHW batches with tiles as vector lanes: the tile grid and the
//! transform / channel-sum stages training's Winograd-aware layer is built from (forward and,
//! through the grid and `crate::tile`, backward), and the FP32 forward the engine runs.
//! The INT8 engine's channel-last pipeline is `crate::int8::winograd`.

mod grid;
pub mod stages;

pub use grid::NchwTiles;
pub use stages::forward_f32;
