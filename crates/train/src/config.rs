//! What a run is: model, data, optimizer, schedule. Saved next to every checkpoint so that
//! `eval`, `adapt` and `--resume` rebuild exactly the same network.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use winq_data::{Augment, DatasetKind};
use winq_nn::models::ConvChoice;
use winq_nn::quant::Granularity;

/// The per-layer configuration file (what wiNAS writes and `winq train --layers` reads): each
/// layer as {"algo": "F4", "flex": true, "bits": 8} (bits 32: FP32) or as its name
/// ("F4-flex-int8", see `ConvChoice`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerFile {
    pub layers: Vec<ConvChoice>,
    /// Precision of the 1x1 shortcut convolutions; defaults to the first layer's.
    #[serde(default)]
    pub shortcut_bits: Option<u32>,
}

/// The macro-architecture of a model (its 3x3 layers are configured by `ConvChoice`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The paper's ResNet18Like (16 configurable 3x3 layers).
    #[value(alias = "resnet18")]
    Resnet18like,
    /// A small CNN for quick runs (2 configurable 3x3 layers).
    Lenet,
}

impl ModelKind {
    /// Number of configurable 3x3 layers.
    pub fn conv_layers(self) -> usize {
        match self {
            ModelKind::Resnet18like => winq_nn::models::ResNetConfig::CONVS,
            ModelKind::Lenet => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Resnet18like => "resnet18like",
            ModelKind::Lenet => "lenet",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Channels, height and width of a model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl std::fmt::Display for InputShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: ModelKind,
    pub mult: f32,
    /// One entry per configurable 3x3 layer (16 for resnet18like, 2 for lenet).
    pub layers: Vec<ConvChoice>,
    pub shortcut_bits: u32,
    /// Interpolation points (`default`, `paper`, `lavin` or a list).
    pub points: String,
    #[serde(default)]
    pub granularity: Granularity,
    pub seed: u64,
    /// The input the model was built for (recorded by train, import and adapt; absent in runs
    /// from before it was recorded, see `TrainConfig::input_shape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputShape>,
    /// What each configurable layer really runs on that input (a Winograd tile larger than a
    /// map falls back to one that fits): recorded with the input, checked when the model is
    /// rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_used: Option<Vec<ConvChoice>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    Adam,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// x0.1 at 60% and 80% of the steps.
    Multistep,
    Cosine,
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub dataset: DatasetKind,
    pub data_dir: PathBuf,
    pub val_fraction: f32,
    pub augment: Augment,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub optimizer: OptimKind,
    pub momentum: f32,
    pub nesterov: bool,
    pub schedule: ScheduleKind,
    pub warmup_epochs: f32,
    pub seed: u64,
    pub threads: usize,
    /// Stop after this many training steps in total (tests and quick checks); None = all.
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Zero-pad the images to this square size before normalisation (`--pad-to`; the authors
    /// feed 28x28 Fashion-MNIST to their 32x32 ResNet18Like this way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_to: Option<usize>,
    /// The per-channel normalisation applied to the images (recorded by training; absent in
    /// runs from before it was recorded: the dataset's customary one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<winq_data::Normalization>,
}

impl TrainConfig {
    /// Every number of the run is usable: finite, in range (the options' names say which).
    pub fn check(&self) -> Result<(), String> {
        let bad = |what: &str, v: String, want: &str| Err(format!("--{what} {v}: {want}"));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(
                "lr",
                self.lr.to_string(),
                "the learning rate must be positive and finite",
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight-decay",
                self.weight_decay.to_string(),
                "must be finite and at least 0",
            );
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad("momentum", self.momentum.to_string(), "must be in [0, 1)");
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return bad(
                "warmup",
                self.warmup_epochs.to_string(),
                "must be finite and at least 0",
            );
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad("val-fraction", self.val_fraction.to_string(), "must be in [0, 1)");
        }
        if self.batch == 0 || self.epochs == 0 {
            return bad(
                "batch/--epochs",
                format!("{}/{}", self.batch, self.epochs),
                "must be at least 1",
            );
        }
        if self.augment.crop_pad > 64 {
            return bad("crop-pad", self.augment.crop_pad.to_string(), "at most 64 pixels");
        }
        if self.pad_to.is_some_and(|p| p > 4096) {
            return bad("pad-to", format!("{:?}", self.pad_to), "at most 4096");
        }
        Ok(())
    }

    /// The normalisation the model's images get: as recorded, else the dataset's customary one.
    pub fn normalization(&self) -> winq_data::Normalization {
        self.normalization
            .clone()
            .unwrap_or_else(|| self.dataset.normalization())
    }

    /// The model's input: as recorded, or for runs from before it was recorded, the dataset's
    /// images after `pad_to`.
    pub fn input_shape(&self) -> InputShape {
        self.model.input.unwrap_or_else(|| {
            let size = self.pad_to.unwrap_or(0).max(self.dataset.image_size());
            InputShape {
                channels: self.dataset.channels(),
                height: size,
                width: size,
            }
        })
    }
}
