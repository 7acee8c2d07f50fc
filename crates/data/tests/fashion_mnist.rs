//! The real Fashion-MNIST from Debian's dataset-fashion-mnist package, when installed.

use std::path::Path;
use std::sync::Arc;

use winq_data::{load, Augment, DatasetKind, Loader, LoaderOptions, Split};

fn dir() -> Option<&'static Path> {
    let d = Path::new("/usr/share/datasets/fashion-mnist");
    if d.is_dir() {
        Some(d)
    } else {
        println!(
            "note: {} is absent (apt-get install -y dataset-fashion-mnist); skipping",
            d.display()
        );
        None
    }
}

#[test]
fn real_fashion_mnist() {
    let Some(dir) = dir() else { return };
    assert_eq!(DatasetKind::FashionMnist.default_dir(), dir);
    let train = load(DatasetKind::FashionMnist, dir, Split::Train).unwrap();
    let test = load(DatasetKind::FashionMnist, dir, Split::Test).unwrap();
    assert_eq!(
        (train.n, train.c, train.h, train.w, train.classes),
        (60000, 1, 28, 28, 10)
    );
    assert_eq!((test.n, test.c, test.h, test.w), (10000, 1, 28, 28));
    assert_eq!(train.images.len(), 60000 * 784);
    assert_eq!(
        train.labels[0], 9,
        "Fashion-MNIST train[0] is an ankle boot (class 9)"
    );
    // Both splits are balanced: 6000 / 1000 per class.
    for (ds, per) in [(&train, 6000), (&test, 1000)] {
        let mut counts = [0usize; 10];
        for &l in &ds.labels {
            counts[l as usize] += 1; // also proves labels < 10
        }
        assert_eq!(counts, [per; 10]);
    }
    let mean = train.images.iter().map(|&v| v as u64).sum::<u64>() as f64 / train.images.len() as f64;
    assert!((mean - 0.2860 * 255.0).abs() < 0.15, "per-pixel mean {mean}");

    // One epoch through the loader with the standard normalisation: mean ~0, std ~1.
    let norm = DatasetKind::FashionMnist.normalization();
    let o = LoaderOptions {
        batch: 256,
        shuffle: true,
        seed: 1,
        epoch: 0,
        augment: Augment::default(),
        norm,
        drop_last: false,
    };
    let loader = Loader::new(Arc::new(train), o);
    assert_eq!(loader.batches_per_epoch(), 235);
    let (mut s, mut s2, mut cnt, mut seen) = (0f64, 0f64, 0usize, 0usize);
    for b in loader {
        seen += b.n;
        for &v in &b.x {
            s += v as f64;
            s2 += (v as f64) * (v as f64);
        }
        cnt += b.x.len();
    }
    assert_eq!(seen, 60000);
    let m = s / cnt as f64;
    let sd = (s2 / cnt as f64 - m * m).sqrt();
    assert!(
        m.abs() < 0.01 && (sd - 1.0).abs() < 0.01,
        "normalised mean {m}, std {sd}"
    );
}
