//! Mutation fuzzing of the checkpoint and layer-file readers: random truncations, byte flips
//! and header edits must be a clear error or — for a change the format cannot see — read back
//! exactly what was written; never a panic or an absurd allocation. Checkpoints carry a
//! checksum over their run description and tensors.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use winq_nn::Layer;
use winq_train::checkpoint::{self, Checkpoint, RunState};
use winq_train::config::{LayerFile, ModelConfig, ModelKind, OptimKind, ScheduleKind, TrainConfig};
use winq_train::runner;

fn runner_of(cases: u32, seed: u8) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    )
}

fn mutate(good: &[u8], truncate: Option<f64>, flips: &[(f64, u8)], header: Option<(usize, u8)>) -> Vec<u8> {
    let mut b = good.to_vec();
    if let Some((i, v)) = header {
        if i < b.len() {
            b[i] = v;
        }
    }
    for &(pos, x) in flips {
        if !b.is_empty() {
            let i = ((pos * b.len() as f64) as usize).min(b.len() - 1);
            b[i] ^= x;
        }
    }
    if let Some(t) = truncate {
        b.truncate((t * b.len() as f64) as usize);
    }
    b
}

/// (truncate at this fraction, byte flips at fractions, one header byte set).
type Edit = (Option<f64>, Vec<(f64, u8)>, Option<(usize, u8)>);

fn strategy() -> impl Strategy<Value = Edit> {
    (
        proptest::option::of(0.0f64..1.0),
        proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..5),
        proptest::option::of((0usize..8, any::<u8>())),
    )
}

fn config() -> TrainConfig {
    TrainConfig {
        model: ModelConfig {
            arch: ModelKind::Lenet,
            mult: 0.25,
            layers: vec!["F4-flex-int8".parse().unwrap(), "im2row-int8".parse().unwrap()],
            shortcut_bits: 8,
            points: "default".into(),
            granularity: Default::default(),
            seed: 1,
            input: None,
            layers_used: None,
        },
        dataset: winq_data::DatasetKind::FashionMnist,
        data_dir: "/nonexistent".into(),
        val_fraction: 0.1,
        augment: Default::default(),
        epochs: 1,
        batch: 8,
        lr: 1e-3,
        weight_decay: 0.0,
        optimizer: OptimKind::Adam,
        momentum: 0.9,
        nesterov: false,
        schedule: ScheduleKind::Constant,
        warmup_epochs: 0.0,
        seed: 1,
        threads: 1,
        max_steps: None,
        pad_to: None,
        normalization: None,
    }
}

fn params(net: &mut dyn Layer) -> Vec<f32> {
    let mut v = Vec::new();
    net.visit_params("", &mut |_, p| v.extend_from_slice(&p.value.data));
    v
}

#[test]
fn mutated_checkpoints_are_errors_or_the_saved_run() {
    let dir = std::env::temp_dir().join(format!("winq-fuzz-ck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ck.safetensors");
    let cfg = config();
    let mut built = runner::build_model(&cfg, 1, 28, 28, 10).unwrap();
    let state = RunState {
        epoch: 1,
        step: 7,
        best_val_acc: 0.5,
        best_epoch: 1,
    };
    checkpoint::save(&path, &mut built.net, None, &cfg, &state).unwrap();
    let good = std::fs::read(&path).unwrap();
    let want = params(&mut built.net);
    let refused = std::cell::Cell::new(0);
    runner_of(96, 5)
        .run(&strategy(), |(t, flips, header)| {
            std::fs::write(&path, mutate(&good, t, &flips, header)).unwrap();
            match Checkpoint::read(&path) {
                Err(e) => {
                    prop_assert!(e.to_string().contains("ck.safetensors"), "{e}");
                    refused.set(refused.get() + 1);
                }
                Ok(ck) => {
                    prop_assert_eq!(&ck.config, &cfg);
                    prop_assert_eq!(&ck.state, &state);
                    let mut fresh = runner::build_model(&cfg, 1, 28, 28, 10).unwrap();
                    ck.load_model(&mut fresh.net, true).unwrap();
                    prop_assert!(params(&mut fresh.net) == want);
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(refused.get() > 80, "{} refused", refused.get());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mutated_layer_files_are_errors_or_valid_choices() {
    let file = LayerFile {
        layers: vec!["F4-flex-int8".parse().unwrap(), "im2row-fp32".parse().unwrap()],
        shortcut_bits: Some(8),
    };
    let good = serde_json::to_vec(&file).unwrap();
    runner_of(256, 6)
        .run(&strategy(), |(t, flips, header)| {
            let bytes = mutate(&good, t, &flips, header);
            if let Ok(f) = serde_json::from_slice::<LayerFile>(&bytes) {
                for l in &f.layers {
                    // Whatever parsed is a choice winq can name and read back.
                    prop_assert_eq!(l.to_string().parse::<winq_ir::ConvChoice>().ok(), Some(*l));
                }
            }
            Ok(())
        })
        .unwrap();
}
