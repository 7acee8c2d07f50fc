//! Helpers the CLI test files share.

use std::path::Path;

/// The per-epoch lines of a run's metrics.jsonl without their timings (which differ between
/// otherwise identical runs).
pub fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in ["time_s", "img_per_s"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}
