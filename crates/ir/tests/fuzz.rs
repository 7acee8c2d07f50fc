//! Mutation fuzzing of the deploy file reader: random truncations, byte flips and header edits
//! of a valid `.winq` must be a clear error or — when the change is one the format cannot see,
//! such as JSON whitespace — load exactly the model that was saved; never a panic or an absurd
//! allocation. The checksum covers the graph, the input description and every tensor.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use winq_ir::{load, save, ModelInfo, Op, QuantConv};

fn model() -> (Op, ModelInfo) {
    let q = QuantConv {
        c: 2,
        k: 4,
        r: 3,
        weight: (0..72).map(|i| (i * 29 % 251) as u8 as i8).collect(),
        s_w: vec![0.01, 0.02, 0.03, 0.04],
        s_in: 0.05,
        s_out: 0.1,
    };
    let op = Op::Seq {
        ops: vec![
            Op::ConvI8(q),
            Op::batch_norm(vec![0.1; 4], vec![1.2; 4], vec![0.0; 4]),
            Op::Relu,
            Op::GlobalAvgPool,
            Op::Linear {
                inputs: 4,
                outputs: 3,
                weight: (0..12).map(|i| i as f32 * 0.25).collect(),
                bias: vec![0.5, -0.5, 0.0],
            },
        ],
    };
    let info = ModelInfo {
        channels: 2,
        height: 6,
        width: 6,
        classes: 3,
        mean: vec![0.5, 0.5],
        std: vec![0.25, 0.25],
        source: "fuzz".into(),
        pad_to: None,
        labels: vec!["a".into(), "b".into(), "c".into()],
    };
    (op, info)
}

#[test]
fn mutated_deploy_files_are_errors_or_the_saved_model() {
    let dir = std::env::temp_dir().join(format!("winq-fuzz-ir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.winq");
    let (op, info) = model();
    save(&path, &op, &info).unwrap();
    let good = std::fs::read(&path).unwrap();
    let strategy = (
        proptest::option::of(0.0f64..1.0),
        proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..5),
        proptest::option::of((0usize..8, any::<u8>())),
    );
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 128,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[3; 32]),
    );
    let (refused, same) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&strategy, |(truncate, flips, header)| {
            let mut b = good.clone();
            if let Some((i, v)) = header {
                b[i] = v; // the 8-byte header length
            }
            for (pos, x) in flips {
                let i = ((pos * b.len() as f64) as usize).min(b.len() - 1);
                b[i] ^= x;
            }
            if let Some(t) = truncate {
                b.truncate((t * b.len() as f64) as usize);
            }
            std::fs::write(&path, &b).unwrap();
            match load(&path) {
                Err(e) => {
                    prop_assert!(e.to_string().contains("m.winq"), "{e}");
                    refused.set(refused.get() + 1);
                }
                Ok((o, i)) => {
                    prop_assert_eq!(&o, &op);
                    prop_assert_eq!(&i, &info);
                    same.set(same.get() + 1);
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(
        refused.get() > 100,
        "{} refused, {} unchanged",
        refused.get(),
        same.get()
    );
    std::fs::remove_dir_all(&dir).ok();
}
