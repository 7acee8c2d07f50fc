//! The latency table `winq bench layers -o FILE` writes: the engine's time for every candidate
//! on every 3x3 layer shape of a model, on the machine that ran it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use winq_nn::models::{ConvChoice, ConvSite};

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
}

impl LatencyTable {
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
            bail!("it has no entries");
        }
        if let Some(e) = self.entries.iter().find(|e| !(e.ms.is_finite() && e.ms > 0.0)) {
            bail!(
                "entry {} {}->{} {}x{} has an invalid time {} ms",
                e.candidate,
                e.in_channels,
                e.out_channels,
                e.height,
                e.width,
                e.ms
            );
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
            bail!(
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
            );
        }
        bail!(
            "the latency table has no '{key}' for layer {}->{} at {}x{} (batch {batch}; it has {}); \
             drop that candidate (--bits / --algos) or add it to the table",
            site.in_channels,
            site.out_channels,
            site.height,
            site.width,
            here.join(", ")
        )
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
