//! The search's errors are training's (`winq_train::TrainError`): a search trains, checkpoints
//! and exports, and what it adds (option and latency-table checks, result files, timing
//! threads) fits the same variants. One type, one context mechanism.

pub use winq_train::{Result, ResultExt, TrainError as NasError};
