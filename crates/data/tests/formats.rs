//! IDX and CIFAR readers on small files written here: exact round trips, then every kind of damage.

mod common;

use std::path::PathBuf;

use common::{assert_msg, bytes, gzip, idx_images_bytes, idx_labels_bytes, write, TempDir};
use winq_data::{load, read_cifar, read_idx_images, read_idx_labels, DataError, DatasetKind, Split};

const CIFAR_PIXELS: usize = 3072;

fn cifar10_bytes(labels: &[u8], seed: u64) -> (Vec<u8>, Vec<u8>) {
    let pixels = bytes(labels.len() * CIFAR_PIXELS, seed);
    let mut file = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        file.push(l);
        file.extend_from_slice(&pixels[i * CIFAR_PIXELS..(i + 1) * CIFAR_PIXELS]);
    }
    (file, pixels)
}

fn cifar100_bytes(coarse: &[u8], fine: &[u8], seed: u64) -> (Vec<u8>, Vec<u8>) {
    let pixels = bytes(fine.len() * CIFAR_PIXELS, seed);
    let mut file = Vec::new();
    for i in 0..fine.len() {
        file.push(coarse[i]);
        file.push(fine[i]);
        file.extend_from_slice(&pixels[i * CIFAR_PIXELS..(i + 1) * CIFAR_PIXELS]);
    }
    (file, pixels)
}

#[test]
fn idx_round_trip_raw_and_gzip_by_magic_not_extension() {
    let t = TempDir::new("idx-rt");
    let px = bytes(3 * 4 * 5, 1);
    let img = idx_images_bytes(3, 4, 5, &px);
    let lbl = idx_labels_bytes(&[7, 0, 9]);
    // Gzipped content under a name without .gz and raw content under a .gz name.
    for (name, content) in [
        ("a.idx", gzip(&img)),
        ("b.gz", img.clone()),
        ("c-ubyte.gz", gzip(&img)),
    ] {
        let p = t.path(name);
        write(&p, &content);
        let (data, n, h, w) = read_idx_images(&p).unwrap();
        assert_eq!((n, h, w), (3, 4, 5), "{name}");
        assert_eq!(data, px, "{name}");
    }
    for (name, content) in [("l.idx", gzip(&lbl)), ("m.gz", lbl.clone())] {
        let p = t.path(name);
        write(&p, &content);
        assert_eq!(read_idx_labels(&p).unwrap(), vec![7, 0, 9], "{name}");
    }
}

#[test]
fn load_idx_dataset_gz_and_raw_names() {
    let t = TempDir::new("idx-load");
    let px_train = bytes(4 * 6 * 6, 2);
    let px_test = bytes(2 * 6 * 6, 3);
    // Train split gzipped (as Debian ships it), test split raw (as a hand copy often is).
    write(
        &t.path("train-images-idx3-ubyte.gz"),
        &gzip(&idx_images_bytes(4, 6, 6, &px_train)),
    );
    write(
        &t.path("train-labels-idx1-ubyte.gz"),
        &gzip(&idx_labels_bytes(&[1, 2, 3, 9])),
    );
    write(
        &t.path("t10k-images-idx3-ubyte"),
        &idx_images_bytes(2, 6, 6, &px_test),
    );
    write(&t.path("t10k-labels-idx1-ubyte"), &idx_labels_bytes(&[5, 0]));
    let tr = load(DatasetKind::Mnist, &t.0, Split::Train).unwrap();
    assert_eq!((tr.n, tr.c, tr.h, tr.w, tr.classes), (4, 1, 6, 6, 10));
    assert_eq!(tr.images, px_train);
    assert_eq!(tr.labels, vec![1, 2, 3, 9]);
    assert_eq!(tr.image(2), &px_train[72..108]);
    let te = load(DatasetKind::FashionMnist, &t.0, Split::Test).unwrap();
    assert_eq!((te.n, te.c, te.h, te.w), (2, 1, 6, 6));
    assert_eq!(te.images, px_test);
    assert_eq!(te.labels, vec![5, 0]);
}

