//! The one error type of the search: what the crate's functions return.
//!
//! Errors of the crates the search builds on (training's [`TrainError`] included) convert with
//! `?` (`#[from]`, shown as they are); a failed option or table check is
//! [`NasError::Invalid`]; and [`ResultExt::context`] / [`ResultExt::with_context`] say what
//! was being done ([`NasError::Context`], shown as "context: cause"). The message of an error
//! is therefore its whole story on one line (`to_string()`); a context does not also return
//! its cause from `source()`, so printers that walk the source chain (the CLI's error report)
//! do not repeat it.

use std::path::PathBuf;
use winq_train::TrainError;

/// Everything that can go wrong while measuring latencies, searching, writing the results and
/// retraining.
#[derive(Debug, thiserror::Error)]
pub enum NasError {
    /// Options, a latency table or a search that fail a check (the message says which and
    /// why).
    #[error("{0}")]
    Invalid(String),
    /// What was being done when `cause` happened.
    #[error("{context}: {cause}")]
    Context { context: String, cause: Box<NasError> },
    /// A plot that cannot be drawn or written (the plotting backend's message).
    #[error("cannot write {}: {why}", path.display())]
    Plot { path: PathBuf, why: String },
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    #[error(transparent)]
    Ir(#[from] winq_ir::IrError),
    #[error(transparent)]
    Choice(#[from] winq_ir::ChoiceError),
    #[error(transparent)]
    Export(#[from] winq_nn::ExportError),
    #[error(transparent)]
    Loss(#[from] winq_nn::LossError),
    #[error(transparent)]
    Transform(#[from] winq_transforms::TransformError),
}

/// The result of the search's functions.
pub type Result<T, E = NasError> = std::result::Result<T, E>;

impl NasError {
    /// A failed check, from its message.
    pub fn invalid(why: impl Into<String>) -> NasError {
        NasError::Invalid(why.into())
    }

    /// This error with what was being done in front ("context: self").
    pub fn context(self, context: impl Into<String>) -> NasError {
        NasError::Context {
            context: context.into(),
            cause: Box::new(self),
        }
    }
}

/// Context for the errors of a `Result`: any error that converts into [`NasError`] is wrapped
/// in [`NasError::Context`].
pub trait ResultExt<T> {
    /// Wraps an error with what was being done.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// Wraps an error with what was being done, computed only on error.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<NasError>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prints_the_whole_chain_once() {
        let inner = Err::<(), _>(TrainError::invalid("it has no entries"))
            .map_err(|e| e.context("latency table t.json"))
            .unwrap_err();
        let e = Err::<(), _>(inner).context("looking up candidates").unwrap_err();
        assert_eq!(
            e.to_string(),
            "looking up candidates: latency table t.json: it has no entries"
        );
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<NasError>();
    }
}
