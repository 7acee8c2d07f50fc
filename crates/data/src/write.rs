//! Writing IDX files under the MNIST/Fashion-MNIST names (tests and small tools make
//! datasets this way; the readers are the real interface).

use crate::Split;
use std::path::Path;

/// Writes `{train,t10k}-images-idx3-ubyte` and `-labels-idx1-ubyte` (raw, not gzipped) into
/// `dir` for `n` images of h×w bytes.
pub fn write_idx(
    dir: &Path,
    split: Split,
    images: &[u8],
    labels: &[u8],
    h: usize,
    w: usize,
) -> std::io::Result<()> {
    let n = labels.len();
    assert_eq!(images.len(), n * h * w, "images must hold n·h·w bytes");
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    std::fs::create_dir_all(dir)?;
    let mut img = Vec::with_capacity(16 + images.len());
    for v in [0x0803u32, n as u32, h as u32, w as u32] {
        img.extend_from_slice(&v.to_be_bytes());
    }
    img.extend_from_slice(images);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img)?;
    let mut lab = Vec::with_capacity(8 + n);
    for v in [0x0801u32, n as u32] {
        lab.extend_from_slice(&v.to_be_bytes());
    }
    lab.extend_from_slice(labels);
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab)
}

/// A synthetic, learnable 28x28 dataset in 4 classes (horizontal stripes, vertical stripes,
/// a bright square, a checkerboard) with random phase, contrast and noise: for tests.
pub fn synthetic_images(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.gen_range(0..4u8);
        let phase = rng.gen_range(0..4usize);
        let amp = rng.gen_range(120.0..230.0f32);
        for i in 0..28 {
            for j in 0..28 {
                let on = match class {
                    0 => (i + phase) / 2 % 2 == 0,
                    1 => (j + phase) / 2 % 2 == 0,
                    2 => (8..20).contains(&i) && (8..20).contains(&j),
                    _ => ((i + phase) / 3 + j / 3) % 2 == 0,
                };
                let v = if on { amp } else { 10.0 } + rng.gen_range(-25.0..25.0f32);
                images.push(v.clamp(0.0, 255.0) as u8);
            }
        }
        labels.push(class);
    }
    (images, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back() {
        let dir = std::env::temp_dir().join(format!("winq-write-{}", std::process::id()));
        let (img, lab) = synthetic_images(5, 1);
        write_idx(&dir, Split::Test, &img, &lab, 28, 28).unwrap();
        let ds = crate::load(crate::DatasetKind::FashionMnist, &dir, Split::Test).unwrap();
        assert_eq!((ds.n, ds.h, ds.w), (5, 28, 28));
        assert_eq!(ds.images, img);
        assert_eq!(ds.labels, lab.iter().map(|&l| l as u16).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).ok();
    }
}
