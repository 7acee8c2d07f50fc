use std::path::PathBuf;

/// Everything that can go wrong while reading a dataset. Every variant names the file involved, so a
/// message alone tells the user which file to fix and how.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {why}", path.display())]
    Image { path: PathBuf, why: String },

    #[error("{} is a directory, not the data file that should be there", path.display())]
    NotAFile { path: PathBuf },

    #[error("--pad-to {size} is smaller than the {h}x{w} images")]
    PadTooSmall { size: usize, h: usize, w: usize },

    #[error("{}: file not found; {hint}", path.display())]
    Missing { path: PathBuf, hint: String },

    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: corrupt gzip stream: {source}", path.display())]
    CorruptGzip {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: truncated file: expected {expected} bytes, found {found}", path.display())]
    Truncated {
        path: PathBuf,
        expected: u64,
        found: u64,
    },

    #[error("{}: trailing data: expected {expected} bytes, found {found}", path.display())]
    TrailingData {
        path: PathBuf,
        expected: u64,
        found: u64,
    },

    #[error("{}: bad magic number: expected {expected:#010x} ({what}), found {found:#010x}", path.display())]
    BadMagic {
        path: PathBuf,
        what: &'static str,
        expected: u32,
        found: u32,
    },

    #[error(
        "image/label count mismatch: {} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        images_path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
    },

    #[error(
        "{}: label out of range: record {index} has label {label}, but the dataset has {classes} classes",
        path.display()
    )]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: usize,
        classes: usize,
    },

    #[error(
        "{}: CIFAR file size {size} bytes is not a positive multiple of the record size {record} bytes",
        path.display()
    )]
    CifarSize { path: PathBuf, size: u64, record: usize },

    #[error("unknown dataset {0:?}; expected one of fashion-mnist, mnist, cifar10, cifar100")]
    UnknownDataset(String),
}
