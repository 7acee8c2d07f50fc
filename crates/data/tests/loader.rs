//! split_train_val and Loader on synthetic datasets whose labels are the example indices, so every batch
//! can be traced back to its source images.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use winq_data::{split_train_val, Augment, Batch, Dataset, Loader, LoaderOptions, Normalization};

fn synthetic(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Dataset {
    Dataset {
        images: common::bytes(n * c * h * w, seed),
        labels: (0..n as u16).collect(),
        n,
        c,
        h,
        w,
        classes: n,
    }
}

fn norm3() -> Normalization {
    Normalization {
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.2470, 0.2435, 0.2616],
    }
}

fn opts(batch: usize) -> LoaderOptions {
    LoaderOptions {
        batch,
        shuffle: true,
        seed: 7,
        epoch: 0,
        augment: Augment::default(),
        norm: norm3(),
        drop_last: false,
    }
}

fn run(ds: &Arc<Dataset>, o: LoaderOptions) -> Vec<Batch> {
    Loader::new(ds.clone(), o).collect()
}

fn order(batches: &[Batch]) -> Vec<usize> {
    batches.iter().flat_map(|b| b.labels.iter().copied()).collect()
}

/// The normalised image `i` after shifting the crop window by (oy, ox) and optionally flipping: the
/// reference implementation of the augmentation, written independently of the loader.
fn expected(ds: &Dataset, norm: &Normalization, i: usize, oy: isize, ox: isize, flip: bool) -> Vec<f32> {
    let (h, w) = (ds.h as isize, ds.w as isize);
    let img = ds.image(i);
    let mut out = Vec::new();
    for ch in 0..ds.c {
        for y in 0..h {
            for x in 0..w {
                let xs = if flip { w - 1 - x } else { x };
                let (sy, sx) = (y + oy, xs + ox);
                let v = if (0..h).contains(&sy) && (0..w).contains(&sx) {
                    img[ch * ds.h * ds.w + (sy * w + sx) as usize]
                } else {
                    0
                };
                out.push((v as f32 / 255.0 - norm.mean[ch]) / norm.std[ch]);
            }
        }
    }
    out
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

/// For every image in the batches, finds which (shift, flip) reproduces it; panics when none does.
fn explain(ds: &Dataset, norm: &Normalization, batches: &[Batch], pad: isize) -> Vec<(isize, isize, bool)> {
    let mut found = Vec::new();
    for b in batches {
        assert_eq!(
            (b.c, b.h, b.w),
            (ds.c, ds.h, ds.w),
            "augmentation must keep the shape"
        );
        let len = b.c * b.h * b.w;
        for (k, &i) in b.labels.iter().enumerate() {
            let got = &b.x[k * len..(k + 1) * len];
            let mut hit = None;
            'search: for oy in -pad..=pad {
                for ox in -pad..=pad {
                    for flip in [false, true] {
                        if close(got, &expected(ds, norm, i, oy, ox, flip)) {
                            hit = Some((oy, ox, flip));
                            break 'search;
                        }
                    }
                }
            }
            found.push(hit.unwrap_or_else(|| panic!("image {i} in batch {} matches no crop/flip", b.index)));
        }
    }
    found
}

#[test]
fn split_sizes_disjoint_deterministic() {
    let ds = synthetic(1000, 1, 3, 3, 1);
    let (tr, va) = split_train_val(&ds, 0.2, 42);
    assert_eq!((tr.n, va.n), (800, 200));
    assert_eq!((tr.labels.len(), va.labels.len()), (800, 200));
    assert_eq!(tr.images.len(), 800 * 9);
    let mut all: Vec<u16> = tr.labels.iter().chain(&va.labels).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..1000).collect::<Vec<u16>>(),
        "train and val must partition the examples"
    );
    // Images follow their labels.
    for (k, &l) in va.labels.iter().enumerate() {
        assert_eq!(va.image(k), ds.image(l as usize));
    }
    let (tr2, va2) = split_train_val(&ds, 0.2, 42);
    assert_eq!((tr2.labels, va2.labels.clone()), (tr.labels, va.labels.clone()));
    let (_, va3) = split_train_val(&ds, 0.2, 43);
    assert_ne!(va3.labels, va.labels, "another seed must give another split");
    // Not just the first 200 examples.
    assert_ne!(va.labels, (0..200).collect::<Vec<u16>>());
    let (tr0, va0) = split_train_val(&ds, 0.0, 1);
    assert_eq!((tr0.n, va0.n), (1000, 0));
}

