//! The deploy file: exact round trips, and every malformed graph or file refused with a message
//! that names the problem (at save, and at load for files written by something else).

use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use winq_ir::{load, save, ModelInfo, Op, QuantConv, QuantWinograd, TensorMut};

fn info(c: usize, hw: usize) -> ModelInfo {
    ModelInfo {
        channels: c,
        height: hw,
        width: hw,
        classes: 10,
        mean: vec![0.5; c],
        std: vec![0.25; c],
        source: "test".into(),
        pad_to: None,
        labels: Vec::new(),
    }
}

fn linear(inputs: usize) -> Op {
    Op::Linear {
        inputs,
        outputs: 10,
        weight: (0..inputs * 10).map(|i| i as f32 * 0.01).collect(),
        bias: vec![0.5; 10],
    }
}

fn conv(c: usize, k: usize, r: usize) -> Op {
    Op::ConvF32 {
        c,
        k,
        r,
        weight: (0..k * c * r * r).map(|i| (i % 7) as f32 - 3.0).collect(),
    }
}

fn bn(n: usize) -> Op {
    Op::batch_norm(vec![0.1; n], vec![1.5; n], vec![-0.2; n])
}

fn qconv(c: usize, k: usize) -> QuantConv {
    qconv_r(c, k, 3)
}

fn qconv_r(c: usize, k: usize, r: usize) -> QuantConv {
    QuantConv {
        c,
        k,
        r,
        weight: (0..k * c * r * r).map(|i| (i * 37 % 256) as u8 as i8).collect(),
        s_w: (0..k).map(|i| 0.01 + i as f64 * 1e-3).collect(),
        s_in: 0.02,
        s_out: 0.05,
    }
}

fn qwino(c: usize, k: usize, m: usize, per_tap: bool) -> QuantWinograd {
    let t = m + 2;
    let taps = if per_tap { t * t } else { 1 };
    QuantWinograd {
        c,
        k,
        m,
        at: (0..m * t).map(|i| (i % 5) as i8 - 2).collect(),
        bt: (0..t * t).map(|i| (i % 3) as i8 - 1).collect(),
        s_at: 0.25,
        s_bt: 0.5,
        u: (0..t * t * k * c).map(|i| (i * 13 % 255) as u8 as i8).collect(),
        s_u: vec![0.003; taps],
        s_in: 0.02,
        s_v: vec![0.04; taps],
        s_m: vec![0.3; taps],
        s_out: 0.1,
    }
}

