//! End-to-end training for winq: configurations, datasets, the training loop with metrics,
//! checkpoints and bit-identical resume, export to the deploy model, adapt (im2row -> Winograd-aware), import of the
//! authors' checkpoints, and plots.

pub mod checkpoint;
pub mod config;
pub mod deploy;
pub mod error;
pub mod import;
pub mod plot;
pub mod runner;

pub use error::{Result, ResultExt, TrainError};
