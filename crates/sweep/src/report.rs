//! `winq report`: finished run directories (trainings, adapts, searches with their retraining,
//! exported models) gathered into one table — a row per configuration, mean ± std over seeds —
//! and plots. The configuration of a run is read from what the run recorded (config.json,
//! search.json, point.json), never from its directory name.

use crate::{Result, SweepError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use winq_train::config::TrainConfig;

/// The fields that describe a run, in table order.
pub const FIELDS: [&str; 20] = [
    "command",
    "dataset",
    "input",
    "model",
    "mult",
    "algo",
    "mode",
    "bits",
    "layers",
    "points",
    "per-tap",
    "per-channel",
    "lambda",
    "epochs",
    "batch",
    "lr",
    "weight-decay",
    "optimizer",
    "schedule",
    "seed",
];

/// The metrics a report can summarise.
pub const METRICS: [&str; 5] = ["test_acc", "test_acc_last", "val_acc", "latency_ms", "seconds"];

/// One finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub dir: PathBuf,
    /// Describing fields (FIELDS, then options a sweep set that FIELDS do not cover).
    pub fields: BTreeMap<String, String>,
    /// Metrics (accuracies in %, latency in ms, wall time in s) where known.
    pub metrics: BTreeMap<String, f64>,
    /// The exported model, when the run has one (`model.winq`).
    #[serde(skip)]
    pub model: Option<PathBuf>,
}

fn read(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_config(path: &Path) -> Result<TrainConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| SweepError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        SweepError::Invalid(format!(
            "{} is not a winq run configuration ({e})",
            path.display()
        ))
    })
}

/// algo / mode / bits of a list of layer choices: the shared value, or "mixed".
fn layer_fields(cfg: &TrainConfig, f: &mut BTreeMap<String, String>) {
    let layers = cfg.model.layers_used.as_ref().unwrap_or(&cfg.model.layers);
    let same = |g: &dyn Fn(&winq_ir::ConvChoice) -> String| -> String {
        let v: Vec<String> = layers.iter().map(g).collect();
        match v.first() {
            Some(x) if v.iter().all(|y| y == x) => x.clone(),
            _ => "mixed".into(),
        }
    };
    f.insert(
        "algo".into(),
        same(&|c| match c.algo {
            winq_ir::Algo::Im2row => "im2row".into(),
            winq_ir::Algo::Winograd { m, .. } => format!("F{m}"),
        }),
    );
    f.insert(
        "mode".into(),
        same(&|c| match c.algo {
            winq_ir::Algo::Im2row => "-".into(),
            winq_ir::Algo::Winograd { flex, .. } => (if flex { "flex" } else { "static" }).into(),
        }),
    );
    f.insert("bits".into(), same(&|c| c.precision.bits().to_string()));
    // A mixed network is told apart by its whole layer list.
    if !layers.windows(2).all(|w| w[0] == w[1]) {
        f.insert(
            "layers".into(),
            layers.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" "),
        );
    }
}

fn config_fields(cfg: &TrainConfig, f: &mut BTreeMap<String, String>) {
    let m = &cfg.model;
    for (k, v) in [
        ("dataset", cfg.dataset.to_string()),
        ("input", cfg.input_shape().to_string()),
        ("model", m.arch.to_string()),
        ("mult", m.mult.to_string()),
        ("points", m.points.clone()),
        ("per-tap", m.granularity.per_tap.to_string()),
        ("per-channel", m.granularity.per_channel_weights.to_string()),
        ("epochs", cfg.epochs.to_string()),
        ("batch", cfg.batch.to_string()),
        ("lr", cfg.lr.to_string()),
        ("weight-decay", cfg.weight_decay.to_string()),
        ("optimizer", format!("{:?}", cfg.optimizer).to_lowercase()),
        ("schedule", format!("{:?}", cfg.schedule).to_lowercase()),
        ("seed", cfg.seed.to_string()),
    ] {
        f.insert(k.into(), v);
    }
    layer_fields(cfg, f);
}

