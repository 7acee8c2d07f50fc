//! The latency table `winq bench layers -o FILE` writes: the engine's time for every candidate
//! on every 3x3 layer shape of a model, on the machine that ran it ([`measure`]).

use crate::error::{NasError, Result, ResultExt};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use winq_engine::timing::random_input;
use winq_engine::Net;
use winq_nn::conv::xavier_uniform;
use winq_nn::models::{fitted_tile, lenet, resnet18like, Algo, ConvChoice, ConvSite, ResNetConfig};
use winq_nn::{Conv2d, Layer, Mode, Precision, Tensor, WinogradConv2d};
use winq_train::config::ModelKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub batch: usize,
    pub candidate: String,
    pub ms: f64,
    /// Threads the entry was measured on (tables with several thread counts); absent: the
    /// table's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    #[serde(default)]
    pub cpu: String,
    #[serde(default)]
    pub isa: String,
    #[serde(default)]
    pub threads: usize,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub mult: f32,
    /// [channels, height, width] of the model input the shapes came from.
    #[serde(default)]
    pub input: Vec<usize>,
    pub entries: Vec<Entry>,
    /// Timed repetitions per entry (median).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reps: Option<usize>,
}

/// What to measure: every 3x3 layer shape of `model` (width `mult`, input channels×size×size),
/// for each batch size and thread count (the first thread count is the table's).
#[derive(Debug, Clone)]
pub struct MeasureSpec {
    pub model: ModelKind,
    pub mult: f32,
    pub channels: usize,
    pub size: usize,
    pub batches: Vec<usize>,
    pub threads: Vec<usize>,
    pub reps: usize,
}

/// The candidates timed per shape: im2row INT8 and FP32, and F2/F4/F6 INT8 and FP32 where the
/// tile fits the map (the model would fall back to a smaller tile elsewhere). Flex and static
/// layers deploy the same kernel, so static ones are timed.
fn timed_candidates(h: usize, w: usize) -> Vec<ConvChoice> {
    let mut v = Vec::new();
    for precision in [Precision::Int(8), Precision::Fp32] {
        v.push(ConvChoice {
            algo: Algo::Im2row,
            precision,
        });
    }
    for m in [2, 4, 6].into_iter().filter(|&m| fitted_tile(m, h, w) == m) {
        for precision in [Precision::Int(8), Precision::Fp32] {
            v.push(ConvChoice {
                algo: Algo::Winograd { m, flex: false },
                precision,
            });
        }
    }
    v
}

/// The engine's time for one candidate layer (ms): a training layer settled by one forward
/// (real quantizer ranges), exported and run channel-last as inside a network.
fn layer_ms(
    choice: &ConvChoice,
    (c, k, h, w): (usize, usize, usize, usize),
    batch: usize,
    reps: usize,
    rng: &mut ChaCha8Rng,
) -> Result<f64> {
    let weight = xavier_uniform(k, c, 3, rng);
    let mut layer: Box<dyn Layer> = match choice.algo {
        Algo::Im2row => Box::new(Conv2d::new(c, k, 3, choice.precision, weight)),
        Algo::Winograd { m, flex } => Box::new(WinogradConv2d::new(
            c,
            k,
            m,
            winq_transforms::PointSet::Default,
            flex,
            choice.precision,
            weight,
        )?),
    };
    let mut x = random_input(batch, c, h, w, 9);
    x.data.iter_mut().for_each(|v| *v = (*v + 1.0) / 2.0); // post-ReLU-like, in [0, 1)
    layer.forward(&Tensor::from_vec(&[batch, c, h, w], x.data.clone()), Mode::Train);
    let op = layer.export()?;
    let net = Net::compile(&op)?;
    Ok(net.latency_nhwc_ms(&x, reps))
}

