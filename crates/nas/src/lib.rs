//! wiNAS: a ProxylessNAS-style search, per 3x3 layer of a fixed macro-architecture, of the
//! convolution algorithm (im2row, F2, F4, F6; static or flex transforms) and bit-width,
//! trading accuracy against the latency the engine measured on this machine.
//!
//! Pieces: [`candidate`] (what a layer may become), [`lut`] (the latency table of
//! `winq bench layers`), [`mixed::MixedConv`] (one shared weight, one path per candidate,
//! binary gates), [`arch`] (architecture logits, their gradients and optimizer),
//! [`supernet`] (ResNet18Like / lenet with mixed layers), [`search`] (the alternating loop),
//! [`plot`] (candidate probabilities over the search), [`run`] (a whole search job and its
//! result files, and the retraining of its choice).

pub mod arch;
pub mod candidate;
pub mod error;
pub mod lut;
pub mod mixed;
pub mod plot;
pub mod run;
pub mod search;
pub mod supernet;

pub use arch::{ArchLogits, SearchLayer};
pub use candidate::{candidates, CandidateSpace};
pub use error::{NasError, Result, ResultExt};
pub use lut::LatencyTable;
pub use mixed::{Gate, GateRef, MixedConv};
pub use search::{search, SearchOptions, SearchOutcome};
pub use supernet::{build_supernet, Supernet};
