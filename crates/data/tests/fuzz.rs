//! Mutation fuzzing of the dataset readers: random truncations, byte flips and header edits of
//! valid IDX (raw and gzipped) and CIFAR files must give a clear error or a dataset that is
//! consistent with its own header — never a panic, a hang or an absurd allocation (a header
//! claiming billions of images is checked against the file's size before anything is
//! allocated). A bounded number of cases, seeded, so CI runs them.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use winq_data::{read_cifar, read_idx_images, read_idx_labels, synthetic_images, write_idx, Split};

/// A mutation: cut the file, flip some bytes, overwrite a 4-byte word of the header.
#[derive(Debug, Clone)]
struct Mutation {
    truncate: Option<f64>,
    flips: Vec<(f64, u8)>,
    header: Option<(usize, u32)>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        proptest::option::of(0.0f64..1.0),
        proptest::collection::vec((0.0f64..1.0, 1u8..=255), 0..6),
        proptest::option::of((0usize..6, any::<u32>())),
    )
        .prop_map(|(truncate, flips, header)| Mutation {
            truncate,
            flips,
            header,
        })
}

fn apply(good: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = good.to_vec();
    if let Some((word, v)) = m.header {
        let at = word * 4;
        if at + 4 <= b.len() {
            b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
    }
    for &(pos, x) in &m.flips {
        if !b.is_empty() {
            let i = ((pos * b.len() as f64) as usize).min(b.len() - 1);
            b[i] ^= x;
        }
    }
    if let Some(t) = m.truncate {
        b.truncate((t * b.len() as f64) as usize);
    }
    b
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    )
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

#[test]
fn mutated_idx_and_cifar_files_are_errors_or_consistent() {
    let dir = std::env::temp_dir().join(format!("winq-fuzz-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (img, lab) = synthetic_images(12, 9);
    write_idx(&dir, Split::Train, &img, &lab, 28, 28).unwrap();
    let images = std::fs::read(dir.join("train-images-idx3-ubyte")).unwrap();
    let labels = std::fs::read(dir.join("train-labels-idx1-ubyte")).unwrap();
    let mut cifar = Vec::new();
    for i in 0..5u8 {
        cifar.push(i % 10);
        cifar.extend((0..3 * 32 * 32).map(|p| (p as u8).wrapping_add(i)));
    }
    let target = dir.join("mutated");
    let check = |kind: &str, bytes: &[u8]| {
        std::fs::write(&target, bytes).unwrap();
        match kind {
            "images" => {
                if let Ok((data, n, h, w)) = read_idx_images(&target) {
                    assert_eq!(data.len(), n * h * w, "an accepted file is consistent");
                }
            }
            "labels" => {
                let _ = read_idx_labels(&target);
            }
            _ => {
                if let Ok(ds) = read_cifar(std::slice::from_ref(&target), false) {
                    assert_eq!(ds.images.len(), ds.n * 3 * 32 * 32);
                }
            }
        }
    };
    for (kind, good) in [
        ("images", images.clone()),
        ("images", gzip(&images)),
        ("labels", labels.clone()),
        ("labels", gzip(&labels)),
        ("cifar", cifar.clone()),
    ] {
        runner(48)
            .run(&mutation(), |m| {
                check(kind, &apply(&good, &m));
                Ok(())
            })
            .unwrap();
    }
    // A header claiming the largest possible counts is an error, not an allocation.
    let mut huge = images.clone();
    huge[4..16].copy_from_slice(&[0xff; 12]);
    std::fs::write(&target, &huge).unwrap();
    assert!(read_idx_images(&target).is_err());
    std::fs::remove_dir_all(&dir).ok();
}