#[test]
fn cifar10_round_trip_and_load() {
    let t = TempDir::new("c10");
    let mut all_px = Vec::new();
    let mut all_labels = Vec::new();
    let mut paths = Vec::new();
    for b in 1..=5u8 {
        let labels: Vec<u8> = (0..b).map(|i| (i * 3 + b) % 10).collect();
        let (file, px) = cifar10_bytes(&labels, b as u64);
        let p = t.path(&format!("data_batch_{b}.bin"));
        write(&p, &file);
        paths.push(p);
        all_px.extend_from_slice(&px);
        all_labels.extend(labels.iter().map(|&l| l as u16));
    }
    let (test_file, test_px) = cifar10_bytes(&[9, 0], 77);
    write(&t.path("test_batch.bin"), &test_file);

    let ds = read_cifar(&paths[..2], false).unwrap();
    assert_eq!((ds.n, ds.c, ds.h, ds.w, ds.classes), (3, 3, 32, 32, 10));
    assert_eq!(ds.images, all_px[..3 * CIFAR_PIXELS]);

    let tr = load(DatasetKind::Cifar10, &t.0, Split::Train).unwrap();
    assert_eq!(tr.n, 15);
    assert_eq!(tr.images, all_px);
    assert_eq!(tr.labels, all_labels);
    let te = load(DatasetKind::Cifar10, &t.0, Split::Test).unwrap();
    assert_eq!(te.labels, vec![9, 0]);
    assert_eq!(te.images, test_px);
}

#[test]
fn cifar100_uses_fine_labels() {
    let t = TempDir::new("c100");
    let (file, px) = cifar100_bytes(&[19, 3, 0], &[99, 42, 0], 5);
    write(&t.path("train.bin"), &file);
    write(&t.path("test.bin"), &cifar100_bytes(&[1], &[64], 6).0);
    let tr = load(DatasetKind::Cifar100, &t.0, Split::Train).unwrap();
    assert_eq!((tr.n, tr.c, tr.h, tr.w, tr.classes), (3, 3, 32, 32, 100));
    assert_eq!(tr.labels, vec![99, 42, 0]);
    assert_eq!(tr.images, px);
    assert_eq!(tr.image(1), &px[CIFAR_PIXELS..2 * CIFAR_PIXELS]);
    assert_eq!(
        load(DatasetKind::Cifar100, &t.0, Split::Test).unwrap().labels,
        vec![64]
    );
}

#[test]
fn idx_truncated_and_trailing() {
    let t = TempDir::new("idx-trunc");
    let img = idx_images_bytes(3, 4, 5, &bytes(60, 1));
    let p = t.path("short-images");
    write(&p, &img[..img.len() - 1]);
    assert_msg(
        &read_idx_images(&p).unwrap_err(),
        &p,
        &["truncated", "expected 76 bytes, found 75"],
    );
    // Same damage inside a gzip stream is still reported against the file.
    let pg = t.path("short-images.gz");
    write(&pg, &gzip(&img[..70]));
    assert_msg(
        &read_idx_images(&pg).unwrap_err(),
        &pg,
        &["truncated", "expected 76 bytes, found 70"],
    );
    let ph = t.path("header-only");
    write(&ph, &img[..10]);
    assert_msg(
        &read_idx_images(&ph).unwrap_err(),
        &ph,
        &["truncated", "expected 16 bytes, found 10"],
    );
    let pl = t.path("short-labels");
    write(&pl, &idx_labels_bytes(&[1, 2, 3])[..9]);
    assert_msg(
        &read_idx_labels(&pl).unwrap_err(),
        &pl,
        &["truncated", "expected 11 bytes, found 9"],
    );
    let pt = t.path("long-labels");
    let mut long = idx_labels_bytes(&[1, 2, 3]);
    long.push(0);
    write(&pt, &long);
    assert_msg(
        &read_idx_labels(&pt).unwrap_err(),
        &pt,
        &["trailing data", "expected 11 bytes, found 12"],
    );
}

