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
