//! A prefetching batch loader. One background thread builds batches in order from a single ChaCha8 stream
//! chosen by (seed, epoch); since that thread alone draws random numbers, in a fixed order, the batches do
//! not depend on timing or on how the consumer's threads are scheduled.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Dataset, Normalization};

/// How many finished batches may wait in the channel: enough to hide decode/augment time behind a
/// training step without holding much memory.
const PREFETCH: usize = 4;

/// Training-time augmentation, in torchvision's order: random crop, then horizontal flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Augment {
    /// Random crop back to the original size after zero-padding by this many pixels; 0 = off.
    pub crop_pad: usize,
    /// Flip horizontally with probability 1/2.
    pub hflip: bool,
}

#[derive(Clone, Debug)]
pub struct LoaderOptions {
    pub batch: usize,
    pub shuffle: bool,
    pub seed: u64,
    pub epoch: u64,
    pub augment: Augment,
    pub norm: Normalization,
    /// Drop the last partial batch instead of yielding it short.
    pub drop_last: bool,
}

/// One batch: normalised images and their labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// N×C×H×W, (v/255 - mean)/std; crop padding is pixel value 0 before normalisation.
    pub x: Vec<f32>,
    pub labels: Vec<usize>,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Position of this batch in the epoch, from 0.
    pub index: usize,
}

/// Iterator over one epoch of batches, produced on a background thread.
pub struct Loader {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    batches: usize,
    yielded: usize,
}

fn batches_for(n: usize, batch: usize, drop_last: bool) -> usize {
    if drop_last {
        n / batch
    } else {
        n.div_ceil(batch)
    }
}

impl Loader {
    /// Starts the background thread for epoch `opts.epoch`. Panics (on the caller's thread) on a zero
    /// batch size or a normalisation whose length is neither 1 nor the dataset's channel count: both are
    /// programming errors, not bad input files.
    pub fn new(ds: Arc<Dataset>, opts: LoaderOptions) -> Loader {
        assert!(opts.batch > 0, "LoaderOptions::batch must be positive");
        for (what, v) in [("mean", &opts.norm.mean), ("std", &opts.norm.std)] {
            assert!(
                v.len() == 1 || v.len() == ds.c,
                "normalisation {what} has {} values for a {}-channel dataset",
                v.len(),
                ds.c
            );
        }
        let batches = batches_for(ds.n, opts.batch, opts.drop_last);
        let (tx, rx) = sync_channel(PREFETCH);
        let worker = std::thread::Builder::new()
            .name("winq-data-loader".into())
            .spawn(move || produce(&ds, &opts, batches, tx))
            .unwrap_or_else(|e| panic!("cannot spawn the data loader thread: {e}"));
        Loader {
            rx: Some(rx),
            worker: Some(worker),
            batches,
            yielded: 0,
        }
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.batches
    }
}

/// The per-(seed, epoch) random stream: ChaCha's 64-bit stream id separates epochs of one seed.
fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    rng
}

fn produce(ds: &Dataset, opts: &LoaderOptions, batches: usize, tx: SyncSender<Batch>) {
    let mut rng = epoch_rng(opts.seed, opts.epoch);
    let mut order: Vec<usize> = (0..ds.n).collect();
    if opts.shuffle {
        order.shuffle(&mut rng);
    }
    // Lookup table: normalised value of every byte in every channel, so the hot loop is one load.
    let lut = opts.norm.table(ds.c);
    let plane = ds.h * ds.w;
    for (index, idx) in order.chunks(opts.batch).take(batches).enumerate() {
        let mut x = vec![0f32; idx.len() * ds.c * plane];
        let mut labels = Vec::with_capacity(idx.len());
        for (k, &i) in idx.iter().enumerate() {
            // Draw order per image is fixed (crop dy, crop dx, flip) so streams stay reproducible.
            let p = opts.augment.crop_pad;
            let (dy, dx) = if p > 0 {
                (rng.gen_range(0..=2 * p), rng.gen_range(0..=2 * p))
            } else {
                (p, p)
            };
            let flip = opts.augment.hflip && rng.gen_bool(0.5);
            let img = ds.image(i);
            let out = &mut x[k * ds.c * plane..(k + 1) * ds.c * plane];
            for ch in 0..ds.c {
                let src = &img[ch * plane..(ch + 1) * plane];
                let dst = &mut out[ch * plane..(ch + 1) * plane];
                let lut = &lut[ch];
                for y in 0..ds.h {
                    // Row y of the crop is row y + dy - p of the image; outside it is zero padding.
                    let sy = (y + dy).wrapping_sub(p);
                    for xo in 0..ds.w {
                        let xs = if flip { ds.w - 1 - xo } else { xo };
                        let sx = (xs + dx).wrapping_sub(p);
                        let v = if sy < ds.h && sx < ds.w {
                            src[sy * ds.w + sx]
                        } else {
                            0
                        };
                        dst[y * ds.w + xo] = lut[v as usize];
                    }
                }
            }
            labels.push(ds.labels[i] as usize);
        }
        let batch = Batch {
            x,
            labels,
            n: idx.len(),
            c: ds.c,
            h: ds.h,
            w: ds.w,
            index,
        };
        // The receiver is gone when the Loader was dropped mid-epoch: just stop.
        if tx.send(batch).is_err() {
            return;
        }
    }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(b) => {
                self.yielded += 1;
                Some(b)
            }
            Err(_) => {
                // The worker finished (or died). Surface a panic instead of silently ending the epoch.
                self.rx = None;
                if let Some(worker) = self.worker.take() {
                    if let Err(panic) = worker.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.rx.is_some() {
            self.batches - self.yielded
        } else {
            0
        };
        (left, Some(left))
    }
}

impl ExactSizeIterator for Loader {}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping the receiver first makes a worker blocked in `send` return at once; then joining
        // is quick (at most one batch of work) and leaves no thread behind.
        self.rx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
