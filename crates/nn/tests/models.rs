use winq_nn::gradcheck::random_tensor;
use winq_nn::models::{fitted_tile, resnet18like, Algo, ConvChoice, ResNetConfig};
use winq_nn::{param_count, Layer, Mode, Precision};

fn choice(algo: Algo, p: Precision) -> ConvChoice {
    ConvChoice { algo, precision: p }
}

#[test]
fn parameter_counts_match_the_reference() {
    let im2row = ResNetConfig::uniform(3, 32, 10, 0.5, choice(Algo::Im2row, Precision::Int(8)));
    let (mut net, _) = resnet18like(&im2row).unwrap();
    assert_eq!(param_count(&mut net), 2_797_610);
    let f4 = ResNetConfig::uniform(
        3,
        32,
        10,
        0.5,
        choice(Algo::Winograd { m: 4, flex: true }, Precision::Int(8)),
    );
    let (mut net, _) = resnet18like(&f4).unwrap();
    // + 16 layers × (Aᵀ 4×6 + Bᵀ 6×6 + G 6×3) learned transforms.
    assert_eq!(param_count(&mut net), 2_798_858);
}

#[test]
fn f6_falls_back_to_f4_on_4x4_maps() {
    let cfg = ResNetConfig::uniform(
        3,
        32,
        10,
        0.5,
        choice(Algo::Winograd { m: 6, flex: false }, Precision::Int(8)),
    );
    let (_, placed) = resnet18like(&cfg).unwrap();
    let maps: Vec<usize> = placed.iter().map(|p| p.height).collect();
    assert_eq!(maps, [32, 32, 32, 32, 16, 16, 16, 16, 8, 8, 8, 8, 4, 4, 4, 4]);
    for p in &placed {
        let m = match p.used.algo {
            Algo::Winograd { m, .. } => m,
            Algo::Im2row => panic!("changed algorithm"),
        };
        assert_eq!(m, if p.height == 4 { 4 } else { 6 });
    }
    assert_eq!(fitted_tile(6, 3, 3), 2);
    assert_eq!(fitted_tile(6, 7, 7), 6);
    assert_eq!(fitted_tile(4, 1, 1), 2);
}

#[test]
fn forward_backward_shapes_on_fashion_mnist_input() {
    let cfg = ResNetConfig::uniform(
        1,
        28,
        10,
        0.25,
        choice(Algo::Winograd { m: 4, flex: true }, Precision::Int(8)),
    );
    let (mut net, placed) = resnet18like(&cfg).unwrap();
    assert_eq!(placed.last().unwrap().height, 3);
    let x = random_tensor(&[2, 1, 28, 28], 1);
    let y = net.forward(&x, Mode::Train);
    assert_eq!(y.shape, [2, 10]);
    let dx = net.backward(&random_tensor(&[2, 10], 2));
    assert_eq!(dx.shape, x.shape);
    assert!(dx.data.iter().all(|v| v.is_finite()) && dx.data.iter().any(|v| *v != 0.0));
}

/// Two training steps give bit-identical parameters on every run and for 1 or 2 threads: the
/// basis of bit-identical resume.
#[test]
fn training_steps_are_deterministic_across_runs_and_threads() {
    use winq_nn::{softmax_cross_entropy, zero_grads, Adam, Optimizer};
    let run = || {
        let cfg = ResNetConfig::uniform(
            1,
            12,
            10,
            0.125,
            choice(Algo::Winograd { m: 4, flex: true }, Precision::Int(8)),
        );
        let (mut net, _) = resnet18like(&cfg).unwrap();
        let mut opt = Adam::new(4e-5).unwrap();
        for step in 0..2 {
            let x = random_tensor(&[20, 1, 12, 12], 10 + step);
            let logits = net.forward(&x, Mode::Train);
            let labels: Vec<usize> = (0..20).map(|i| i % 10).collect();
            let (_, g, _) = softmax_cross_entropy(&logits, &labels).unwrap();
            net.backward(&g);
            opt.step(&mut net, 1e-3);
            zero_grads(&mut net);
        }
        let mut all = Vec::new();
        net.visit_params("", &mut |_, p| {
            all.extend(p.value.data.iter().map(|v| v.to_bits()))
        });
        all
    };
    let a = run();
    assert_eq!(a, run());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(run);
    assert_eq!(a, one, "1 thread differs from the default pool");
}

#[test]
fn parameter_names_follow_the_reference_state_dict() {
    let cfg = ResNetConfig::uniform(
        3,
        32,
        10,
        0.5,
        choice(Algo::Winograd { m: 4, flex: true }, Precision::Int(8)),
    );
    let (mut net, _) = resnet18like(&cfg).unwrap();
    let mut names = Vec::new();
    net.visit_params("", &mut |n, _| names.push(n.to_string()));
    for want in [
        "conv1.weight",
        "bn1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.conv1.A_t",
        "layer1.0.bn2.bias",
        "layer2.0.shortcut.0.weight",
        "layer2.0.shortcut.1.weight",
        "layer4.1.conv2.G",
        "linear.weight",
        "linear.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want} in {names:?}");
    }
}

fn err<T>(r: Result<T, winq_nn::ModelError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Unusable numbers are errors that say what is wrong, never a panic (a width multiplier that
/// leaves a layer without channels once divided by zero deep inside a layer).
#[test]
fn unusable_configurations_are_errors() {
    use winq_nn::models::lenet;
    let c = choice(Algo::Im2row, Precision::Int(8));
    for (mult, size, want) in [
        (0.01, 32, "at least 0.015625"),
        (0.0, 32, "positive and finite"),
        (f32::NAN, 32, "positive and finite"),
        (f32::INFINITY, 32, "positive and finite"),
        (-1.0, 32, "positive and finite"),
        (1e9, 32, "at most 64"),
        (0.5, 4, "too small for its poolings"),
    ] {
        let e = err(resnet18like(&ResNetConfig::uniform(1, size, 10, mult, c)));
        assert!(
            e.contains(want) && e.starts_with("ResNet18Like"),
            "mult {mult} size {size}: {e}"
        );
    }
    let lenet_cfg = |mult: f32, size| ResNetConfig {
        convs: vec![c; 2],
        ..ResNetConfig::uniform(1, size, 10, mult, c)
    };
    assert!(lenet(&lenet_cfg(1.0 / 16.0, 28)).is_ok());
    let e = err(lenet(&lenet_cfg(0.01, 28)));
    assert!(e.contains("lenet") && e.contains("at least 0.0625"), "{e}");
    assert!(err(lenet(&lenet_cfg(1.0, 3))).contains("too small"));
    assert!(resnet18like(&ResNetConfig::uniform(0, 32, 10, 0.5, c)).is_err());
}
