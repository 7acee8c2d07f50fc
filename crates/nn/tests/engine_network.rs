//! Whole networks: the engine's logits equal the training model's eval forward bit for bit
//! (quantized stages in integers on both sides), and the predictions agree.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use winq_engine::{Act, Net};
use winq_nn::models::{lenet, resnet18like, Algo, ConvChoice, ResNetConfig};
use winq_nn::{
    softmax_cross_entropy, zero_grads, Adam, Layer, Mode, Optimizer, Precision, Sequential, Tensor,
};

fn data(seed: u64, n: usize, size: usize) -> (Tensor, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n).map(|_| rng.gen_range(0..10)).collect();
    let mut x = vec![0.0f32; n * size * size];
    for (i, &l) in labels.iter().enumerate() {
        for p in 0..size * size {
            let stripe = ((p / size + p % size * (l % 3)) / (1 + l / 3)) % 2;
            x[i * size * size + p] = stripe as f32 * 1.5 - 0.5 + rng.gen_range(-0.3..0.3);
        }
    }
    (Tensor::from_vec(&[n, 1, size, size], x), labels)
}

/// Trains a few steps so that BN statistics, observers and weights are non-trivial.
fn settle(net: &mut Sequential, size: usize) {
    let mut opt = Adam::new(4e-5).unwrap();
    for s in 0..12 {
        let (x, y) = data(s, 16, size);
        let logits = net.forward(&x, Mode::Train);
        let (_, g, _) = softmax_cross_entropy(&logits, &y).unwrap();
        net.backward(&g);
        opt.step(net, 3e-3);
        zero_grads(net);
    }
}

fn compare(mut net: Sequential, size: usize, what: &str) {
    settle(&mut net, size);
    let (x, _) = data(99, 32, size);
    let want = net.forward(&x, Mode::Eval);
    let engine = Net::compile(&net.export().unwrap()).unwrap();
    let got = engine.forward(Act {
        n: 32,
        c: 1,
        h: size,
        w: size,
        data: x.data.clone(),
    });
    assert_eq!(got.data.len(), want.data.len());
    // Bit for bit: training's 8-bit stages compute on integer codes like the engine, and
    // every FP32 operation repeats training's expression and summation order.
    let same = got.data.iter().zip(&want.data).filter(|(a, b)| a == b).count();
    assert_eq!(
        same,
        got.data.len(),
        "{what}: {same}/{} logits identical",
        got.data.len()
    );
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .fold(0, |b, (i, x)| if *x > v[b] { i } else { b })
    };
    let agree = (0..32)
        .filter(|&i| argmax(&got.data[i * 10..(i + 1) * 10]) == argmax(&want.data[i * 10..(i + 1) * 10]))
        .count();
    assert_eq!(agree, 32, "{what}: top-1 agrees on {agree}/32");
}

fn cfg(convs: Vec<ConvChoice>, size: usize, mult: f32) -> ResNetConfig {
    ResNetConfig {
        convs,
        ..ResNetConfig::uniform(
            1,
            size,
            10,
            mult,
            ConvChoice {
                algo: Algo::Im2row,
                precision: Precision::Int(8),
            },
        )
    }
}

#[test]
fn lenet_int8_variants_match() {
    for (algo, name) in [
        (Algo::Im2row, "im2row"),
        (Algo::Winograd { m: 2, flex: false }, "F2 static"),
        (Algo::Winograd { m: 4, flex: true }, "F4 flex"),
        (Algo::Winograd { m: 6, flex: false }, "F6 static"),
    ] {
        let c = ConvChoice {
            algo,
            precision: Precision::Int(8),
        };
        let (net, _) = lenet(&cfg(vec![c; 2], 28, 1.0)).unwrap();
        compare(net, 28, name);
    }
}

#[test]
fn resnet18like_mixed_layers_match() {
    let choices = [
        ConvChoice {
            algo: Algo::Winograd { m: 4, flex: true },
            precision: Precision::Int(8),
        },
        ConvChoice {
            algo: Algo::Im2row,
            precision: Precision::Int(8),
        },
        ConvChoice {
            algo: Algo::Winograd { m: 2, flex: false },
            precision: Precision::Int(8),
        },
        ConvChoice {
            algo: Algo::Im2row,
            precision: Precision::Fp32,
        },
        ConvChoice {
            algo: Algo::Winograd { m: 4, flex: true },
            precision: Precision::Fp32,
        },
    ];
    let convs = (0..16).map(|i| choices[i % 5]).collect();
    let (net, _) = resnet18like(&cfg(convs, 16, 0.125)).unwrap();
    compare(net, 16, "resnet18like mixed");
}

/// A batch split over threads gives the same outputs as one thread.
#[test]
fn batch_split_over_threads_is_exact() {
    let c = ConvChoice {
        algo: Algo::Winograd { m: 4, flex: false },
        precision: Precision::Int(8),
    };
    let (mut net, _) = lenet(&cfg(vec![c; 2], 28, 1.0)).unwrap();
    settle(&mut net, 28);
    let engine = Net::compile(&net.export().unwrap()).unwrap();
    let (x, _) = data(5, 7, 28);
    let act = Act {
        n: 7,
        c: 1,
        h: 28,
        w: 28,
        data: x.data,
    };
    let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    let one = pool(1).install(|| engine.forward(act.clone()));
    let two = pool(2).install(|| engine.forward(act.clone()));
    let three = pool(3).install(|| engine.forward(act.clone()));
    assert_eq!(one, two);
    assert_eq!(one, three);
}

/// Images in parallel whose layers also split over threads (nested parallelism: a thread
/// waiting for a layer's chunks may start another image) give the one-thread result.
#[test]
fn nested_parallel_images_and_layers_are_exact() {
    let choices = [
        ConvChoice {
            algo: Algo::Winograd { m: 4, flex: false },
            precision: Precision::Int(8),
        },
        ConvChoice {
            algo: Algo::Im2row,
            precision: Precision::Int(8),
        },
    ];
    let convs = (0..16).map(|i| choices[i % 2]).collect();
    let (mut net, _) = resnet18like(&cfg(convs, 32, 0.25)).unwrap();
    settle(&mut net, 32);
    let engine = Net::compile(&net.export().unwrap()).unwrap();
    let (x, _) = data(6, 48, 32);
    let act = Act {
        n: 48,
        c: 1,
        h: 32,
        w: 32,
        data: x.data,
    };
    let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    let one = pool(1).install(|| engine.forward(act.clone()));
    for threads in [2, 5, 16] {
        for _ in 0..4 {
            assert_eq!(
                pool(threads).install(|| engine.forward(act.clone())),
                one,
                "{threads} threads"
            );
        }
    }
}

/// Batch-1 forwards from outside the pool (handed to the pool, layers split over its threads)
/// repeat exactly, and match a one-thread pool.
#[test]
fn batch_one_over_the_pool_is_exact() {
    let c = ConvChoice {
        algo: Algo::Winograd { m: 2, flex: false },
        precision: Precision::Int(8),
    };
    let (mut net, _) = resnet18like(&cfg(vec![c; 16], 32, 0.25)).unwrap();
    settle(&mut net, 32);
    let engine = Net::compile(&net.export().unwrap()).unwrap();
    let (x, _) = data(7, 1, 32);
    let act = Act {
        n: 1,
        c: 1,
        h: 32,
        w: 32,
        data: x.data,
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let one = pool.install(|| engine.forward(act.clone()));
    for _ in 0..30 {
        assert_eq!(engine.forward(act.clone()), one);
    }
}
