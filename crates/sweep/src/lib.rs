//! Grids of winq runs: the sweep file ([`spec`]), one point run as a child `winq` process with
//! its state on disk ([`point`]), N points at a time on this machine ([`local`]) or as a Slurm
//! job array ([`slurm`]), and tables and plots over finished run directories ([`report`]).
//!
//! Everything a sweep knows lives in its run directories (a shared filesystem on a cluster):
//! `point.json` (the resolved command), `status.json` (done / running / interrupted / failed,
//! attempts, wall time), `log.txt` (the command's output) beside what the command itself
//! writes. The local runner and the Slurm array both run a point through the same
//! `winq sweep exec SPEC --index I`, so a point behaves the same wherever it runs: a finished
//! point is skipped, an interrupted training continues from its last epoch (`--resume`, which
//! ends bit for bit where an uninterrupted run ends).

pub mod local;
pub mod plot;
pub mod point;
pub mod report;
pub mod slurm;
pub mod spec;

pub use point::{PointState, Status};
pub use spec::{Point, Sweep};

use std::path::{Path, PathBuf};

/// The one error type of sweeps and reports.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A sweep file that cannot be used (the message names the key).
    #[error("{}: {why}", path.display())]
    Spec { path: PathBuf, why: String },
    /// A request that fails a check (the message says which and why).
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A Slurm command that is missing or failed.
    #[error("{0}")]
    Slurm(String),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Train(#[from] winq_train::TrainError),
    #[error(transparent)]
    Ir(#[from] winq_ir::IrError),
    /// A plot that cannot be drawn or written.
    #[error("cannot write {}: {why}", path.display())]
    Plot { path: PathBuf, why: String },
}

impl SweepError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SweepError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn spec(path: &Path, why: String) -> Self {
        SweepError::Spec {
            path: path.to_path_buf(),
            why,
        }
    }
}

impl From<(PathBuf, std::io::Error)> for SweepError {
    fn from((path, source): (PathBuf, std::io::Error)) -> Self {
        SweepError::Io { path, source }
    }
}

pub type Result<T, E = SweepError> = std::result::Result<T, E>;

/// Writes JSON atomically (a reader sees the old file or the new one).
pub(crate) fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    winq_ir::write_atomic(path, serde_json::to_string_pretty(v)?.as_bytes())?;
    Ok(())
}

/// FNV-1a of some bytes (names and fingerprints; not a security hash).
pub(crate) fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Seconds since the Unix epoch (status files' clock).
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks every point of a sweep with `check` (which knows what `winq` accepts: the command
/// line parses, its configuration passes the command's checks) before anything runs; the
/// error lists every point that fails.
pub fn validate(sweep: &Sweep, check: &dyn Fn(&[String]) -> Result<(), String>) -> Result<()> {
    let bad: Vec<String> = sweep
        .points
        .iter()
        .filter_map(|p| {
            check(&p.argv)
                .err()
                .map(|e| format!("  point {} ({}): {e}", p.index, p.name))
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(SweepError::Invalid(format!(
        "{}: {} of {} points would be rejected; nothing was started:\n{}",
        sweep.spec.display(),
        bad.len(),
        sweep.points.len(),
        bad.join("\n")
    )))
}
