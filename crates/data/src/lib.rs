//! Image-classification datasets for winq: IDX (MNIST, Fashion-MNIST) and CIFAR binary readers, a seeded
//! train/validation split, and a [`Loader`] that decodes, shuffles and augments batches on a background
//! thread, deterministically in (seed, epoch).
//!
//! Nothing here downloads: files must already be on disk (see [`DatasetKind::default_dir`]).

mod error;
pub mod images;
mod loader;
mod read;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use error::DataError;
pub use images::read_image_files;
pub use loader::{Augment, Batch, Loader, LoaderOptions};
pub use read::{read_cifar, read_idx_images, read_idx_labels};
pub use write::{synthetic_images, write_idx};

/// The datasets winq knows how to find and normalise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    FashionMnist,
    Mnist,
    Cifar10,
    Cifar100,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::FashionMnist,
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
    ];

    /// Where the files are looked for when no directory is given. Fashion-MNIST is where Debian's
    /// `dataset-fashion-mnist` package installs it; CIFAR is wherever its tarball was extracted.
    pub fn default_dir(self) -> PathBuf {
        match self {
            DatasetKind::FashionMnist => PathBuf::from("/usr/share/datasets/fashion-mnist"),
            DatasetKind::Mnist => PathBuf::from("/usr/share/datasets/mnist"),
            DatasetKind::Cifar10 => PathBuf::from("./data/cifar-10-batches-bin"),
            DatasetKind::Cifar100 => PathBuf::from("./data/cifar-100-binary"),
        }
    }

    /// The customary per-channel mean/std of the training set (on pixels scaled to [0, 1]).
    pub fn normalization(self) -> Normalization {
        let (mean, std): (&[f32], &[f32]) = match self {
            DatasetKind::FashionMnist => (&[0.2860], &[0.3530]),
            DatasetKind::Mnist => (&[0.1307], &[0.3081]),
            DatasetKind::Cifar10 => (&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]),
            DatasetKind::Cifar100 => (&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762]),
        };
        Normalization {
            mean: mean.to_vec(),
            std: std.to_vec(),
        }
    }

    pub fn classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Height and width of the images as the files hold them (28 for the MNISTs, 32 for CIFAR).
    pub fn image_size(self) -> usize {
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist => 28,
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => 32,
        }
    }

    /// Image channels (1 for the MNISTs, 3 for CIFAR).
    pub fn channels(self) -> usize {
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist => 1,
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }

    /// The names of the classes, by label (CIFAR-100's fine labels are numbered only).
    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::Cifar10 => &[
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ],
            DatasetKind::Cifar100 => &[],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// What to do when a file is missing, told in the error message.
    fn missing_hint(self, dir: &Path) -> String {
        let dir = dir.display();
        match self {
            DatasetKind::FashionMnist => format!(
                "install it with `apt-get install -y dataset-fashion-mnist` (it lands in \
                 /usr/share/datasets/fashion-mnist) or put the four *-ubyte[.gz] files under {dir}"
            ),
            DatasetKind::Mnist => format!(
                "MNIST is not packaged here: copy train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
                 t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (raw or gzipped) into {dir}"
            ),
            DatasetKind::Cifar10 => format!(
                "download cifar-10-binary.tar.gz elsewhere and extract it so that {dir} holds \
                 data_batch_1.bin .. data_batch_5.bin and test_batch.bin (the tarball's cifar-10-batches-bin)"
            ),
            DatasetKind::Cifar100 => format!(
                "download cifar-100-binary.tar.gz elsewhere and extract it so that {dir} holds train.bin \
                 and test.bin (the tarball's cifar-100-binary)"
            ),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Accept the common spellings (fmnist, cifar-10, fashion_mnist) besides the canonical names.
        let norm: String = s
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| !matches!(c, '-' | '_'))
            .collect();
        match norm.as_str() {
            "fashionmnist" | "fmnist" => Ok(DatasetKind::FashionMnist),
            "mnist" => Ok(DatasetKind::Mnist),
            "cifar10" => Ok(DatasetKind::Cifar10),
            "cifar100" => Ok(DatasetKind::Cifar100),
            _ => Err(DataError::UnknownDataset(s.to_string())),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    Train,
    Test,
}

/// A decoded dataset held in memory as raw bytes (the compact form; normalisation happens per batch).
#[derive(Clone, Debug)]
pub struct Dataset {
    /// N×C×H×W, each image stored CHW.
    pub images: Vec<u8>,
    pub labels: Vec<u16>,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub classes: usize,
}

impl Dataset {
    /// Bytes per image (C·H·W).
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The CHW bytes of image `i`. Panics when `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// The images zero-padded (pixel value 0, before normalisation) to `size`×`size`, the
    /// extra split evenly with any odd pixel after: how the authors feed 28x28 Fashion-MNIST to
    /// their 32x32 ResNet18Like. A size equal to the images' is a copy; a smaller one an error.
    pub fn pad_to(&self, size: usize) -> Result<Dataset, DataError> {
        if size < self.h || size < self.w {
            return Err(DataError::PadTooSmall {
                size,
                h: self.h,
                w: self.w,
            });
        }
        let (top, left) = ((size - self.h) / 2, (size - self.w) / 2);
        let mut images = vec![0u8; self.n * self.c * size * size];
        for (dst, src) in images
            .chunks_exact_mut(self.c * size * size)
            .zip(self.images.chunks_exact(self.image_len()))
        {
            for (dp, sp) in dst
                .chunks_exact_mut(size * size)
                .zip(src.chunks_exact(self.h * self.w))
            {
                for (y, row) in sp.chunks_exact(self.w).enumerate() {
                    let o = (top + y) * size + left;
                    dp[o..o + self.w].copy_from_slice(row);
                }
            }
        }
        Ok(Dataset {
            images,
            labels: self.labels.clone(),
            n: self.n,
            c: self.c,
            h: size,
            w: size,
            classes: self.classes,
        })
    }

    /// A new dataset holding the examples at `idx`, in that order (repeats allowed). Panics on an
    /// index `>= n`.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(idx.len() * self.image_len());
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            images,
            labels,
            n: idx.len(),
            c: self.c,
            h: self.h,
            w: self.w,
            classes: self.classes,
        }
    }
}

/// Per-channel mean and standard deviation on pixels scaled to [0, 1]: x = (v/255 - mean) / std.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The normalised value of every byte, per channel of `c` (one mean/std for all channels,
    /// or one per channel; none: plain v/255): what every image goes through, one load per
    /// pixel.
    pub fn table(&self, c: usize) -> Vec<[f32; 256]> {
        let pick = |v: &[f32], ch: usize, none: f32| {
            v.get(if v.len() == 1 { 0 } else { ch }).copied().unwrap_or(none)
        };
        (0..c)
            .map(|ch| {
                let (mean, std) = (pick(&self.mean, ch, 0.0), pick(&self.std, ch, 1.0));
                std::array::from_fn(|v| (v as f32 / 255.0 - mean) / std)
            })
            .collect()
    }

    /// Normalised N×C×(hw) images.
    pub fn apply(&self, images: &[u8], c: usize, hw: usize) -> Vec<f32> {
        let table = self.table(c);
        images
            .iter()
            .enumerate()
            .map(|(i, &v)| table[(i / hw.max(1)) % c.max(1)][v as usize])
            .collect()
    }

    /// No normalisation beyond scaling to [0, 1], for `c` channels.
    pub fn unit(c: usize) -> Normalization {
        Normalization {
            mean: vec![0.0; c],
            std: vec![1.0; c],
        }
    }
}

/// Looks for `name.gz` then `name` in `dir`; the Debian package ships gzipped files, hand copies are
/// often gunzipped.
fn find_idx(dir: &Path, name: &str, hint: &str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    if let Some(d) = [&gz, &raw].into_iter().find(|p| p.is_dir()) {
        return Err(DataError::NotAFile { path: d.clone() });
    }
    Err(DataError::Missing {
        path: gz,
        hint: format!("{hint} (also looked for {})", raw.display()),
    })
}

/// Loads one split of a dataset from `dir` (usually [`DatasetKind::default_dir`]), validating sizes,
/// magic numbers, counts and label ranges.
pub fn load(kind: DatasetKind, dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let hint = kind.missing_hint(dir);
    match kind {
        DatasetKind::FashionMnist | DatasetKind::Mnist => {
            let prefix = match split {
                Split::Train => "train",
                Split::Test => "t10k",
            };
            let images_path = find_idx(dir, &format!("{prefix}-images-idx3-ubyte"), &hint)?;
            let labels_path = find_idx(dir, &format!("{prefix}-labels-idx1-ubyte"), &hint)?;
            let (images, n, h, w) = read::read_idx_images_hint(&images_path, &hint)?;
            let raw_labels = read::read_idx_labels_hint(&labels_path, &hint)?;
            if raw_labels.len() != n {
                return Err(DataError::CountMismatch {
                    images_path,
                    labels_path,
                    images: n,
                    labels: raw_labels.len(),
                });
            }
            let classes = kind.classes();
            if let Some(index) = raw_labels.iter().position(|&l| l as usize >= classes) {
                let label = raw_labels[index] as usize;
                return Err(DataError::LabelOutOfRange {
                    path: labels_path,
                    index,
                    label,
                    classes,
                });
            }
            let labels = raw_labels.into_iter().map(u16::from).collect();
            Ok(Dataset {
                images,
                labels,
                n,
                c: 1,
                h,
                w,
                classes,
            })
        }
        DatasetKind::Cifar10 => {
            let names: Vec<String> = match split {
                Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
                Split::Test => vec!["test_batch.bin".to_string()],
            };
            let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
            read::read_cifar_hint(&paths, false, &hint)
        }
        DatasetKind::Cifar100 => {
            let name = match split {
                Split::Train => "train.bin",
                Split::Test => "test.bin",
            };
            read::read_cifar_hint(&[dir.join(name)], true, &hint)
        }
    }
}

/// Splits `ds` into (train, validation) with a seeded random partition; `val_fraction` of the examples
/// (rounded, clamped to [0, n]) go to validation. Each part keeps the original relative order, so the
/// split depends only on the seed.
pub fn split_train_val(ds: &Dataset, val_fraction: f32, seed: u64) -> (Dataset, Dataset) {
    let n_val = ((ds.n as f64 * val_fraction.clamp(0.0, 1.0) as f64).round() as usize).min(ds.n);
    let mut perm: Vec<usize> = (0..ds.n).collect();
    perm.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let (val, train) = perm.split_at_mut(n_val);
    val.sort_unstable();
    train.sort_unstable();
    (ds.subset(train), ds.subset(val))
}