/// The run in `dir`, if it is a finished one (None: not a run, or not finished).
pub fn read_run(dir: &Path) -> Result<Option<Run>> {
    let mut fields = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    let point = read(&dir.join(crate::point::POINT_FILE));
    if dir.join("search.json").is_file() {
        let (Some(s), Some(r)) = (read(&dir.join("search.json")), read(&dir.join("retrain.json"))) else {
            return Ok(None);
        };
        let retrain_cfg = dir.join("retrain").join("config.json");
        if retrain_cfg.is_file() {
            config_fields(&read_config(&retrain_cfg)?, &mut fields);
        }
        // The layers a search picks are its outcome, not its configuration: seeds of one
        // search setting share a row.
        fields.remove("layers");
        fields.insert("command".into(), "search".into());
        fields.insert("algo".into(), "wiNAS".into());
        fields.insert("mode".into(), "searched".into());
        fields.insert("bits".into(), "searched".into());
        if let Some(l) = s["options"]["lambda"].as_f64() {
            fields.insert("lambda".into(), l.to_string());
        }
        if let Some(a) = r["test_acc"].as_f64() {
            metrics.insert("test_acc".into(), 100.0 * a);
        }
        let search_s = read(&dir.join("outcome.json")).and_then(|o| o["seconds"].as_f64());
        if let (Some(a), Some(b)) = (search_s, r["train_seconds"].as_f64()) {
            metrics.insert("seconds".into(), a + b);
        }
    } else if dir.join("config.json").is_file() && dir.join("results.json").is_file() {
        let cfg = read_config(&dir.join("config.json"))?;
        config_fields(&cfg, &mut fields);
        let command = point
            .as_ref()
            .and_then(|p| p["argv"][0].as_str().map(String::from))
            .unwrap_or_else(|| "train".into());
        fields.insert("command".into(), command);
        let r = read(&dir.join("results.json")).unwrap_or_default();
        for (k, key) in [
            ("test_acc", "test_acc_best"),
            ("test_acc_last", "test_acc_last"),
            ("val_acc", "best_val_acc"),
        ] {
            if let Some(v) = r[key].as_f64() {
                metrics.insert(k.into(), 100.0 * v);
            }
        }
        if let Some(s) = r["seconds"].as_f64() {
            metrics.insert("seconds".into(), s);
        }
    } else {
        return Ok(None);
    }
    // Options a sweep varied that the recorded configuration does not name (e.g. warmup);
    // per-tensor is the recorded per-tap field's opposite.
    if let Some(opts) = point.as_ref().and_then(|p| p["options"].as_array().cloned()) {
        for o in opts {
            if let (Some(k), Some(v)) = (o[0].as_str(), o[1].as_str()) {
                if !FIELDS.contains(&k)
                    && !["data", "quiet", "layers", "lut", "from", "per-tensor"].contains(&k)
                {
                    fields.entry(k.to_string()).or_insert_with(|| v.to_string());
                }
            }
        }
    }
    let model = Some(dir.join("model.winq")).filter(|m| m.is_file());
    Ok(Some(Run {
        dir: dir.to_path_buf(),
        fields,
        metrics,
        model,
    }))
}

/// What `gather` found.
#[derive(Debug, Default)]
pub struct Gathered {
    pub runs: Vec<Run>,
    /// Runs without results yet (or searches without `--retrain`).
    pub unfinished: Vec<PathBuf>,
    /// Directories that look like runs but cannot be read, with why (left out, not fatal: one
    /// broken run must not hide the others).
    pub unreadable: Vec<String>,
}

/// Every finished run under the given directories (a run directory itself, or any folder
/// above runs: a sweep's output root, `runs/`), in path order.
pub fn gather(dirs: &[PathBuf]) -> Result<Gathered> {
    let mut g = Gathered::default();
    fn walk(d: &Path, depth: usize, g: &mut Gathered) -> Result<()> {
        match read_run(d) {
            Ok(Some(r)) => {
                g.runs.push(r);
                return Ok(());
            }
            Ok(None) => {}
            Err(e) => {
                g.unreadable.push(format!("{}: {e}", d.display()));
                return Ok(());
            }
        }
        if d.join("config.json").is_file() || d.join("search.json").is_file() {
            g.unfinished.push(d.to_path_buf());
            return Ok(());
        }
        if depth == 0 {
            return Ok(());
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|e| SweepError::io(d, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("attempt-"))
            })
            .collect();
        subs.sort();
        for s in subs {
            walk(&s, depth - 1, g)?;
        }
        Ok(())
    }
    for d in dirs {
        if !d.is_dir() {
            return Err(SweepError::Invalid(format!("{} is not a directory", d.display())));
        }
        walk(d, 6, &mut g)?;
    }
    Ok(g)
}

