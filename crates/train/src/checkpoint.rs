//! Checkpoints: one safetensors file holding parameters ("param/…"), buffers ("buffer/…":
//! BN statistics, quantizer ranges, static transforms) and optimizer state ("optim/…"), with
//! the run configuration and progress as JSON metadata. Written atomically (temporary file,
//! fsync, rename), so a crash never leaves a half-written checkpoint under the real name.

use crate::config::TrainConfig;
use crate::error::{Result, ResultExt, TrainError};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use winq_nn::{Buffer, Layer, Optimizer};

pub const FORMAT: &str = "winq-checkpoint-1";

/// Progress of a run at the moment of the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    pub best_val_acc: f64,
    pub best_epoch: usize,
}

enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

struct Entry {
    shape: Vec<usize>,
    data: Data,
}

fn bytes(d: &Data) -> Vec<u8> {
    match d {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

pub use winq_ir::remove_stale_temporaries;

/// Writes `data` to `path` atomically (`winq_ir::write_atomic`).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    winq_ir::write_atomic(path, data)
        .map_err(|(p, e)| TrainError::from(e).context(format!("cannot write {}", p.display())))
}

/// Serializes model (and optionally optimizer) state with metadata.
pub fn save(
    path: &Path,
    model: &mut dyn Layer,
    optim: Option<&dyn Optimizer>,
    config: &TrainConfig,
    state: &RunState,
) -> Result<()> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    model.visit_params("", &mut |name, p| {
        entries.insert(
            format!("param/{name}"),
            Entry {
                shape: p.value.shape.clone(),
                data: Data::F32(p.value.data.clone()),
            },
        );
    });
    model.visit_buffers("", &mut |name, b| {
        let e = match b {
            Buffer::F32(v) => Entry {
                shape: vec![v.len()],
                data: Data::F32(v.to_vec()),
            },
            Buffer::F64(v) => Entry {
                shape: vec![v.len()],
                data: Data::F64(v.to_vec()),
            },
        };
        entries.insert(format!("buffer/{name}"), e);
    });
    let mut optim_steps = 0;
    if let Some(o) = optim {
        optim_steps = o.steps();
        for (name, v) in o.state() {
            entries.insert(
                format!("optim/{name}"),
                Entry {
                    shape: vec![v.len()],
                    data: Data::F32(v),
                },
            );
        }
    }
    let raw: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = entries
        .into_iter()
        .map(|(n, e)| {
            let dt = match e.data {
                Data::F32(_) => Dtype::F32,
                Data::F64(_) => Dtype::F64,
            };
            (n, bytes(&e.data), dt, e.shape)
        })
        .collect();
    let views: Vec<(String, TensorView)> = raw
        .iter()
        .map(|(n, b, dt, shape)| Ok((n.clone(), TensorView::new(*dt, shape.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("config".to_string(), serde_json::to_string(config)?);
    meta.insert("state".to_string(), serde_json::to_string(state)?);
    meta.insert("optim_steps".to_string(), optim_steps.to_string());
    // Over the run description and every tensor in name order: flipped bytes inside a tensor
    // or a number of the JSON are invisible to the safetensors structure, so reading compares
    // this.
    let sum = checkpoint_checksum(&meta, raw.iter().map(|(n, b, _, _)| (n.as_str(), b.as_slice())));
    meta.insert("checksum".to_string(), sum);
    let data = safetensors::tensor::serialize(views, &Some(meta))?;
    write_atomic(path, &data)
}

/// The checksum of a checkpoint: its run description (config, state, optimizer steps) and its
/// tensors in name order.
fn checkpoint_checksum<'a>(
    meta: &'a HashMap<String, String>,
    tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let described = ["config", "state", "optim_steps"]
        .into_iter()
        .map(|k| (k, meta.get(k).map_or(&[][..], |v| v.as_bytes())));
    winq_ir::checksum(described.chain(tensors))
}

/// A checkpoint read from disk and checked for consistency.
pub struct Checkpoint {
    bytes: Vec<u8>,
    pub config: TrainConfig,
    pub state: RunState,
    pub optim_steps: u64,
    path: String,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Checkpoint> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {shown}"))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            TrainError::Invalid(format!(
                "checkpoint {shown} is not a readable safetensors file (truncated or corrupt?): {e}"
            ))
        })?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| TrainError::Invalid(format!("checkpoint {shown} is corrupt: {e}")))?;
        let meta = meta
            .metadata()
            .clone()
            .ok_or_else(|| TrainError::Invalid(format!("checkpoint {shown} has no winq metadata")))?;
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(TrainError::Invalid(format!(
                "checkpoint {shown} is not a {FORMAT} file (format {:?})",
                meta.get("format")
            )));
        }
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| TrainError::Invalid(format!("checkpoint {shown} lacks '{k}' metadata")))
        };
        // Checkpoints written before checksums were recorded have none to compare.
        if let Some(want) = meta.get("checksum") {
            let mut names: Vec<&String> = st.names();
            names.sort();
            let views: Vec<(&str, &[u8])> = names
                .iter()
                .map(|n| Ok((n.as_str(), st.tensor(n)?.data())))
                .collect::<Result<_, safetensors::SafeTensorError>>()?;
            if &checkpoint_checksum(&meta, views) != want {
                return Err(TrainError::Invalid(format!(
                    "checkpoint {shown}: its contents do not match its checksum: it was changed or damaged after it was written"
                )));
            }
        }
        let config: TrainConfig = serde_json::from_str(get("config")?)
            .with_context(|| format!("checkpoint {shown}: bad config"))?;
        let state: RunState =
            serde_json::from_str(get("state")?).with_context(|| format!("checkpoint {shown}: bad state"))?;
        let optim_steps = get("optim_steps")?
            .parse::<u64>()
            .map_err(|e| TrainError::Invalid(format!("checkpoint {shown}: bad optim_steps: {e}")))?;
        Ok(Checkpoint {
            bytes,
            config,
            state,
            optim_steps,
            path: shown,
        })
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| TrainError::Invalid(format!("checkpoint {} is corrupt: {e}", self.path)))
    }

    /// Copies parameters and buffers into `model`. With `strict`, every model parameter and
    /// buffer must be present with the same shape; otherwise missing ones are skipped (adapt)
    /// and their names returned.
    pub fn load_model(&self, model: &mut dyn Layer, strict: bool) -> Result<Vec<String>> {
        let st = self.tensors()?;
        let mut errors = Vec::new();
        let mut missing = Vec::new();
        model.visit_params(
            "",
            &mut |name, p| match read_f32(&st, &format!("param/{name}"), &p.value.shape) {
                Ok(Some(v)) => p.value.data.copy_from_slice(&v),
                Ok(None) => missing.push(name.to_string()),
                Err(e) => errors.push(e),
            },
        );
        model.visit_buffers("", &mut |name, b| {
            let key = format!("buffer/{name}");
            match b {
                Buffer::F32(v) => match read_f32(&st, &key, &[v.len()]) {
                    Ok(Some(x)) => v.copy_from_slice(&x),
                    Ok(None) => missing.push(name.to_string()),
                    Err(e) => errors.push(e),
                },
                Buffer::F64(v) => match read_f64(&st, &key, v.len()) {
                    Ok(Some(x)) => v.copy_from_slice(&x),
                    Ok(None) => missing.push(name.to_string()),
                    Err(e) => errors.push(e),
                },
            }
        });
        if !errors.is_empty() {
            return Err(TrainError::Invalid(format!(
                "checkpoint {} does not fit the model: {}",
                self.path,
                errors.join("; ")
            )));
        }
        if strict && !missing.is_empty() {
            return Err(TrainError::Invalid(format!(
                "checkpoint {} lacks {} tensors the model needs, e.g. {}",
                self.path,
                missing.len(),
                missing[0]
            )));
        }
        Ok(missing)
    }

    pub fn load_optimizer(&self, model: &mut dyn Layer, optim: &mut dyn Optimizer) -> Result<()> {
        let st = self.tensors()?;
        let mut state = Vec::new();
        for (name, view) in st.tensors() {
            if let Some(n) = name.strip_prefix("optim/") {
                if view.dtype() != Dtype::F32 {
                    return Err(TrainError::Invalid(format!(
                        "checkpoint {}: optimizer tensor {n} is not f32",
                        self.path
                    )));
                }
                state.push((n.to_string(), le_f32(view.data())));
            }
        }
        state.sort_by(|a, b| a.0.cmp(&b.0));
        optim
            .load_state(model, state, self.optim_steps)
            .context(format!("checkpoint {}", self.path))
    }
}

