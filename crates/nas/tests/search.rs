//! A tiny search on synthetic data: a large λ drives every layer to the cheap candidate, λ = 0
//! does not, and a run is a function of its seed.

use std::sync::Arc;
use winq_data::{synthetic_images, Augment, Dataset, DatasetKind};
use winq_nas::arch::LatencyTerm;
use winq_nas::search::TracePoint;
use winq_nas::supernet::SupernetConfig;
use winq_nas::{build_supernet, search, CandidateSpace, SearchOptions};
use winq_nn::models::{Algo, ConvChoice, ConvSite};
use winq_nn::quant::Granularity;
use winq_nn::Precision;
use winq_train::config::{ModelConfig, ModelKind, OptimKind, ScheduleKind, TrainConfig};
use winq_train::runner::Data;
use winq_transforms::PointSet;

fn dataset(n: usize, seed: u64) -> Arc<Dataset> {
    let (images, labels) = synthetic_images(n, seed);
    Arc::new(Dataset {
        images,
        labels: labels.into_iter().map(u16::from).collect(),
        n,
        c: 1,
        h: 28,
        w: 28,
        classes: 4,
    })
}

fn train_config() -> TrainConfig {
    TrainConfig {
        model: ModelConfig {
            arch: ModelKind::Lenet,
            mult: 0.5,
            layers: vec![winq_nn::models::ConvChoice::IM2ROW_INT8; 2],
            shortcut_bits: 8,
            points: "default".into(),
            granularity: Default::default(),
            seed: 3,
            input: None,
            layers_used: None,
        },
        dataset: DatasetKind::FashionMnist,
        data_dir: "unused".into(),
        val_fraction: 0.2,
        augment: Augment::default(),
        epochs: 3,
        batch: 32,
        lr: 1e-3,
        weight_decay: 4e-5,
        optimizer: OptimKind::Adam,
        momentum: 0.9,
        nesterov: false,
        schedule: ScheduleKind::Constant,
        warmup_epochs: 0.0,
        seed: 3,
        threads: 1,
        max_steps: None,
        pad_to: None,
        normalization: None,
    }
}

/// F4 static is the cheap candidate; the others cost 10x more.
fn latency(_: &ConvSite, c: &ConvChoice) -> winq_nas::Result<f64> {
    Ok(match c.algo {
        Algo::Winograd { m: 4, flex: false } => 0.1,
        _ => 1.0,
    })
}

struct Run {
    /// Final probabilities per layer.
    probs: Vec<Vec<f64>>,
    names: Vec<Vec<String>>,
    trace: Vec<TracePoint>,
    chosen: Vec<usize>,
}

fn run(lambda: f64, latency_term: LatencyTerm) -> Run {
    let cfg = train_config();
    let scfg = SupernetConfig {
        model: ModelKind::Lenet,
        in_channels: 1,
        height: 28,
        width: 28,
        classes: 4,
        mult: 0.5,
        space: CandidateSpace {
            flex: vec![false],
            ..CandidateSpace::default()
        }
        .with_algos(&["im2row".into(), "F2".into(), "F4".into()])
        .unwrap(),
        shortcut: Precision::Int(8),
        points: PointSet::Default,
        granularity: Granularity::default(),
        seed: 3,
    };
    let mut sn = build_supernet(&scfg, &latency).unwrap();
    let data = Data {
        train: dataset(384, 1),
        val: dataset(128, 2),
        test: dataset(64, 3),
    };
    let opts = SearchOptions {
        warmup_epochs: 1,
        lambda,
        latency_term,
        arch_lr: 0.1,
        arch_every: 1,
        log_every: 4,
        ..SearchOptions::default()
    };
    let mut trace = Vec::new();
    let out = search(
        &mut sn.net,
        &mut sn.arch,
        &data,
        &cfg,
        &opts,
        &mut |t| {
            trace.push(t.clone());
            Ok(())
        },
        &mut |_| Ok(()),
    )
    .unwrap();
    assert_eq!(out.weight_steps, 3 * 12);
    assert_eq!(out.arch_steps, 2 * 12, "logit steps only after the warm-up epoch");
    assert_eq!(out.epochs.len(), 3);
    assert!(
        out.epochs[2].val_acc > 0.5,
        "the supernet learns: {:?}",
        out.epochs[2]
    );
    let names = sn
        .arch
        .layers
        .iter()
        .map(|l| l.candidates.iter().map(|c| c.to_string()).collect())
        .collect();
    Run {
        probs: sn.arch.probs(1.0),
        names,
        trace,
        chosen: out.chosen,
    }
}

#[test]
fn a_large_lambda_picks_the_cheap_candidate_and_zero_does_not() {
    let Run {
        probs: fast,
        names,
        trace,
        chosen,
    } = run(50.0, LatencyTerm::Relative);
    assert_eq!(names[0], ["im2row-int8", "F2-static-int8", "F4-static-int8"]);
    let cheap = 2;
    for (l, p) in fast.iter().enumerate() {
        assert!(p[cheap] > 0.9, "layer {l}: {p:?}");
        assert_eq!(chosen[l], cheap);
    }
    // The trajectory starts uniform, stays flat through the warm-up, and its expected
    // latency falls.
    assert!(trace[0].probs[0].iter().all(|p| (p - 1.0 / 3.0).abs() < 1e-12));
    assert!(trace.last().unwrap().expected_ms < 0.5 * trace[0].expected_ms);

    let Run {
        probs: slow,
        trace: trace0,
        ..
    } = run(0.0, LatencyTerm::Relative);
    for (l, p) in slow.iter().enumerate() {
        assert!(p[cheap] < 0.6, "λ = 0 moved layer {l} to the cheap path: {p:?}");
        assert!(
            p.iter().any(|&v| (v - 1.0 / 3.0).abs() > 1e-3),
            "CE moved nothing: {p:?}"
        );
    }
    assert!(trace0.last().unwrap().expected_ms > 0.8 * trace0[0].expected_ms);

    // Deterministic given the seed.
    assert_eq!(fast, run(50.0, LatencyTerm::Relative).probs);

    // A budget the slowest network meets puts no pressure at all: the λ = 0 search exactly;
    // one below every candidate but the cheap one pushes to it.
    let loose = run(50.0, LatencyTerm::Target { target_ms: 5.0 });
    assert_eq!(loose.probs, slow, "a met budget moved the logits");
    let tight = run(50.0, LatencyTerm::Target { target_ms: 0.3 });
    for (l, p) in tight.probs.iter().enumerate() {
        assert!(p[cheap] > 0.9, "layer {l} under a 0.3 ms budget: {p:?}");
    }
}