#[test]
fn epoch_covers_each_example_once() {
    let ds = Arc::new(synthetic(103, 3, 5, 7, 2));
    let l = Loader::new(ds.clone(), opts(10));
    assert_eq!(l.batches_per_epoch(), 11);
    assert_eq!(l.len(), 11);
    let batches: Vec<Batch> = l.collect();
    assert_eq!(batches.len(), 11);
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b.index, i);
        assert_eq!(b.n, if i == 10 { 3 } else { 10 });
        assert_eq!(b.x.len(), b.n * 3 * 5 * 7);
        assert_eq!(b.labels.len(), b.n);
    }
    let ord = order(&batches);
    assert_ne!(ord, (0..103).collect::<Vec<_>>(), "shuffle must change the order");
    let mut sorted = ord.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..103).collect::<Vec<_>>());
    // No shuffle: identity order.
    let plain = run(
        &ds,
        LoaderOptions {
            shuffle: false,
            ..opts(10)
        },
    );
    assert_eq!(order(&plain), (0..103).collect::<Vec<_>>());
}

#[test]
fn same_seed_and_epoch_same_batches_other_epoch_differs() {
    let ds = Arc::new(synthetic(64, 3, 6, 6, 3));
    let o = LoaderOptions {
        augment: Augment {
            crop_pad: 2,
            hflip: true,
        },
        ..opts(8)
    };
    let a = run(&ds, o.clone());
    let b = run(&ds, o.clone());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.labels, y.labels);
        assert_eq!(
            x.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    let e1 = run(
        &ds,
        LoaderOptions {
            epoch: 1,
            ..o.clone()
        },
    );
    assert_ne!(order(&e1), order(&a), "another epoch must reshuffle");
    let s1 = run(&ds, LoaderOptions { seed: 8, ..o });
    assert_ne!(order(&s1), order(&a), "another seed must reshuffle");
}

#[test]
fn no_augmentation_gives_normalised_images() {
    let ds = Arc::new(synthetic(23, 3, 4, 5, 4));
    let batches = run(&ds, opts(4));
    for b in &batches {
        let len = 3 * 4 * 5;
        for (k, &i) in b.labels.iter().enumerate() {
            let want = expected(&ds, &norm3(), i, 0, 0, false);
            assert!(close(&b.x[k * len..(k + 1) * len], &want), "image {i}");
        }
    }
    // A one-value normalisation is broadcast over channels.
    let g = Arc::new(synthetic(5, 1, 2, 2, 5));
    let one = Normalization {
        mean: vec![0.5],
        std: vec![0.25],
    };
    let b = run(
        &g,
        LoaderOptions {
            norm: one,
            shuffle: false,
            ..opts(5)
        },
    );
    let want: Vec<f32> = g
        .images
        .iter()
        .map(|&v| (v as f32 / 255.0 - 0.5) / 0.25)
        .collect();
    assert!(close(&b[0].x, &want));
}

#[test]
fn hflip_flips_about_half() {
    let ds = Arc::new(synthetic(200, 3, 4, 7, 6));
    let o = LoaderOptions {
        augment: Augment {
            crop_pad: 0,
            hflip: true,
        },
        ..opts(16)
    };
    let found = explain(&ds, &norm3(), &run(&ds, o), 0);
    let flipped = found.iter().filter(|f| f.2).count();
    assert!((60..=140).contains(&flipped), "{flipped} of 200 flipped");
    assert!(found.iter().all(|f| (f.0, f.1) == (0, 0)));
}