#[test]
fn idx_bad_magic() {
    let t = TempDir::new("idx-magic");
    let labels = t.path("labels-as-images");
    write(&labels, &idx_labels_bytes(&[1, 2]));
    assert_msg(
        &read_idx_images(&labels).unwrap_err(),
        &labels,
        &["bad magic", "0x00000803", "0x00000801"],
    );
    let images = t.path("images-as-labels.gz");
    write(&images, &gzip(&idx_images_bytes(1, 2, 2, &[0; 4])));
    assert_msg(
        &read_idx_labels(&images).unwrap_err(),
        &images,
        &["bad magic", "0x00000801", "0x00000803"],
    );
}

#[test]
fn idx_count_mismatch_and_label_range() {
    let t = TempDir::new("idx-count");
    write(
        &t.path("train-images-idx3-ubyte"),
        &idx_images_bytes(3, 2, 2, &bytes(12, 4)),
    );
    write(&t.path("train-labels-idx1-ubyte"), &idx_labels_bytes(&[1, 2]));
    let e = load(DatasetKind::Mnist, &t.0, Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert_msg(
        &e,
        &t.path("train-images-idx3-ubyte"),
        &["count mismatch", "train-labels-idx1-ubyte"],
    );

    write(
        &t.path("t10k-images-idx3-ubyte"),
        &idx_images_bytes(3, 2, 2, &bytes(12, 4)),
    );
    let lp = t.path("t10k-labels-idx1-ubyte");
    write(&lp, &idx_labels_bytes(&[1, 10, 2]));
    let e = load(DatasetKind::FashionMnist, &t.0, Split::Test).unwrap_err();
    assert_msg(
        &e,
        &lp,
        &["label out of range", "record 1", "label 10", "10 classes"],
    );
}

#[test]
fn corrupt_gzip() {
    let t = TempDir::new("gz");
    let gz = gzip(&idx_images_bytes(2, 8, 8, &bytes(128, 9)));
    let cut = t.path("cut.gz");
    write(&cut, &gz[..gz.len() / 2]);
    assert_msg(&read_idx_images(&cut).unwrap_err(), &cut, &["corrupt gzip"]);
    // A damaged CRC trailer: deflate decodes but the checksum does not match.
    let mut bad = gz.clone();
    let k = bad.len() - 8;
    bad[k] ^= 0xff;
    let crc = t.path("crc.gz");
    write(&crc, &bad);
    assert_msg(&read_idx_images(&crc).unwrap_err(), &crc, &["corrupt gzip"]);
    // Gzip magic followed by garbage.
    let garbage = t.path("garbage-labels");
    let mut g = vec![0x1f, 0x8b];
    g.extend_from_slice(&bytes(40, 3));
    write(&garbage, &g);
    assert_msg(
        &read_idx_labels(&garbage).unwrap_err(),
        &garbage,
        &["corrupt gzip"],
    );
}

#[test]
fn cifar_wrong_size_and_label_range() {
    let t = TempDir::new("c-bad");
    let (mut f10, _) = cifar10_bytes(&[1, 2], 1);
    f10.extend_from_slice(&[0; 5]);
    let p = t.path("odd.bin");
    write(&p, &f10);
    let e = read_cifar(std::slice::from_ref(&p), false).unwrap_err();
    assert_msg(
        &e,
        &p,
        &["6151 bytes", "not a positive multiple", "record size 3073"],
    );
    // A valid CIFAR-10 file is the wrong size for CIFAR-100 (3074-byte records).
    let (f, _) = cifar10_bytes(&[1, 2], 1);
    let p100 = t.path("c10-as-c100.bin");
    write(&p100, &f);
    assert_msg(
        &read_cifar(std::slice::from_ref(&p100), true).unwrap_err(),
        &p100,
        &["record size 3074"],
    );
    let empty = t.path("empty.bin");
    write(&empty, &[]);
    assert_msg(
        &read_cifar(std::slice::from_ref(&empty), false).unwrap_err(),
        &empty,
        &["0 bytes"],
    );

    let good = t.path("good.bin");
    write(&good, &cifar10_bytes(&[3], 2).0);
    let lab = t.path("label10.bin");
    write(&lab, &cifar10_bytes(&[0, 4, 10], 2).0);
    let e = read_cifar(&[good, lab.clone()], false).unwrap_err();
    assert_msg(
        &e,
        &lab,
        &["label out of range", "record 2", "label 10", "10 classes"],
    );
    let fine = t.path("fine100.bin");
    write(&fine, &cifar100_bytes(&[0], &[100], 3).0);
    assert_msg(
        &read_cifar(std::slice::from_ref(&fine), true).unwrap_err(),
        &fine,
        &["label 100", "100 classes"],
    );
}

#[test]
fn missing_files_give_hints() {
    let t = TempDir::new("missing");
    let e = load(DatasetKind::FashionMnist, &t.0, Split::Train).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    assert_msg(
        &e,
        &t.path("train-images-idx3-ubyte.gz"),
        &["not found", "apt-get install -y dataset-fashion-mnist"],
    );
    let e = load(DatasetKind::Mnist, &t.0, Split::Test).unwrap_err();
    assert_msg(
        &e,
        &t.path("t10k-images-idx3-ubyte.gz"),
        &["not found", "t10k-images-idx3-ubyte"],
    );
    let e = load(DatasetKind::Cifar10, &t.0, Split::Train).unwrap_err();
    let dir = t.0.display().to_string();
    assert_msg(
        &e,
        &t.path("data_batch_1.bin"),
        &["not found", "cifar-10-binary.tar.gz", &dir],
    );
    let e = load(DatasetKind::Cifar100, &t.0, Split::Test).unwrap_err();
    assert_msg(&e, &t.path("test.bin"), &["cifar-100-binary.tar.gz", &dir]);
    let nowhere = PathBuf::from("/nonexistent/winq/labels-idx1-ubyte");
    assert_msg(&read_idx_labels(&nowhere).unwrap_err(), &nowhere, &["not found"]);
}

#[test]
fn dataset_kind_names_and_constants() {
    for k in DatasetKind::ALL {
        assert_eq!(k.to_string().parse::<DatasetKind>().unwrap(), k);
        let norm = k.normalization();
        assert_eq!(norm.mean.len(), k.channels());
        assert_eq!(norm.std.len(), k.channels());
    }
    assert_eq!(
        "fashion-mnist".parse::<DatasetKind>().unwrap(),
        DatasetKind::FashionMnist
    );
    assert_eq!("mnist".parse::<DatasetKind>().unwrap(), DatasetKind::Mnist);
    assert_eq!("cifar10".parse::<DatasetKind>().unwrap(), DatasetKind::Cifar10);
    assert_eq!("CIFAR-100".parse::<DatasetKind>().unwrap(), DatasetKind::Cifar100);
    let e = "imagenet".parse::<DatasetKind>().unwrap_err();
    assert!(
        e.to_string().contains("imagenet") && e.to_string().contains("cifar100"),
        "{e}"
    );
    assert_eq!(DatasetKind::Cifar100.classes(), 100);
    assert_eq!(DatasetKind::FashionMnist.classes(), 10);
    assert_eq!(
        DatasetKind::FashionMnist.default_dir(),
        PathBuf::from("/usr/share/datasets/fashion-mnist")
    );
    assert_eq!(
        DatasetKind::Cifar10.default_dir(),
        PathBuf::from("./data/cifar-10-batches-bin")
    );
    assert_eq!(DatasetKind::Mnist.normalization().mean, vec![0.1307]);
    assert_eq!(
        DatasetKind::Cifar10.normalization().std,
        vec![0.2470, 0.2435, 0.2616]
    );
}

/// A directory where a data file should be is named as such (it used to read as "file not
/// found; install with apt-get", which sends the user the wrong way).
#[test]
fn a_directory_in_place_of_a_file_is_named() {
    let dir = std::env::temp_dir().join(format!("winq-data-dirfile-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("train-images-idx3-ubyte.gz")).unwrap();
    let e = winq_data::load(
        winq_data::DatasetKind::FashionMnist,
        &dir,
        winq_data::Split::Train,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("is a directory") && e.contains("train-images-idx3-ubyte.gz"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
