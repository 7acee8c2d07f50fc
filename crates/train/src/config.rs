//! What a run is: model, data, optimizer, schedule. Saved next to every checkpoint so that
//! `eval`, `adapt` and `--resume` rebuild exactly the same network.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use winq_data::{Augment, DatasetKind};
use winq_nn::models::{Algo, ConvChoice};
use winq_nn::quant::Granularity;
use winq_nn::Precision;

/// One 3x3 layer as users write it in a layer file: {"algo": "F4", "flex": true, "bits": 8}.
/// `bits` 32 (or "fp32") means unquantized FP32.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    pub algo: String,
    #[serde(default)]
    pub flex: bool,
    pub bits: u32,
}

impl LayerSpec {
    pub fn to_choice(&self) -> Result<ConvChoice, String> {
        let precision = match self.bits {
            32 => Precision::Fp32,
            2..=16 => Precision::Int(self.bits),
            b => return Err(format!("bits must be 2..=16 or 32 (FP32), got {b}")),
        };
        let a = self.algo.trim().to_ascii_lowercase();
        let algo = if a == "im2row" {
            Algo::Im2row
        } else if let Some(m) = a
            .strip_prefix('f')
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|&m| m >= 1)
        {
            Algo::Winograd { m, flex: self.flex }
        } else {
            return Err(format!(
                "unknown algorithm '{}': use im2row, F2, F4, F6 (or any F<m>)",
                self.algo
            ));
        };
        Ok(ConvChoice { algo, precision })
    }

    pub fn from_choice(c: &ConvChoice) -> LayerSpec {
        let bits = match c.precision {
            Precision::Fp32 => 32,
            Precision::Int(b) => b,
        };
        match c.algo {
            Algo::Im2row => LayerSpec {
                algo: "im2row".into(),
                flex: false,
                bits,
            },
            Algo::Winograd { m, flex } => LayerSpec {
                algo: format!("F{m}"),
                flex,
                bits,
            },
        }
    }
}

/// The per-layer configuration file (what wiNAS writes and `winq train --layers` reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerFile {
    pub layers: Vec<LayerSpec>,
    /// Precision of the 1x1 shortcut convolutions; defaults to the first layer's.
    #[serde(default)]
    pub shortcut_bits: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Resnet18like,
    Lenet,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub mult: f32,
    /// One entry per configurable 3x3 layer (16 for resnet18like, 2 for lenet).
    pub layers: Vec<LayerSpec>,
    pub shortcut_bits: u32,
    /// Interpolation points (`default`, `paper`, `lavin` or a list).
    pub points: String,
    #[serde(default)]
    pub granularity: Granularity,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    Adam,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
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
}