fn le_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn read_f32(st: &SafeTensors, key: &str, shape: &[usize]) -> Result<Option<Vec<f32>>, String> {
    let Ok(view) = st.tensor(key) else { return Ok(None) };
    if view.dtype() != Dtype::F32 {
        return Err(format!("{key} is {:?}, expected F32", view.dtype()));
    }
    if view.shape() != shape {
        return Err(format!(
            "{key} has shape {:?}, the model has {:?}",
            view.shape(),
            shape
        ));
    }
    Ok(Some(le_f32(view.data())))
}

fn read_f64(st: &SafeTensors, key: &str, len: usize) -> Result<Option<Vec<f64>>, String> {
    let Ok(view) = st.tensor(key) else { return Ok(None) };
    let v: Vec<f64> = match view.dtype() {
        Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        Dtype::F32 => le_f32(view.data()).into_iter().map(f64::from).collect(),
        d => return Err(format!("{key} is {d:?}, expected F64")),
    };
    if v.len() != len {
        return Err(format!("{key} has {} values, the model has {len}", v.len()));
    }
    Ok(Some(v))
}

/// Every tensor (name -> little-endian bytes) and metadata entry of a checkpoint, in sorted
/// order: two checkpoints are the same when these are equal (the file bytes may differ,
/// since safetensors writes metadata in hash order).
pub type Contents = (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>);

pub fn contents(path: &Path) -> Result<Contents> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let corrupt = |e| TrainError::Invalid(format!("{} is corrupt: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
    let meta = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok((tensors, meta))
}
