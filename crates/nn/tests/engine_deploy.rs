use winq_ir::{load, save, ModelInfo};
use winq_nn::models::{resnet18like, Algo, ConvChoice, ResNetConfig};
use winq_nn::quant::Granularity;
use winq_nn::{Layer, Mode, Precision};

#[test]
fn round_trip_and_damaged_files() {
    let mut cfg = ResNetConfig::uniform(
        1,
        16,
        10,
        0.125,
        ConvChoice {
            algo: Algo::Winograd { m: 4, flex: true },
            precision: Precision::Int(8),
        },
    );
    cfg.convs[3] = ConvChoice {
        algo: Algo::Im2row,
        precision: Precision::Int(8),
    };
    cfg.convs[5] = ConvChoice {
        algo: Algo::Winograd { m: 2, flex: true },
        precision: Precision::Fp32,
    };
    cfg.granularity = Granularity {
        per_channel_weights: true,
        per_tap: true,
    };
    let (mut net, _) = resnet18like(&cfg).unwrap();
    net.forward(
        &winq_nn::gradcheck::random_tensor(&[4, 1, 16, 16], 1),
        Mode::Train,
    );
    let op = net.export().unwrap();
    let info = ModelInfo {
        channels: 1,
        height: 16,
        width: 16,
        classes: 10,
        mean: vec![0.286],
        std: vec![0.353],
        source: "test".into(),
        pad_to: None,
        labels: Vec::new(),
    };
    let dir = std::env::temp_dir().join(format!("winq-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.winq");
    save(&path, &op, &info).unwrap();
    let (back, info2) = load(&path).unwrap();
    assert!(
        format!("{back:?}").contains("WinogradF32"),
        "an FP32 Winograd layer round-trips"
    );
    if back != op {
        let (a, b) = (format!("{op:?}"), format!("{back:?}"));
        let i = a
            .bytes()
            .zip(b.bytes())
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        panic!(
            "round trip differs at {i}: ...{}... vs ...{}...",
            &a[i.saturating_sub(80)..(i + 40).min(a.len())],
            &b[i.saturating_sub(80)..(i + 40).min(b.len())]
        );
    }
    assert_eq!(info2, info);

    let good = std::fs::read(&path).unwrap();
    let bad = dir.join("bad.winq");
    for (what, bytes) in [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("garbage", vec![7u8; 64]),
        ("empty", vec![]),
    ] {
        std::fs::write(&bad, bytes).unwrap();
        let msg = load(&bad).unwrap_err().to_string();
        assert!(msg.contains("bad.winq"), "{what}: {msg}");
    }
    let msg = load(&dir.join("missing.winq")).unwrap_err().to_string();
    assert!(msg.contains("missing.winq"), "{msg}");

    std::fs::remove_dir_all(&dir).ok();
}

/// The engine runs 8-bit codes: a layer quantized to other bits is refused at export (its
/// codes would clamp to a different range than training's).
#[test]
fn other_bit_widths_are_refused_at_export() {
    use rand::SeedableRng;
    let wt = winq_nn::conv::xavier_uniform(4, 2, 3, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
    for bits in [4, 6, 12] {
        let mut l = winq_nn::Conv2d::new(2, 4, 3, Precision::Int(bits), wt.clone());
        l.forward(&winq_nn::gradcheck::random_tensor(&[1, 2, 5, 5], 2), Mode::Train);
        let msg = Layer::export(&mut l).unwrap_err().to_string();
        assert!(msg.contains(&format!("not INT{bits}")), "{msg}");
    }
}