#[test]
fn crop_keeps_shape_and_shifts_with_zero_padding() {
    let ds = Arc::new(synthetic(150, 3, 6, 6, 7));
    let o = LoaderOptions {
        augment: Augment {
            crop_pad: 2,
            hflip: false,
        },
        ..opts(32)
    };
    let found = explain(&ds, &norm3(), &run(&ds, o), 2);
    assert!(found.iter().all(|f| !f.2));
    // Every offset in [-2, 2] should turn up on 150 draws from 25 equally likely shifts.
    for oy in -2..=2 {
        assert!(found.iter().any(|f| f.0 == oy), "vertical shift {oy} never drawn");
        assert!(
            found.iter().any(|f| f.1 == oy),
            "horizontal shift {oy} never drawn"
        );
    }
    // Crop and flip together still explain every image.
    let both = LoaderOptions {
        augment: Augment {
            crop_pad: 2,
            hflip: true,
        },
        ..opts(32)
    };
    let f2 = explain(&ds, &norm3(), &run(&ds, both), 2);
    assert!(f2.iter().any(|f| f.2) && f2.iter().any(|f| !f.2));
}

#[test]
fn drop_last_drops_the_remainder() {
    let ds = Arc::new(synthetic(103, 1, 2, 2, 8));
    let o = LoaderOptions {
        drop_last: true,
        norm: Normalization::unit(1),
        ..opts(10)
    };
    let l = Loader::new(ds.clone(), o);
    assert_eq!(l.batches_per_epoch(), 10);
    let batches: Vec<Batch> = l.collect();
    assert_eq!(batches.len(), 10);
    assert!(batches.iter().all(|b| b.n == 10));
    let mut ord = order(&batches);
    ord.sort_unstable();
    ord.dedup();
    assert_eq!(ord.len(), 100);
    let exact = Loader::new(
        Arc::new(synthetic(100, 1, 2, 2, 8)),
        LoaderOptions {
            drop_last: true,
            norm: Normalization::unit(1),
            ..opts(10)
        },
    );
    assert_eq!(exact.batches_per_epoch(), 10);
    let empty = Loader::new(
        Arc::new(synthetic(0, 1, 2, 2, 8)),
        LoaderOptions {
            norm: Normalization::unit(1),
            ..opts(10)
        },
    );
    assert_eq!(empty.batches_per_epoch(), 0);
    assert_eq!(empty.count(), 0);
}

#[test]
fn dropping_mid_epoch_returns_promptly() {
    // Many small batches: the worker fills the channel and blocks in send; drop must unblock it.
    let ds = Arc::new(synthetic(5000, 3, 8, 8, 9));
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let mut l = Loader::new(ds, opts(1));
        let first = l.next().map(|b| b.index);
        std::thread::sleep(Duration::from_millis(50)); // let the worker block on the full channel
        drop(l);
        let _ = tx.send(first);
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("dropping the loader hung");
    assert_eq!(first, Some(0));
    assert!(start.elapsed() < Duration::from_secs(5));
    // Dropping before reading anything is fine too.
    drop(Loader::new(Arc::new(synthetic(50, 3, 8, 8, 9)), opts(1)));
}

/// `--pad-to`: images zero-padded (pixel 0, before normalisation) to the size, centred with an
/// odd pixel after; labels kept; a size below the images' is an error.
#[test]
fn pad_to_centres_images_in_zeros() {
    let ds = winq_data::Dataset {
        images: (1..=2 * 2 * 3 * 3).map(|v| v as u8).collect(),
        labels: vec![3, 7],
        n: 2,
        c: 2,
        h: 3,
        w: 3,
        classes: 10,
    };
    let p = ds.pad_to(6).unwrap();
    assert_eq!((p.n, p.c, p.h, p.w, p.labels.clone()), (2, 2, 6, 6, vec![3, 7]));
    // Image 1, channel 1 of the source: values 28..=36, at rows 1..4, columns 1..4.
    let plane = &p.image(1)[36..72];
    for y in 0..6 {
        for x in 0..6 {
            let want = if (1..4).contains(&y) && (1..4).contains(&x) {
                28 + (y - 1) * 3 + (x - 1)
            } else {
                0
            };
            assert_eq!(plane[y * 6 + x] as usize, want, "({y}, {x})");
        }
    }
    assert_eq!(ds.pad_to(3).unwrap().images, ds.images);
    let e = ds.pad_to(2).unwrap_err().to_string();
    assert!(e.contains("--pad-to 2") && e.contains("3x3"), "{e}");
}