/// Measures the engine latency of every run's exported model (batch 1, `threads` threads,
/// median of `reps`), all in this one process so that they compare. Returns the models that
/// could not be loaded or run, with why (their runs keep no latency).
pub fn measure_latency(runs: &mut [Run], reps: usize, threads: usize) -> Vec<String> {
    let mut failed = Vec::new();
    for r in runs.iter_mut() {
        let Some(m) = &r.model else { continue };
        let timed = winq_ir::load(m)
            .map_err(|e| e.to_string())
            .and_then(|(op, info)| {
                winq_nas::run::engine_ms(&op, 1, (info.channels, info.height, info.width), reps, threads)
                    .map_err(|e| e.to_string())
            });
        match timed {
            Ok(ms) => {
                r.metrics.insert("latency_ms".into(), ms);
            }
            Err(e) => failed.push(format!("{}: {e}", m.display())),
        }
    }
    failed
}

/// mean, sample standard deviation (None for one value) and count.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
    pub n: usize,
}

impl Stat {
    pub fn of(v: &[f64]) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let std =
            (n > 1).then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Some(Stat { mean, std, n })
    }
}

/// One configuration: the runs that agree on the grouping fields.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub key: BTreeMap<String, String>,
    pub runs: usize,
    pub seeds: Vec<String>,
    /// Every metric any of its runs has.
    pub stats: BTreeMap<String, Stat>,
    pub dirs: Vec<PathBuf>,
}

/// A report: its rows, the fields they are grouped by, and the fields all runs share.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub group_by: Vec<String>,
    pub common: BTreeMap<String, String>,
    pub metric: String,
    pub rows: Vec<Row>,
}

/// Groups runs into rows: by `group_by`, or by every field that differs between runs except
/// the seed (so that a row's runs are the seeds of one configuration).
pub fn table(runs: &[Run], group_by: Option<&[String]>, metric: &str) -> Result<Table> {
    if !METRICS.contains(&metric) {
        return Err(SweepError::Invalid(format!(
            "--metric {metric}: use one of {}",
            METRICS.join(", ")
        )));
    }
    let mut all_fields: Vec<String> = FIELDS.iter().map(|s| s.to_string()).collect();
    for r in runs {
        for k in r.fields.keys() {
            if !all_fields.contains(k) {
                all_fields.push(k.clone());
            }
        }
    }
    let value = |r: &Run, k: &str| r.fields.get(k).cloned().unwrap_or_else(|| "-".into());
    let varies = |k: &str| runs.iter().any(|r| value(r, k) != value(&runs[0], k));
    let group_by: Vec<String> = match group_by {
        Some(g) => {
            for k in g {
                if !all_fields.contains(k) {
                    return Err(SweepError::Invalid(format!(
                        "--group-by {k}: the runs have no such field (fields: {})",
                        all_fields.join(", ")
                    )));
                }
            }
            g.to_vec()
        }
        None => all_fields
            .iter()
            .filter(|k| *k != "seed" && varies(k))
            .cloned()
            .collect(),
    };
    let common = if runs.is_empty() {
        BTreeMap::new()
    } else {
        all_fields
            .iter()
            .filter(|k| !varies(k) && !group_by.contains(k) && runs[0].fields.contains_key(*k))
            .map(|k| (k.clone(), value(&runs[0], k)))
            .collect()
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut values: Vec<BTreeMap<String, Vec<f64>>> = Vec::new();
    for r in runs {
        let key: BTreeMap<String, String> = group_by.iter().map(|k| (k.clone(), value(r, k))).collect();
        let at = match rows.iter().position(|row| row.key == key) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    key,
                    runs: 0,
                    seeds: Vec::new(),
                    stats: BTreeMap::new(),
                    dirs: Vec::new(),
                });
                values.push(BTreeMap::new());
                rows.len() - 1
            }
        };
        rows[at].runs += 1;
        rows[at].seeds.push(value(r, "seed"));
        rows[at].dirs.push(r.dir.clone());
        for (m, v) in &r.metrics {
            values[at].entry(m.clone()).or_default().push(*v);
        }
    }
    for (row, vals) in rows.iter_mut().zip(&values) {
        row.stats = vals
            .iter()
            .filter_map(|(m, v)| Some((m.clone(), Stat::of(v)?)))
            .collect();
    }
    Ok(Table {
        group_by,
        common,
        metric: metric.to_string(),
        rows,
    })
}

/// The unit of a metric, as a column or axis suffix.
pub(crate) fn unit(metric: &str) -> &'static str {
    match metric {
        "latency_ms" => " (ms)",
        "seconds" => " (s)",
        _ => " (%)",
    }
}

fn fmt_stat(s: Option<&Stat>, digits: usize) -> String {
    match s {
        None => "–".into(),
        Some(Stat {
            mean, std: Some(sd), ..
        }) => format!("{mean:.digits$} ± {sd:.digits$}"),
        Some(Stat { mean, .. }) => format!("{mean:.digits$}"),
    }
}

