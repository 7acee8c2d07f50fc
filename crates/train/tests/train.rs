//! End-to-end training on a small synthetic dataset in Fashion-MNIST's file format: learning,
//! checkpoints, bit-identical resume, divergence handling and the import of the authors'
//! state_dicts.

use std::path::{Path, PathBuf};
use winq_data::{synthetic_images, write_idx, Augment, DatasetKind, Split};
use winq_nn::models::{Algo, ConvChoice};
use winq_nn::Precision;
use winq_train::checkpoint::Checkpoint;
use winq_train::config::{ModelConfig, ModelKind, OptimKind, ScheduleKind, TrainConfig};
use winq_train::runner::{self, Start};

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("winq-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dataset(dir: &Path, train: usize, test: usize) {
    let (img, lab) = synthetic_images(train, 1);
    write_idx(dir, Split::Train, &img, &lab, 28, 28).unwrap();
    let (img, lab) = synthetic_images(test, 2);
    write_idx(dir, Split::Test, &img, &lab, 28, 28).unwrap();
}

fn config(data: &Path, algo: &str, flex: bool, bits: u32, epochs: usize) -> TrainConfig {
    TrainConfig {
        model: ModelConfig {
            arch: ModelKind::Lenet,
            mult: 1.0,
            layers: vec![
                ConvChoice {
                    algo: Algo::parse(algo, flex).unwrap(),
                    precision: Precision::from_bits(bits).unwrap(),
                };
                2
            ],
            shortcut_bits: bits,
            points: "default".into(),
            granularity: Default::default(),
            seed: 3,
            input: None,
            layers_used: None,
        },
        dataset: DatasetKind::FashionMnist,
        data_dir: data.to_path_buf(),
        val_fraction: 0.2,
        augment: Augment {
            crop_pad: 2,
            hflip: true,
        },
        epochs,
        batch: 32,
        lr: 3e-3,
        weight_decay: 4e-5,
        optimizer: OptimKind::Adam,
        momentum: 0.9,
        nesterov: false,
        schedule: ScheduleKind::Multistep,
        warmup_epochs: 0.0,
        seed: 5,
        threads: 2,
        max_steps: None,
        pad_to: None,
        normalization: None,
    }
}

