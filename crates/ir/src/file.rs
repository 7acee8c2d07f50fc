//! The deploy file (`.winq`): a safetensors file whose tensors are the graph's tensors, named
//! by where they sit ([`Op::tensors_mut`]; quantized ones as i8 codes), and whose metadata holds
//! the graph's structure and scales as JSON (serde of [`Op`]), the input description and a
//! format version. Loading checks the whole graph ([`Op::output_shape`]); a bad or truncated
//! file is a clear error, never a panic.

use crate::{IrError, Op, TensorMut};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The format this build writes and reads.
pub const FORMAT: &str = "winq-deploy-3";

/// Input geometry and labels of a model, stored beside the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// Per-channel normalisation the model was trained with.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Free-form description (source checkpoint, configuration).
    pub source: String,
    /// Images smaller than height×width were zero-padded to it (centred, before normalisation)
    /// in training: `winq run` does the same. None: images must have the input's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_to: Option<usize>,
    /// The classes' names, by index (empty: numbered only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Serializes a network; the file is written atomically (temporary file, then rename).
pub fn save(path: &Path, op: &Op, info: &ModelInfo) -> Result<(), IrError> {
    let shown = path.display().to_string();
    let invalid = |why: String| IrError::Invalid {
        path: shown.clone(),
        why,
    };
    check(op, info).map_err(|e| invalid(e.to_string()))?;
    let mut graph = op.clone();
    let bytes: Vec<(String, Vec<u8>, usize, Dtype)> = graph
        .tensors_mut()
        .into_iter()
        .map(|(name, t)| match t {
            TensorMut::F32(v) => (
                name,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.len(),
                Dtype::F32,
            ),
            TensorMut::Codes(v) => (name, v.iter().map(|&x| x as u8).collect(), v.len(), Dtype::I8),
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, b, len, dt)| {
            Ok((
                n.clone(),
                TensorView::new(*dt, vec![*len], b).map_err(|e| invalid(e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<(String, TensorView)>, IrError>>()?;
    let json = |v: serde_json::Result<String>| v.map_err(|e| invalid(e.to_string()));
    let (graph_json, input_json) = (
        json(serde_json::to_string(op))?,
        json(serde_json::to_string(info))?,
    );
    // Over the graph, the input description and every tensor: a changed scale in the JSON is
    // as much a different model as a changed weight.
    let described = [("graph", graph_json.as_bytes()), ("input", input_json.as_bytes())];
    let sum = crate::checksum(
        described
            .into_iter()
            .chain(bytes.iter().map(|(n, b, _, _)| (n.as_str(), b.as_slice()))),
    );
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("checksum".to_string(), sum),
        ("graph".to_string(), graph_json),
        ("input".to_string(), input_json),
    ]);
    let data = safetensors::tensor::serialize(views, &Some(meta)).map_err(|e| invalid(e.to_string()))?;
    crate::write_atomic(path, &data).map_err(|(path, source)| IrError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The graph must run on the recorded input and give one score per class.
fn check(op: &Op, info: &ModelInfo) -> Result<(), IrError> {
    let out = op.output_shape((info.channels, info.height, info.width))?;
    if out != (info.classes, 1, 1) {
        return Err(IrError::Graph(format!(
            "the graph gives {out:?}, not {} class scores",
            info.classes
        )));
    }
    Ok(())
}

/// Whether `path` holds a winq deploy model of any version (its header says so): what may be
/// replaced by a new export without asking.
pub fn is_deploy_file(path: &Path) -> bool {
    use std::io::Read;
    // Only the header: its 8-byte length, then the JSON (a model's tensors can be large).
    let header = || -> Option<serde_json::Value> {
        let mut f = std::fs::File::open(path).ok()?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).ok()?;
        let n = usize::try_from(u64::from_le_bytes(len))
            .ok()
            .filter(|&n| n <= 100_000_000)?;
        let mut json = vec![0u8; n];
        f.read_exact(&mut json).ok()?;
        serde_json::from_slice(&json).ok()
    };
    header()
        .and_then(|h| {
            h["__metadata__"]["format"]
                .as_str()
                .map(|f| f.starts_with("winq-deploy"))
        })
        .unwrap_or(false)
}

/// Reads a `.winq` file and checks it.
pub fn load(path: &Path) -> Result<(Op, ModelInfo), IrError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| IrError::Read {
        path: shown.clone(),
        source: e,
    })?;
    let corrupt = |why: String| IrError::Corrupt {
        path: shown.clone(),
        why,
    };
    let bad = |why: String| IrError::Invalid {
        path: shown.clone(),
        why,
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let meta = meta
        .metadata()
        .clone()
        .ok_or_else(|| bad("no metadata: not a winq model".into()))?;
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some("winq-checkpoint-1") => {
            return Err(bad(
                "this is a training checkpoint, not a deploy model: run `winq export` first".into(),
            ))
        }
        Some(other) if other.starts_with("winq-deploy") => {
            return Err(bad(format!(
                "format {other} from an older winq; this winq reads {FORMAT}: export the model again"
            )))
        }
        other => return Err(bad(format!("format {other:?}, this winq reads {FORMAT}"))),
    }
    let field = |k: &str| meta.get(k).ok_or_else(|| bad(format!("no '{k}' metadata")));
    let mut op: Op = serde_json::from_str(field("graph")?).map_err(|e| bad(format!("bad graph: {e}")))?;
    let info: ModelInfo =
        serde_json::from_str(field("input")?).map_err(|e| bad(format!("bad input description: {e}")))?;
    let mut expected = 0;
    let mut parts: Vec<(String, &[u8])> = Vec::new();
    for (name, t) in op.tensors_mut() {
        expected += 1;
        let view = st
            .tensor(&name)
            .map_err(|_| bad(format!("tensor {name} is missing")))?;
        parts.push((name.clone(), view.data()));
        let dtype = view.dtype();
        match t {
            TensorMut::F32(v) if dtype == Dtype::F32 => {
                *v = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            TensorMut::Codes(v) if dtype == Dtype::I8 => *v = view.data().iter().map(|&b| b as i8).collect(),
            _ => return Err(bad(format!("tensor {name} has dtype {dtype:?}"))),
        }
    }
    if st.len() != expected {
        return Err(bad(format!("{} tensors, the graph names {expected}", st.len())));
    }
    let described = [
        ("graph", field("graph")?.as_bytes()),
        ("input", field("input")?.as_bytes()),
    ];
    let sum = crate::checksum(
        described
            .into_iter()
            .chain(parts.iter().map(|(n, b)| (n.as_str(), *b))),
    );
    if field("checksum")? != &sum {
        return Err(bad(
            "the model does not match the file's checksum: it was changed or damaged after it was written"
                .into(),
        ));
    }
    check(&op, &info).map_err(|e| bad(e.to_string()))?;
    Ok((op, info))
}
