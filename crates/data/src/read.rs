//! Readers for the two on-disk formats: IDX (MNIST, Fashion-MNIST) and the CIFAR binary batches.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{DataError, Dataset};

const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Pixels per CIFAR image: 3 planes of 32x32, stored R, G, B (already CHW).
const CIFAR_PIXELS: usize = 3 * 32 * 32;
const GENERIC_HINT: &str = "check the path";

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes. The extension is ignored
/// because datasets are commonly found both ways under either name.
pub(crate) fn read_maybe_gz(path: &Path, hint: &str) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            path: path.to_path_buf(),
            hint: hint.to_string(),
        },
        _ => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    // MultiGz: concatenated gzip members are valid gzip and some tools write them.
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|source| DataError::CorruptGzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(out)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses an IDX file of unsigned bytes with `ndims` dimensions; returns the payload and the dimensions.
fn parse_idx(
    path: &Path,
    mut bytes: Vec<u8>,
    magic: u32,
    what: &'static str,
    ndims: usize,
) -> Result<(Vec<u8>, Vec<usize>), DataError> {
    let found = bytes.len() as u64;
    let header = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            found,
        });
    }
    let got = be_u32(&bytes);
    if got != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            what,
            expected: magic,
            found: got,
        });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            found,
        });
    }
    let dims: Vec<usize> = (0..ndims).map(|d| be_u32(&bytes[4 + 4 * d..]) as usize).collect();
    // u128 so that a garbage header (three dimensions near 2^32) cannot overflow.
    let payload: u128 = dims.iter().map(|&d| d as u128).product();
    let expected = u64::try_from(header as u128 + payload).unwrap_or(u64::MAX);
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    bytes.drain(..header);
    Ok((bytes, dims))
}

pub(crate) fn read_idx_images_hint(
    path: &Path,
    hint: &str,
) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    let bytes = read_maybe_gz(path, hint)?;
    let (data, dims) = parse_idx(path, bytes, IDX_IMAGES_MAGIC, "IDX images, 3-D unsigned byte", 3)?;
    Ok((data, dims[0], dims[1], dims[2]))
}

pub(crate) fn read_idx_labels_hint(path: &Path, hint: &str) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path, hint)?;
    let (data, _) = parse_idx(path, bytes, IDX_LABELS_MAGIC, "IDX labels, 1-D unsigned byte", 1)?;
    Ok(data)
}

/// Reads an IDX3 image file (magic 0x00000803), gzipped or raw; returns (pixels, n, h, w).
pub fn read_idx_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize), DataError> {
    read_idx_images_hint(path, GENERIC_HINT)
}

/// Reads an IDX1 label file (magic 0x00000801), gzipped or raw.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    read_idx_labels_hint(path, GENERIC_HINT)
}

pub(crate) fn read_cifar_hint(
    paths: &[PathBuf],
    fine_labels_cifar100: bool,
    hint: &str,
) -> Result<Dataset, DataError> {
    // CIFAR-100 records carry (coarse, fine) labels; we train on the 100 fine classes.
    let (label_bytes, classes) = if fine_labels_cifar100 { (2, 100) } else { (1, 10) };
    let record = label_bytes + CIFAR_PIXELS;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let bytes = read_maybe_gz(path, hint)?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(DataError::CifarSize {
                path: path.clone(),
                size: bytes.len() as u64,
                record,
            });
        }
        images.reserve(bytes.len() / record * CIFAR_PIXELS);
        for (index, rec) in bytes.chunks_exact(record).enumerate() {
            let label = rec[label_bytes - 1] as usize;
            if label >= classes {
                return Err(DataError::LabelOutOfRange {
                    path: path.clone(),
                    index,
                    label,
                    classes,
                });
            }
            labels.push(label as u16);
            images.extend_from_slice(&rec[label_bytes..]);
        }
    }
    Ok(Dataset {
        images,
        n: labels.len(),
        labels,
        c: 3,
        h: 32,
        w: 32,
        classes,
    })
}

/// Reads CIFAR binary batch files and concatenates them in order. Each record is 1 label byte (CIFAR-10)
/// or 2 (coarse, fine: CIFAR-100, the fine label is used) followed by 3072 CHW pixel bytes.
pub fn read_cifar(paths: &[PathBuf], fine_labels_cifar100: bool) -> Result<Dataset, DataError> {
    read_cifar_hint(paths, fine_labels_cifar100, GENERIC_HINT)
}