/// A network with every kind of op: stem, INT8 im2row, INT8 Winograd (per-tap scales), FP32
/// Winograd, a residual block with and without a shortcut, pooling and the classifier.
fn network() -> Op {
    let t = 4;
    Op::Seq {
        ops: vec![
            conv(3, 8, 3),
            bn(8),
            Op::Relu,
            Op::Residual {
                body: vec![
                    Op::ConvI8(qconv(8, 8)),
                    bn(8),
                    Op::Relu,
                    Op::WinogradI8(qwino(8, 8, 4, true)),
                ],
                shortcut: None,
            },
            Op::Relu,
            Op::MaxPool2,
            Op::Residual {
                body: vec![
                    Op::WinogradF32 {
                        c: 8,
                        k: 16,
                        m: 2,
                        at: vec![1.0; 2 * t],
                        bt: vec![0.5; t * t],
                        u: vec![0.25; t * t * 16 * 8],
                    },
                    Op::WinogradI8(qwino(16, 16, 2, false)),
                ],
                shortcut: Some(vec![Op::ConvI8(qconv_r(8, 16, 1))]),
            },
            Op::GlobalAvgPool,
            linear(16),
        ],
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("winq-ir-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn round_trip_is_exact() {
    let d = dir("rt");
    let path = d.join("m.winq");
    let op = network();
    assert_eq!(op.output_shape((3, 12, 12)).unwrap(), (10, 1, 1));
    save(&path, &op, &info(3, 12)).unwrap();
    let (back, i) = load(&path).unwrap();
    assert_eq!(back, op);
    assert_eq!(i, info(3, 12));
    assert!(!d.join("m.winq.tmp").exists(), "the temporary file is renamed");
    std::fs::remove_dir_all(&d).ok();
}

/// A changed tensor byte (which safetensors cannot notice) is caught by the checksum; a model
/// with a non-finite weight is refused at save (it would answer one class for everything).
#[test]
fn flipped_bytes_and_non_finite_weights_are_refused() {
    let d = dir("flip");
    let path = d.join("m.winq");
    save(&path, &network(), &info(3, 12)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut checked = 0;
    for at in [header, header + 1000, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let msg = load(&path).unwrap_err().to_string();
        assert!(msg.contains("checksum"), "byte {at}: {msg}");
        checked += 1;
    }
    assert_eq!(checked, 4);
    let mut nan = network();
    if let Op::Seq { ops } = &mut nan {
        if let Op::ConvF32 { weight, .. } = &mut ops[0] {
            weight[5] = f32::NAN;
        }
    }
    let msg = save(&path, &nan, &info(3, 12)).unwrap_err().to_string();
    assert!(msg.contains("non-finite"), "{msg}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn damaged_files_are_refused_by_name() {
    let d = dir("dmg");
    let path = d.join("m.winq");
    save(&path, &network(), &info(3, 12)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = d.join("bad.winq");
    for (what, bytes) in [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("header only", good[..16].to_vec()),
        ("garbage", vec![7u8; 64]),
        ("empty", vec![]),
    ] {
        std::fs::write(&bad, bytes).unwrap();
        let msg = load(&bad).unwrap_err().to_string();
        assert!(msg.contains("bad.winq"), "{what}: {msg}");
    }
    let msg = load(&d.join("missing.winq")).unwrap_err().to_string();
    assert!(
        msg.contains("cannot read") && msg.contains("missing.winq"),
        "{msg}"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// Writes a file as `save` would but without its check (a file from another writer).
fn write_raw(path: &Path, op: &Op, info: &ModelInfo, format: &str) {
    let mut g = op.clone();
    let bytes: Vec<(String, Vec<u8>, usize, Dtype)> = g
        .tensors_mut()
        .into_iter()
        .map(|(n, t)| match t {
            TensorMut::F32(v) => (
                n,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.len(),
                Dtype::F32,
            ),
            TensorMut::Codes(v) => (n, v.iter().map(|&x| x as u8).collect(), v.len(), Dtype::I8),
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, b, l, dt)| (n.clone(), TensorView::new(*dt, vec![*l], b).unwrap()))
        .collect();
    let (graph, input) = (
        serde_json::to_string(op).unwrap(),
        serde_json::to_string(info).unwrap(),
    );
    let described = [("graph", graph.as_bytes()), ("input", input.as_bytes())];
    let sum = winq_ir::checksum(
        described
            .into_iter()
            .chain(bytes.iter().map(|(n, b, _, _)| (n.as_str(), b.as_slice()))),
    );
    let meta = HashMap::from([
        ("checksum".to_string(), sum),
        ("format".to_string(), format.to_string()),
        ("graph".to_string(), graph.clone()),
        ("input".to_string(), input.clone()),
    ]);
    std::fs::write(path, safetensors::tensor::serialize(views, &Some(meta)).unwrap()).unwrap();
}

#[test]
fn graphs_that_do_not_fit_together_are_refused_at_save_and_at_load() {
    let d = dir("graph");
    let path = d.join("g.winq");
    let mut short_bn = bn(4);
    if let Op::BatchNorm { scale, .. } = &mut short_bn {
        scale.pop();
    }
    let mut zero_scale = qconv(1, 4);
    zero_scale.s_in = 0.0;
    let mut nan_tap = qwino(1, 4, 4, true);
    nan_tap.s_m[7] = f64::NAN;
    let mut wrong_taps = qwino(1, 4, 2, true);
    wrong_taps.s_v.pop();
    for (what, graph, expect) in [
        (
            "BatchNorm length",
            vec![conv(1, 4, 3), bn(5), Op::GlobalAvgPool, linear(4)],
            "expects 5 input channels, gets 4",
        ),
        (
            "BatchNorm tensors",
            vec![conv(1, 4, 3), short_bn, Op::GlobalAvgPool, linear(4)],
            "scale has 3 values, expected 4",
        ),
        (
            "channel chain",
            vec![conv(2, 4, 3), Op::GlobalAvgPool, linear(4)],
            "expects 2 input channels",
        ),
        (
            "even kernel",
            vec![conv(1, 4, 2), Op::GlobalAvgPool, linear(4)],
            "even kernel",
        ),
        (
            "classifier size",
            vec![conv(1, 4, 3), linear(4)],
            "Linear(4 -> 10)",
        ),
        (
            "pooling too far",
            (0..5)
                .map(|_| Op::MaxPool2)
                .chain([Op::GlobalAvgPool, linear(1)])
                .collect(),
            "max-pool of a 1x1",
        ),
        (
            "zero scale",
            vec![Op::ConvI8(zero_scale), Op::GlobalAvgPool, linear(4)],
            "s_in: scale 0",
        ),
        (
            "NaN tap scale",
            vec![Op::WinogradI8(nan_tap), Op::GlobalAvgPool, linear(4)],
            "s_m: scale NaN",
        ),
        (
            "tap count",
            vec![Op::WinogradI8(wrong_taps), Op::GlobalAvgPool, linear(4)],
            "s_v: 15 scales, expected 1 or 16",
        ),
        (
            "tile",
            vec![
                Op::WinogradI8(QuantWinograd {
                    m: 9,
                    ..qwino(1, 4, 4, false)
                }),
                Op::GlobalAvgPool,
                linear(4),
            ],
            "unsupported tile m = 9",
        ),
    ] {
        let op = Op::Seq { ops: graph };
        let msg = save(&path, &op, &info(1, 16)).unwrap_err().to_string();
        assert!(msg.contains(expect), "save, {what}: {msg}");
        assert!(!path.exists(), "{what}: nothing written");
        write_raw(&path, &op, &info(1, 16), winq_ir::FORMAT);
        let msg = load(&path).unwrap_err().to_string();
        // JSON has no NaN: serde writes null, which the reader refuses as a bad graph.
        let expect = if what == "NaN tap scale" {
            "bad graph"
        } else {
            expect
        };
        assert!(
            msg.contains(expect) && msg.contains("g.winq"),
            "load, {what}: {msg}"
        );
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn other_formats_get_a_message_that_says_what_to_do() {
    let d = dir("fmt");
    let path = d.join("f.winq");
    let op = network();
    for (format, expect) in [
        ("winq-checkpoint-1", "training checkpoint"),
        ("winq-deploy-2", "export the model again"),
        ("something", "this winq reads winq-deploy-3"),
    ] {
        write_raw(&path, &op, &info(3, 12), format);
        let msg = load(&path).unwrap_err().to_string();
        assert!(msg.contains(expect), "{format}: {msg}");
    }
    // An unknown operation is named.
    assert!(serde_json::from_str::<Op>(r#"{"op":"conv9d","c":1}"#)
        .unwrap_err()
        .to_string()
        .contains("conv9d"));
    std::fs::remove_dir_all(&d).ok();
}
