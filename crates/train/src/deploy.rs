//! Checkpoint → deploy model: rebuilds the training network of a checkpoint, loads its
//! weights and exports the model IR the engine runs, with the input it was trained on.

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::error::{Result, ResultExt};
use crate::runner;
use std::path::Path;
use winq_ir::{ModelInfo, Op};
use winq_nn::Layer;

/// Loads a checkpoint into its training model and exports the engine graph.
pub fn export_checkpoint(path: &Path) -> Result<(Op, ModelInfo, TrainConfig)> {
    let ck = Checkpoint::read(path)?;
    let cfg = ck.config.clone();
    let classes = cfg.dataset.classes();
    let input = cfg.input_shape();
    let (c, h, w) = (input.channels, input.height, input.width);
    let mut built = runner::build_model(&cfg, c, h, w, classes)?;
    ck.load_model(&mut built.net, true)?;
    let op = built.net.export().context("exporting the network")?;
    let norm = cfg.normalization();
    let info = ModelInfo {
        channels: c,
        height: h,
        width: w,
        classes,
        mean: norm.mean,
        std: norm.std,
        pad_to: cfg.pad_to,
        labels: cfg.dataset.class_names(),
        source: format!("{} ({})", path.display(), cfg.dataset),
    };
    Ok((op, info, cfg))
}
