//! The one error type of training: what the crate's functions return.
//!
//! Errors of the crates training builds on convert with `?` (`#[from]`, shown as they are);
//! a failed configuration or consistency check is [`TrainError::Invalid`]; and
//! [`ResultExt::context`] / [`ResultExt::with_context`] say what was being done
//! ([`TrainError::Context`], shown as "context: cause"). The message of an error is therefore
//! its whole story on one line (`to_string()`); a context does not also return its cause from
//! `source()`, so printers that walk the source chain (the CLI's error report) do not repeat it.

use std::path::PathBuf;

/// Everything that can go wrong while training, checkpointing, importing, exporting or
/// plotting (and, for `winq-nas`, which shares it, measuring latencies and searching).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration, an input file or a run that fails a check (the message says which
    /// and why).
    #[error("{0}")]
    Invalid(String),
    /// What was being done when `cause` happened.
    #[error("{context}: {cause}")]
    Context { context: String, cause: Box<TrainError> },
    /// A plot that cannot be drawn or written (the plotting backend's message).
    #[error("cannot write {}: {why}", path.display())]
    Plot { path: PathBuf, why: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error(transparent)]
    Data(#[from] winq_data::DataError),
    #[error(transparent)]
    Ir(#[from] winq_ir::IrError),
    #[error(transparent)]
    Choice(#[from] winq_ir::ChoiceError),
    #[error(transparent)]
    Export(#[from] winq_nn::ExportError),
    #[error(transparent)]
    Loss(#[from] winq_nn::LossError),
    #[error(transparent)]
    Optim(#[from] winq_nn::OptimError),
    #[error(transparent)]
    Transform(#[from] winq_transforms::TransformError),
    #[error(transparent)]
    Model(#[from] winq_nn::ModelError),
    #[error(transparent)]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
}

/// The result of training's functions.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// A failed check, from its message.
    pub fn invalid(why: impl Into<String>) -> TrainError {
        TrainError::Invalid(why.into())
    }

    /// This error with what was being done in front ("context: self").
    pub fn context(self, context: impl Into<String>) -> TrainError {
        TrainError::Context {
            context: context.into(),
            cause: Box::new(self),
        }
    }
}

/// Context for the errors of a `Result`: any error that converts into [`TrainError`] is
/// wrapped in [`TrainError::Context`].
pub trait ResultExt<T> {
    /// Wraps an error with what was being done.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// Wraps an error with what was being done, computed only on error.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<TrainError>> ResultExt<T> for std::result::Result<T, E> {
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
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = Err::<(), _>(io)
            .context("cannot read x.json")
            .with_context(|| "loading the run")
            .unwrap_err();
        assert_eq!(e.to_string(), "loading the run: cannot read x.json: no such file");
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<TrainError>();
    }
}
