//! Helpers shared by the integration tests: unique temp dirs and small file writers.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

/// A fresh directory under the system temp dir, removed on drop (best effort).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("winq-data-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn idx_images_bytes(n: usize, h: usize, w: usize, pixels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0803u32, n as u32, h as u32, w as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

pub fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x0801u32, labels.len() as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(labels);
    b
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate of their own.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect()
}

/// Asserts that the error's message names `file` and contains every one of `needles`.
pub fn assert_msg(err: &winq_data::DataError, file: &Path, needles: &[&str]) {
    let msg = err.to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(name.as_ref()), "message does not name {name}: {msg}");
    for n in needles {
        assert!(msg.contains(n), "message lacks {n:?}: {msg}");
    }
}