#[test]
fn learns_and_checkpoints_reload_exactly() {
    let dir = temp("learn");
    dataset(&dir.join("data"), 480, 160);
    for (algo, flex, bits) in [("im2row", false, 32), ("F4", true, 8)] {
        let out = dir.join(format!("run-{algo}"));
        let cfg = config(&dir.join("data"), algo, flex, bits, 3);
        let o = runner::train(cfg.clone(), &out, Start::Fresh, true).unwrap();
        assert!(o.test_acc_last > 0.9, "{algo}: test accuracy {}", o.test_acc_last);
        let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 3);
        // The last checkpoint reproduces the final test accuracy in a fresh model.
        let ck = Checkpoint::read(&out.join("last.safetensors")).unwrap();
        assert_eq!(ck.state.epoch, 3);
        let test = std::sync::Arc::new(winq_data::load(cfg.dataset, &cfg.data_dir, Split::Test).unwrap());
        let mut built = runner::build_model(&ck.config, 1, 28, 28, 10).unwrap();
        ck.load_model(&mut built.net, true).unwrap();
        let (loss, acc) = runner::evaluate(&mut built.net, &ck.config, &test).unwrap();
        assert_eq!(acc, o.test_acc_last);
        assert_eq!(loss, o.test_loss_last);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resume_is_bit_identical() {
    let dir = temp("resume");
    dataset(&dir.join("data"), 320, 64);
    let cfg = config(&dir.join("data"), "F4", true, 8, 3);
    runner::train(cfg.clone(), &dir.join("a"), Start::Fresh, true).unwrap();
    // Same run in two parts: stopped after the first epoch (8 steps), then resumed.
    runner::train(
        TrainConfig {
            max_steps: Some(8),
            ..cfg.clone()
        },
        &dir.join("b"),
        Start::Fresh,
        true,
    )
    .unwrap();
    runner::train(cfg.clone(), &dir.join("b"), Start::Resume { epochs: None }, true).unwrap();
    let read = |p: &str| std::fs::read_to_string(dir.join(p).join("metrics.jsonl")).unwrap();
    let strip = |s: String| {
        s.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                // Wall-clock fields differ between runs; everything else must not.
                for k in ["time_s", "img_per_s"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(read("a")), strip(read("b")));
    let ca = winq_train::checkpoint::contents(&dir.join("a/last.safetensors")).unwrap();
    let cb = winq_train::checkpoint::contents(&dir.join("b/last.safetensors")).unwrap();
    for (n, v) in &ca.0 {
        assert!(cb.0.get(n) == Some(v), "tensor {n} differs after resume");
    }
    assert_eq!(ca.0.len(), cb.0.len());
    assert_eq!(ca.1, cb.1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn divergence_stops_with_a_message_and_keeps_checkpoints() {
    let dir = temp("nan");
    dataset(&dir.join("data"), 128, 32);
    let out = dir.join("run");
    runner::train(
        config(&dir.join("data"), "im2row", false, 32, 1),
        &out,
        Start::Fresh,
        true,
    )
    .unwrap();
    // Rewrite the epoch-1 checkpoint with a learning rate that blows up, then resume: the
    // second epoch diverges.
    let last = out.join("last.safetensors");
    let ck = Checkpoint::read(&last).unwrap();
    let mut cfg = ck.config.clone();
    cfg.lr = 1e30;
    cfg.epochs = 2;
    let mut built = runner::build_model(&cfg, 1, 28, 28, 10).unwrap();
    ck.load_model(&mut built.net, true).unwrap();
    winq_train::checkpoint::save(&last, &mut built.net, None, &cfg, &ck.state).unwrap();
    let before = std::fs::read(&last).unwrap();
    let err = runner::train(cfg, &out, Start::Resume { epochs: None }, true).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("training diverged") && msg.contains("epoch 2") && msg.contains("last good: epoch 1"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&last).unwrap(),
        before,
        "the last good checkpoint was touched"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_fresh_run_refuses_to_overwrite_an_existing_one() {
    let dir = temp("overwrite");
    dataset(&dir.join("data"), 64, 16);
    let cfg = config(&dir.join("data"), "im2row", false, 32, 1);
    runner::train(cfg.clone(), &dir.join("run"), Start::Fresh, true).unwrap();
    let msg = format!(
        "{:#}",
        runner::train(cfg, &dir.join("run"), Start::Fresh, true).unwrap_err()
    );
    assert!(msg.contains("--resume"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn damaged_checkpoints_are_clear_errors() {
    let dir = temp("damaged");
    dataset(&dir.join("data"), 64, 16);
    let out = dir.join("run");
    runner::train(
        config(&dir.join("data"), "F2", false, 8, 1),
        &out,
        Start::Fresh,
        true,
    )
    .unwrap();
    let good = std::fs::read(out.join("last.safetensors")).unwrap();
    let bad = dir.join("bad.safetensors");
    // One flipped bit inside a tensor leaves a well-formed safetensors file: the checksum
    // catches it.
    let mut flipped = good.clone();
    let at = good.len() - 7;
    flipped[at] ^= 0x04;
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"not a checkpoint at all".to_vec()),
        ("empty", Vec::new()),
        ("flipped", flipped),
    ] {
        std::fs::write(&bad, &bytes).unwrap();
        let err = Checkpoint::read(&bad)
            .err()
            .unwrap_or_else(|| panic!("{what} checkpoint was accepted"));
        let msg = format!("{err:#}");
        assert!(msg.contains("bad.safetensors"), "{what}: {msg}");
        if what == "flipped" {
            assert!(msg.contains("checksum"), "{msg}");
        }
    }
    // A checkpoint of another model does not load into this one.
    let ck = Checkpoint::read(&out.join("last.safetensors")).unwrap();
    let mut other =
        runner::build_model(&config(&dir.join("data"), "F2", false, 8, 1), 1, 28, 28, 10).unwrap();
    ck.load_model(&mut other.net, true).unwrap();
    let mut wider = config(&dir.join("data"), "F2", false, 8, 1);
    wider.model.mult = 2.0;
    let mut w = runner::build_model(&wider, 1, 28, 28, 10).unwrap();
    let msg = format!("{:#}", ck.load_model(&mut w.net, true).unwrap_err());
    assert!(msg.contains("shape"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Writes a network's tensors as the authors' state_dict would hold them: our names mapped
/// back, Winograd-aware weights as [K, C, 1, 3, 3], transforms 2-D (A_t [m, t], B_t [t, t],
/// G [t, 3]), quantizer ranges f32 [1], plus a BatchNorm counter they save. `value` gives each
/// tensor's values from ours (name, values).
fn write_theirs(
    net: &mut winq_nn::Sequential,
    path: &Path,
    value: &mut dyn FnMut(&str, &[f32]) -> Vec<f32>,
) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    use safetensors::tensor::{Dtype, TensorView};
    use winq_nn::Layer;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |name: &str, shape: Vec<usize>, v: Vec<f32>| {
        tensors.push((
            winq_train::import::reference_name(name),
            shape,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ))
    };
    let transform_shape = |name: &str, n: usize| -> Option<Vec<usize>> {
        let m = ((1.0 + n as f64).sqrt() - 1.0).round() as usize;
        let t = (n as f64).sqrt().round() as usize;
        if name.ends_with("A_t") {
            Some(vec![m, m + 2])
        } else if name.ends_with("B_t") {
            Some(vec![t, t])
        } else if name.ends_with(".G") {
            Some(vec![n / 3, 3])
        } else {
            None
        }
    };
    net.visit_params("", &mut |name, p| {
        let mut shape = p.value.shape.clone();
        if name.starts_with("layer") && name.contains(".conv") && name.ends_with("weight") {
            shape.insert(2, 1);
        }
        let shape = transform_shape(name, p.value.len()).unwrap_or(shape);
        push(name, shape, value(name, &p.value.data));
    });
    net.visit_buffers("", &mut |name, b| {
        let v: Vec<f32> = match b {
            winq_nn::Buffer::F32(v) => v.to_vec(),
            winq_nn::Buffer::F64(v) => v.iter().map(|&x| x as f32).collect(),
        };
        let shape = transform_shape(name, v.len()).unwrap_or(vec![v.len()]);
        push(name, shape, value(name, &v));
    });
    tensors.push((
        "bn1.num_batches_tracked".into(),
        vec![1],
        0f32.to_le_bytes().to_vec(),
    ));
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, &None).unwrap()).unwrap();
    tensors
}

/// A synthetic state_dict with the authors' names and shapes imports into a winq checkpoint
/// that holds the same values; the model's 32x32 input is recorded (Fashion-MNIST padded to
/// it); transforms that are not the paper's make the import flex, and refuse `--static`.
#[test]
fn imports_the_reference_state_dict() {
    use safetensors::tensor::{Dtype, TensorView};
    let dir = temp("import");
    let mut cfg = config(&dir, "F4", false, 8, 1);
    cfg.model.arch = ModelKind::Resnet18like;
    cfg.model.mult = 0.125;
    cfg.model.layers = vec!["F4-static-int8".parse::<ConvChoice>().unwrap(); 16];
    let mut built = runner::build_model(&cfg, 1, 32, 32, 10).unwrap();
    let mut counter = 0.0f32;
    let src = dir.join("theirs.safetensors");
    let tensors = write_theirs(&mut built.net, &src, &mut |_, v| {
        v.iter()
            .map(|_| {
                counter += 0.001;
                counter
            })
            .collect()
    });
    assert!(tensors
        .iter()
        .any(|t| t.0 == "layer1.0.conv1.Quantize_input_Winograd.min_val"));
    assert!(tensors
        .iter()
        .any(|t| t.0 == "layer1.0.conv1.weight" && t.1 == [8, 32, 1, 3, 3]));
    assert!(
        tensors
            .iter()
            .any(|t| t.0 == "layer4.1.conv2.A_t" && t.1 == [4, 6]),
        "F4 at 4x4 maps"
    );

    let dst = dir.join("ours.safetensors");
    let imported = winq_train::import::import(&src, &dst, &cfg, None, 8).unwrap();
    assert!(imported.unused.is_empty(), "unused: {:?}", imported.unused);
    let ck = Checkpoint::read(&dst).unwrap();
    assert_eq!(ck.config.model.mult, 0.125);
    // Counter values are not the paper's transforms: learned, so flex.
    assert_eq!(ck.config.model.layers[0].to_string(), "F4-flex-int8");
    assert_eq!(ck.config.input_shape().to_string(), "1x32x32");
    assert_eq!(ck.config.pad_to, Some(32));
    let mut fresh = runner::build_model(&ck.config, 1, 32, 32, 10).unwrap();
    ck.load_model(&mut fresh.net, true).unwrap();
    let mut first = Vec::new();
    winq_nn::Layer::visit_params(&mut fresh.net, "", &mut |_, p| {
        first.extend_from_slice(&p.value.data[..1])
    });
    assert_eq!(first[0], 0.001);
    let msg = winq_train::import::import(&src, &dst, &cfg, Some(false), 8)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("learned") && msg.contains("--flex"), "{msg}");
    // A state_dict missing a tensor is refused with its name.
    let partial: Vec<(String, TensorView)> = tensors
        .iter()
        .filter(|t| t.0 != "layer3.1.bn2.running_var")
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(&src, safetensors::tensor::serialize(partial, &None).unwrap()).unwrap();
    let msg = winq_train::import::import(&src, &dst, &cfg, None, 8)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("layer3.1.bn2.running_var"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The authors' 1-channel 32x32 F4 flex ResNet18Like (synthetic, trained transforms) imports
/// with its mode inferred, exports with its 32x32 input and padding recorded, and the engine
/// run on the 32x32 (padded Fashion-MNIST) test images gives the training model's logits bit
/// for bit; a static import of the same model's static twin is recognised as static.
#[test]
fn authors_32x32_flex_model_imports_exports_and_runs() {
    use winq_nn::{Layer, Mode, Tensor};
    let dir = temp("import-flex");
    dataset(&dir.join("data"), 64, 40);
    let mut cfg = config(&dir.join("data"), "F4", true, 8, 1);
    cfg.model.arch = ModelKind::Resnet18like;
    cfg.model.mult = 0.125;
    cfg.model.layers = vec!["F4-flex-int8".parse::<ConvChoice>().unwrap(); 16];
    cfg.model.points = "paper".into();
    let mut theirs = runner::build_model(&cfg, 1, 32, 32, 10).unwrap();
    // "Trained": quantizers hold real ranges, transforms moved away from the paper's.
    let x = Tensor::from_vec(
        &[4, 1, 32, 32],
        (0..4 * 1024)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect(),
    );
    theirs.net.forward(&x, Mode::Train);
    let src = dir.join("theirs.safetensors");
    let mut k = 0;
    write_theirs(&mut theirs.net, &src, &mut |name, v| {
        let learned = name.ends_with("A_t") || name.ends_with("B_t") || name.ends_with(".G");
        v.iter()
            .map(|&x| {
                k += 1;
                if learned {
                    x + 0.01 * ((k % 7) as f32 - 3.0)
                } else {
                    x
                }
            })
            .collect()
    });
    let mut base = cfg.clone();
    base.model.layers = vec![ConvChoice::IM2ROW_INT8; 16]; // replaced by what the file holds
    let dst = dir.join("ours.safetensors");
    let imported = winq_train::import::import(&src, &dst, &base, None, 8).unwrap();
    assert!(imported.unused.is_empty(), "{:?}", imported.unused);
    assert!(imported
        .config
        .model
        .layers
        .iter()
        .all(|l| l.to_string() == "F4-flex-int8"));

    let (op, info, cfg2) = winq_train::deploy::export_checkpoint(&dst).unwrap();
    assert_eq!(
        (info.channels, info.height, info.width, info.pad_to),
        (1, 32, 32, Some(32))
    );
    let test = runner::load_split(&cfg2, Split::Test).unwrap();
    runner::check_input(&cfg2, &test).unwrap();
    assert_eq!((test.h, test.w), (32, 32));
    let xs = cfg2.normalization().apply(&test.images, 1, 32 * 32);
    let engine = winq_engine::Net::compile(&op).unwrap();
    let got = engine
        .forward(winq_engine::Act {
            n: test.n,
            c: 1,
            h: 32,
            w: 32,
            data: xs.clone(),
        })
        .data;
    let ck = Checkpoint::read(&dst).unwrap();
    let mut ours = runner::build_model(&cfg2, 1, 32, 32, 10).unwrap();
    ck.load_model(&mut ours.net, true).unwrap();
    let want = ours
        .net
        .forward(&Tensor::from_vec(&[test.n, 1, 32, 32], xs), Mode::Eval)
        .data;
    assert_eq!(got, want, "engine = training on the imported model");
    assert!(want.iter().any(|&v| v != want[0]));
    // The 28x28 images without padding are refused with the fix named.
    let mut unpadded = cfg2.clone();
    unpadded.pad_to = None;
    let raw = runner::load_split(&unpadded, Split::Test).unwrap();
    let msg = runner::check_input(&unpadded, &raw).unwrap_err().to_string();
    assert!(msg.contains("1x32x32") && msg.contains("--pad-to 32"), "{msg}");

    // The same network with the paper's transforms stored (a static model) imports as static.
    let mut stat = runner::build_model(&cfg, 1, 32, 32, 10).unwrap();
    stat.net.forward(&x, Mode::Train);
    write_theirs(&mut stat.net, &src, &mut |_, v| v.to_vec());
    let imported = winq_train::import::import(&src, &dst, &base, None, 8).unwrap();
    assert!(imported
        .config
        .model
        .layers
        .iter()
        .all(|l| l.to_string() == "F4-static-int8"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Adapt: a Winograd-aware model initialised from an im2row checkpoint starts with its weights,
/// BN statistics and input/weight/output quantizer ranges, and fresh transforms.
#[test]
fn adapt_copies_shared_tensors_and_starts_transforms_fresh() {
    let dir = temp("adapt");
    dataset(&dir.join("data"), 128, 32);
    let src = dir.join("i2r");
    runner::train(
        config(&dir.join("data"), "im2row", false, 8, 1),
        &src,
        Start::Fresh,
        true,
    )
    .unwrap();
    let mut wa = config(&dir.join("data"), "F4", true, 8, 1);
    wa.max_steps = Some(0); // initialise and checkpoint without training
    let out = dir.join("wa");
    runner::train(wa, &out, Start::InitFrom(src.join("last.safetensors")), true).unwrap();
    let (a, _) = winq_train::checkpoint::contents(&src.join("last.safetensors")).unwrap();
    let (b, _) = winq_train::checkpoint::contents(&out.join("last.safetensors")).unwrap();
    for k in [
        "param/conv2.weight",
        "param/conv3.weight",
        "buffer/bn2.running_mean",
        "buffer/conv2.q_input.max",
    ] {
        assert!(
            a.contains_key(k) && a.get(k) == b.get(k),
            "{k} was not carried over"
        );
    }
    assert!(b.contains_key("param/conv2.A_t") && !a.contains_key("param/conv2.A_t"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A run directory is locked while a run uses it: a second run on it is refused with a clear
/// error (before, both exited 0 and their metrics and checkpoints interleaved), and the lock
/// goes with the run.
#[test]
fn a_run_directory_is_locked_while_in_use() {
    let dir = temp("lock");
    dataset(&dir.join("data"), 64, 16);
    let out = dir.join("run");
    let held = runner::lock_run_dir(&out).unwrap();
    // Temporaries of an interrupted write go when a run takes the directory; others stay.
    std::fs::write(out.join(".last.safetensors.tmp.12345"), b"half").unwrap();
    std::fs::write(out.join(".keep.tmp.notapid"), b"x").unwrap();
    let cfg = config(&dir.join("data"), "im2row", false, 8, 1);
    let e = runner::train(cfg.clone(), &out, Start::Fresh, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("in use by another winq run"), "{e}");
    assert!(!out.join("last.safetensors").exists() && !out.join("metrics.jsonl").exists());
    drop(held);
    runner::train(cfg, &out, Start::Fresh, true).unwrap();
    assert!(out.join("last.safetensors").exists());
    assert!(!out.join(".last.safetensors.tmp.12345").exists());
    assert!(out.join(".keep.tmp.notapid").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// --resume continues the saved run: its own epoch count unless one is given explicitly (the
/// command line's default used to replace it, so a 3-epoch run stopped after one epoch
/// "finished" at whatever the resuming command said); an explicit count below the completed
/// epochs is refused.
#[test]
fn resume_keeps_the_saved_length_unless_told() {
    let dir = temp("resume-len");
    dataset(&dir.join("data"), 96, 16);
    let cfg = config(&dir.join("data"), "im2row", false, 8, 3);
    let steps_per_epoch = 2; // 86 train images (10% validation), batch 64
    let out = dir.join("run");
    let first = TrainConfig {
        max_steps: Some(steps_per_epoch),
        ..cfg.clone()
    };
    runner::train(first, &out, Start::Fresh, true).unwrap();
    let epochs_done = |p: &Path| {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(epochs_done(&out), 1);
    // The resuming command says 1 epoch (as a default would): the saved run's 3 win.
    let resumed = TrainConfig {
        epochs: 1,
        ..cfg.clone()
    };
    runner::train(resumed.clone(), &out, Start::Resume { epochs: None }, true).unwrap();
    assert_eq!(epochs_done(&out), 3);
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved.epochs, 3);
    // Explicitly longer: continues to 4; explicitly shorter than done: refused.
    runner::train(resumed.clone(), &out, Start::Resume { epochs: Some(4) }, true).unwrap();
    assert_eq!(epochs_done(&out), 4);
    let e = runner::train(resumed, &out, Start::Resume { epochs: Some(2) }, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already completed 4 epochs"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every numeric option of a run is checked before anything runs: a clear error naming the
/// option, no panic and no run directory touched.
#[test]
fn unusable_numbers_are_refused_by_name() {
    let dir = temp("numbers");
    let base = config(&dir.join("data"), "im2row", false, 8, 1);
    let cases: Vec<(TrainConfig, &str)> = vec![
        (
            TrainConfig {
                lr: f32::NAN,
                ..base.clone()
            },
            "--lr",
        ),
        (
            TrainConfig {
                lr: 0.0,
                ..base.clone()
            },
            "--lr",
        ),
        (
            TrainConfig {
                weight_decay: -1.0,
                ..base.clone()
            },
            "--weight-decay",
        ),
        (
            TrainConfig {
                momentum: 1.0,
                ..base.clone()
            },
            "--momentum",
        ),
        (
            TrainConfig {
                warmup_epochs: f32::INFINITY,
                ..base.clone()
            },
            "--warmup",
        ),
        (
            TrainConfig {
                val_fraction: 1.0,
                ..base.clone()
            },
            "--val-fraction",
        ),
        (
            TrainConfig {
                batch: 0,
                ..base.clone()
            },
            "--batch",
        ),
        (
            TrainConfig {
                pad_to: Some(100_000),
                normalization: None,
                ..base.clone()
            },
            "--pad-to",
        ),
    ];
    for (cfg, want) in cases {
        let out = dir.join("run");
        let e = runner::train(cfg, &out, Start::Fresh, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(!out.exists(), "{want}: nothing created");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A run records what each layer really runs on its input and the normalisation of its
/// images; a model rebuilt for another input size, where a tile would change, is refused.
#[test]
fn runs_record_each_layers_tile_and_the_normalisation() {
    let dir = temp("tiles");
    dataset(&dir.join("data"), 64, 16);
    let out = dir.join("run");
    let cfg = TrainConfig {
        max_steps: Some(1),
        ..config(&dir.join("data"), "F6", false, 8, 1)
    };
    runner::train(cfg, &out, Start::Fresh, true).unwrap();
    let ck = Checkpoint::read(&out.join("last.safetensors")).unwrap();
    let used: Vec<String> = ck
        .config
        .model
        .layers_used
        .clone()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(used, ["F6-static-int8", "F6-static-int8"], "maps 14 and 7 fit F6");
    assert_eq!(
        ck.config.normalization,
        Some(DatasetKind::FashionMnist.normalization())
    );
    assert!(runner::build_model(&ck.config, 1, 28, 28, 10).is_ok());
    // At 16x16 the second map is 4x4: F6 would become F4 — a different network.
    let e = runner::build_model(&ck.config, 1, 16, 16, 10)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("would run F4-static-int8") && e.contains("trained running F6-static-int8"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