/// The extra columns beside the chosen metric: latency where measured, wall time.
fn extra_metrics(t: &Table) -> Vec<&'static str> {
    ["latency_ms", "seconds"]
        .into_iter()
        .filter(|m| *m != t.metric && t.rows.iter().any(|r| r.stats.contains_key(*m)))
        .collect()
}

/// The table as Markdown (a line of the fields every run shares above it).
pub fn markdown(t: &Table) -> String {
    let mut s = String::new();
    if !t.common.is_empty() {
        s += &format!(
            "All runs: {}.\n\n",
            t.common
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let extra = extra_metrics(t);
    let mut head: Vec<String> = t.group_by.clone();
    head.push(format!("{}{}", t.metric, unit(&t.metric)));
    head.push("runs".into());
    head.extend(extra.iter().map(|m| format!("{m}{}", unit(m))));
    s += &format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for r in &t.rows {
        let mut cells: Vec<String> = t.group_by.iter().map(|k| r.key[k].clone()).collect();
        cells.push(fmt_stat(
            r.stats.get(&t.metric),
            if t.metric == "latency_ms" { 3 } else { 2 },
        ));
        cells.push(r.runs.to_string());
        for m in &extra {
            cells.push(fmt_stat(r.stats.get(*m), if *m == "latency_ms" { 3 } else { 0 }));
        }
        s += &format!("| {} |\n", cells.join(" | "));
    }
    s
}

/// The table as CSV (one row per configuration; mean and std columns per metric).
pub fn csv(t: &Table) -> String {
    let field = |v: &str| {
        if v.contains([',', '"', '\n']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_string()
        }
    };
    let metrics: Vec<&str> = METRICS
        .into_iter()
        .filter(|m| t.rows.iter().any(|r| r.stats.contains_key(*m)))
        .collect();
    let mut head: Vec<String> = t.group_by.clone();
    head.push("runs".into());
    for m in &metrics {
        head.push(format!("{m}_mean"));
        head.push(format!("{m}_std"));
    }
    let mut s = head.iter().map(|h| field(h)).collect::<Vec<_>>().join(",") + "\n";
    for r in &t.rows {
        let mut cells: Vec<String> = t.group_by.iter().map(|k| field(&r.key[k])).collect();
        cells.push(r.runs.to_string());
        for m in &metrics {
            let st = r.stats.get(*m);
            cells.push(st.map_or(String::new(), |s| s.mean.to_string()));
            cells.push(st.and_then(|s| s.std).map_or(String::new(), |s| s.to_string()));
        }
        s += &(cells.join(",") + "\n");
    }
    s
}

/// A row's label for plots: its grouping values (a yes/no field by its name when set).
pub fn label(t: &Table, r: &Row, skip: &[&str]) -> String {
    let parts: Vec<String> = t
        .group_by
        .iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .filter_map(|k| match r.key[k].as_str() {
            "-" | "false" => None,
            "true" => Some(k.clone()),
            v => Some(v.to_string()),
        })
        .collect();
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(algo: &str, seed: &str, acc: f64) -> Run {
        let fields = [("algo", algo), ("seed", seed), ("model", "lenet")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Run {
            dir: PathBuf::from(format!("{algo}-{seed}")),
            fields,
            metrics: [("test_acc".to_string(), acc)].into_iter().collect(),
            model: None,
        }
    }

    #[test]
    fn groups_seeds_and_summarises() {
        let runs = [
            run("F4", "0", 90.0),
            run("F4", "1", 92.0),
            run("im2row", "0", 93.0),
        ];
        let t = table(&runs, None, "test_acc").unwrap();
        assert_eq!(t.group_by, ["algo"]);
        assert_eq!(t.common.get("model").map(String::as_str), Some("lenet"));
        assert_eq!(t.rows.len(), 2);
        let s = t.rows[0].stats["test_acc"];
        assert_eq!((s.mean, s.n), (91.0, 2));
        assert!((s.std.unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(t.rows[1].stats["test_acc"].std, None);
        let md = markdown(&t);
        assert!(md.contains("| F4 | 91.00 ± 1.41 | 2 |"), "{md}");
        assert!(md.contains("| im2row | 93.00 | 1 |"), "{md}");
        let c = csv(&t);
        assert!(c.starts_with("algo,runs,test_acc_mean,test_acc_std\n"), "{c}");
        assert!(table(&runs, Some(&["nope".to_string()]), "test_acc").is_err());
        assert!(table(&runs, None, "accuracy").is_err());
    }
}