/// Measures a latency table; `progress` sees every entry as it is timed.
pub fn measure(spec: &MeasureSpec, progress: &mut (dyn FnMut(&Entry) + Send)) -> Result<LatencyTable> {
    if spec.threads.is_empty() || spec.threads.contains(&0) {
        return Err(NasError::invalid("thread counts must be at least 1"));
    }
    if spec.batches.is_empty() || spec.batches.contains(&0) {
        return Err(NasError::invalid("batch sizes must be at least 1"));
    }
    let base = ConvChoice::IM2ROW_INT8;
    let cfg = ResNetConfig {
        convs: vec![base; spec.model.conv_layers()],
        ..ResNetConfig::uniform(spec.channels, spec.size, 10, spec.mult, base)
    };
    let (_, placed) = match spec.model {
        ModelKind::Resnet18like => resnet18like(&cfg)?,
        ModelKind::Lenet => lenet(&cfg)?,
    };
    let mut shapes: Vec<(usize, usize, usize, usize)> = Vec::new();
    for p in &placed {
        let s = (p.in_channels, p.out_channels, p.height, p.width);
        if !shapes.contains(&s) {
            shapes.push(s);
        }
    }
    let mut entries = Vec::new();
    for &threads in &spec.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("starting the timing threads")?;
        pool.install(|| -> Result<()> {
            for &(c, k, h, w) in &shapes {
                for &batch in &spec.batches {
                    let mut rng = ChaCha8Rng::seed_from_u64(3);
                    for choice in timed_candidates(h, w) {
                        let e = Entry {
                            in_channels: c,
                            out_channels: k,
                            height: h,
                            width: w,
                            batch,
                            candidate: choice.kernel_key(),
                            ms: layer_ms(&choice, (c, k, h, w), batch, spec.reps, &mut rng)?,
                            threads: Some(threads),
                        };
                        progress(&e);
                        entries.push(e);
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(LatencyTable {
        cpu: cpu_model(),
        isa: winq_kernels::int8::path_name().into(),
        threads: spec.threads[0],
        model: spec.model.to_string(),
        mult: spec.mult,
        input: vec![spec.channels, spec.size, spec.size],
        entries,
        reps: Some(spec.reps),
    })
}

/// The CPU's model name (for the record of where a table was measured).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

impl LatencyTable {
    /// Writes the table as JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        winq_train::checkpoint::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads and checks a table (non-empty, finite positive times).
    pub fn read(path: &Path) -> Result<LatencyTable> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the latency table {}", path.display()))?;
        let mut t: LatencyTable = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a latency table (write one with `winq bench layers -o FILE`)",
                path.display()
            )
        })?;
        // A table measured on several thread counts: keep the table's own (its first).
        let own = t.threads;
        t.entries.retain(|e| e.threads.is_none_or(|n| n == own));
        t.check()
            .with_context(|| format!("latency table {}", path.display()))?;
        Ok(t)
    }

    pub fn check(&self) -> Result<()> {
        if self.entries.is_empty() {
            return Err(NasError::invalid("it has no entries"));
        }
        if let Some(e) = self.entries.iter().find(|e| !(e.ms.is_finite() && e.ms > 0.0)) {
            return Err(NasError::Invalid(format!(
                "entry {} {}->{} {}x{} has an invalid time {} ms",
                e.candidate, e.in_channels, e.out_channels, e.height, e.width, e.ms
            )));
        }
        Ok(())
    }

    /// Milliseconds of `choice` on the layer at `site` for `batch` images.
    pub fn lookup(&self, site: &ConvSite, choice: &ConvChoice, batch: usize) -> Result<f64> {
        let key = choice.kernel_key();
        let same_shape = |e: &&Entry| {
            e.in_channels == site.in_channels
                && e.out_channels == site.out_channels
                && e.height == site.height
                && e.width == site.width
                && e.batch == batch
        };
        if let Some(e) = self
            .entries
            .iter()
            .filter(same_shape)
            .find(|e| e.candidate == key)
        {
            return Ok(e.ms);
        }
        let here: Vec<&str> = self
            .entries
            .iter()
            .filter(same_shape)
            .map(|e| e.candidate.as_str())
            .collect();
        if here.is_empty() {
            return Err(NasError::Invalid(format!(
                "the latency table has no layer {}->{} at {}x{} for batch {batch} (it was measured for {} x{} \
                 on input {:?}); measure one for this model with `winq bench layers --model M --mult M \
                 --size S --channels C --batches {batch} -o FILE`",
                site.in_channels,
                site.out_channels,
                site.height,
                site.width,
                if self.model.is_empty() { "?" } else { &self.model },
                self.mult,
                self.input
            )));
        }
        Err(NasError::Invalid(format!(
            "the latency table has no '{key}' for layer {}->{} at {}x{} (batch {batch}; it has {}); \
             drop that candidate (--bits / --algos) or add it to the table",
            site.in_channels,
            site.out_channels,
            site.height,
            site.width,
            here.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use winq_nn::models::Algo;
    use winq_nn::Precision;

    fn table() -> LatencyTable {
        serde_json::from_str(
            r#"{"cpu":"x","threads":1,"model":"lenet","mult":1,"input":[1,28,28],"entries":[
            {"in_channels":4,"out_channels":8,"height":14,"width":14,"batch":1,"candidate":"im2row-int8","ms":0.5},
            {"in_channels":4,"out_channels":8,"height":14,"width":14,"batch":1,"candidate":"F4-int8","ms":0.2}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn lookup_finds_the_shape_and_names_what_is_missing() {
        let t = table();
        let site = ConvSite {
            index: 0,
            in_channels: 4,
            out_channels: 8,
            height: 14,
            width: 14,
        };
        let f4 = |flex| ConvChoice {
            algo: Algo::Winograd { m: 4, flex },
            precision: Precision::Int(8),
        };
        assert_eq!(t.lookup(&site, &f4(true), 1).unwrap(), 0.2);
        assert_eq!(t.lookup(&site, &f4(false), 1).unwrap(), 0.2);
        let e = t.lookup(&site, &f4(true), 8).unwrap_err().to_string();
        assert!(e.contains("no layer 4->8 at 14x14 for batch 8"), "{e}");
        let f2 = ConvChoice {
            algo: Algo::Winograd { m: 2, flex: true },
            precision: Precision::Int(8),
        };
        let e = t.lookup(&site, &f2, 1).unwrap_err().to_string();
        assert!(
            e.contains("no 'F2-int8'") && e.contains("im2row-int8, F4-int8"),
            "{e}"
        );
    }

    /// A table measured on several thread counts (`bench layers --threads-list 1,2`) reads
    /// as the table's own thread count.
    #[test]
    fn several_thread_counts_keep_the_tables_own() {
        let path = std::env::temp_dir().join(format!("winq-lut-threads-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"threads":2,"entries":[
            {"in_channels":4,"out_channels":8,"height":14,"width":14,"batch":1,"candidate":"im2row-int8","ms":0.5,"threads":1},
            {"in_channels":4,"out_channels":8,"height":14,"width":14,"batch":1,"candidate":"im2row-int8","ms":0.3,"threads":2}]}"#,
        )
        .unwrap();
        let t = LatencyTable::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(t.entries.len(), 1);
        assert_eq!((t.entries[0].ms, t.entries[0].threads), (0.3, Some(2)));
    }

    #[test]
    fn invalid_times_are_refused() {
        let mut t = table();
        t.entries[1].ms = f64::NAN;
        assert!(t.check().is_err());
        t.entries.clear();
        assert!(t.check().is_err());
    }
}
