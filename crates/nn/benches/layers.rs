//! Single-layer training-step benches (forward + backward), ResNet18Like stage-1 and stage-3
//! shapes at mult 0.5, batch 16: `cargo bench -p winq-nn --bench layers`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use winq_nn::conv::xavier_uniform;
use winq_nn::gradcheck::random_tensor;
use winq_nn::{BatchNorm2d, Conv2d, Layer, Mode, Precision, WinogradConv2d};
use winq_transforms::PointSet;

fn step(l: &mut dyn Layer, x: &winq_nn::Tensor, g: &winq_nn::Tensor) {
    let y = l.forward(x, Mode::Train);
    std::hint::black_box(&y);
    std::hint::black_box(l.backward(g));
}

fn layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    for (ch, size) in [(32usize, 32usize), (128, 8)] {
        let x = random_tensor(&[16, ch, size, size], 1);
        let g = random_tensor(&[16, ch, size, size], 2);
        let w = || xavier_uniform(ch, ch, 3, &mut ChaCha8Rng::seed_from_u64(3));
        let shape = format!("{ch}x{size}x{size}");
        for p in [Precision::Fp32, Precision::Int(8)] {
            let mut conv = Conv2d::new(ch, ch, 3, p, w());
            group.bench_function(BenchmarkId::new(format!("im2row-{p}"), &shape), |b| {
                b.iter(|| step(&mut conv, &x, &g))
            });
        }
        for m in [2, 4, 6] {
            for flex in [false, true] {
                let mut l =
                    WinogradConv2d::new(ch, ch, m, PointSet::Default, flex, Precision::Int(8), w()).unwrap();
                let name = format!("F{m}-{}-INT8", if flex { "flex" } else { "static" });
                group.bench_function(BenchmarkId::new(name, &shape), |b| {
                    b.iter(|| step(&mut l, &x, &g))
                });
            }
        }
        let mut bn = BatchNorm2d::new(ch);
        group.bench_function(BenchmarkId::new("batchnorm", &shape), |b| {
            b.iter(|| step(&mut bn, &x, &g))
        });
    }
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
