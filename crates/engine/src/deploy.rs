//! The deploy format (`.winq`): a safetensors file whose tensors hold the exported values
//! (quantized weights as the eval forward uses them, pre-transformed Winograd weights,
//! transforms, BatchNorm and Linear parameters) and whose metadata holds a JSON description of
//! the operation graph with every scale, plus a format version. Loading validates the graph,
//! tensor names, dtypes and lengths; a bad or truncated file is a clear error.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use winq_nn::conv::ConvExport;
use winq_nn::export::Op;
use winq_nn::wa_conv::WinogradExport;

pub const FORMAT: &str = "winq-deploy-2";

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a winq model (truncated or corrupt safetensors: {why})")]
    Corrupt { path: String, why: String },
    #[error("{path}: {why}")]
    Invalid { path: String, why: String },
}

/// A tensor to store: f32 values, or 8-bit codes of quantized values.
enum Data {
    F32(Vec<f32>),
    I8(Vec<i8>),
}

struct Writer {
    tensors: Vec<(String, Data)>,
}

/// Codes of values that are code × f32(scale), one scale per `len / scales.len()` values.
pub(crate) fn codes(v: &[f32], scales: &[f64]) -> Vec<i8> {
    let per = (v.len() / scales.len().max(1)).max(1);
    v.iter()
        .enumerate()
        .map(|(i, &x)| (x as f64 / scales[i / per]).round().clamp(-128.0, 127.0) as i8)
        .collect()
}

/// Values of codes exactly as the training model's quantizers produce them.
fn values(c: &[i8], scales: &[f64]) -> Vec<f32> {
    let per = (c.len() / scales.len().max(1)).max(1);
    c.iter()
        .enumerate()
        .map(|(i, &q)| q as f32 * scales[i / per] as f32)
        .collect()
}

impl Writer {
    fn put(&mut self, v: &[f32]) -> String {
        let name = format!("t{}", self.tensors.len());
        self.tensors.push((name.clone(), Data::F32(v.to_vec())));
        name
    }

    /// Stores quantized values as their 8-bit codes (4x smaller; exact on reload).
    fn put_codes(&mut self, v: &[f32], scales: &[f64]) -> String {
        let name = format!("t{}", self.tensors.len());
        self.tensors.push((name.clone(), Data::I8(codes(v, scales))));
        name
    }

    fn op(&mut self, op: &Op) -> Value {
        match op {
            Op::ConvF32 { c, k, r, weight } => {
                json!({"op": "conv_f32", "c": c, "k": k, "r": r, "weight": self.put(weight)})
            }
            Op::WinogradF32 { c, k, m, at, bt, u } => json!({
                "op": "winograd_f32", "c": c, "k": k, "m": m,
                "at": self.put(at), "bt": self.put(bt), "u": self.put(u)
            }),
            Op::ConvI8(e) => json!({
                "op": "conv_i8", "c": e.in_channels, "k": e.out_channels, "r": e.kernel, "bits": e.bits,
                "weight": self.put_codes(&e.weight, &e.s_w), "s_w": e.s_w, "s_in": e.s_in, "s_out": e.s_out
            }),
            Op::WinogradI8(e) => json!({
                "op": "winograd_i8", "c": e.in_channels, "k": e.out_channels, "m": e.m, "bits": e.bits,
                "at": self.put_codes(&e.at, &[e.s_at]), "bt": self.put_codes(&e.bt, &[e.s_bt]), "s_at": e.s_at, "s_bt": e.s_bt,
                "u": self.put_codes(&e.u, &e.s_u), "s_u": e.s_u, "s_in": e.s_in, "s_v": e.s_v, "s_m": e.s_m, "s_out": e.s_out
            }),
            Op::BatchNorm { mean, scale, bias } => {
                json!({"op": "batchnorm", "mean": self.put(mean), "scale": self.put(scale), "bias": self.put(bias)})
            }
            Op::Relu => json!({"op": "relu"}),
            Op::MaxPool2 => json!({"op": "maxpool2"}),
            Op::GlobalAvgPool => json!({"op": "global_avg_pool"}),
            Op::Linear {
                inputs,
                outputs,
                weight,
                bias,
            } => json!({
                "op": "linear", "inputs": inputs, "outputs": outputs, "weight": self.put(weight), "bias": self.put(bias)
            }),
            Op::Seq(v) => json!({"op": "seq", "ops": v.iter().map(|o| self.op(o)).collect::<Vec<_>>()}),
            Op::Residual { body, shortcut } => json!({
                "op": "residual",
                "body": body.iter().map(|o| self.op(o)).collect::<Vec<_>>(),
                "shortcut": shortcut.as_ref().map(|s| s.iter().map(|o| self.op(o)).collect::<Vec<_>>()),
            }),
        }
    }
}

/// Input geometry and labels of a model, stored beside the graph.
#[derive(Debug, Clone, PartialEq)]
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
}

/// Serializes a network; the file is written atomically (temporary file, then rename).
pub fn save(path: &Path, op: &Op, info: &ModelInfo) -> Result<(), DeployError> {
    let io = |e| DeployError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut w = Writer { tensors: Vec::new() };
    let graph = w.op(op);
    let bytes: Vec<(String, Vec<u8>, usize, Dtype)> = w
        .tensors
        .iter()
        .map(|(n, d)| match d {
            Data::F32(v) => (
                n.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                v.len(),
                Dtype::F32,
            ),
            Data::I8(v) => (
                n.clone(),
                v.iter().map(|&x| x as u8).collect(),
                v.len(),
                Dtype::I8,
            ),
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, b, len, dt)| {
            (
                n.clone(),
                TensorView::new(*dt, vec![*len], b).expect("length matches dtype"),
            )
        })
        .collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("graph".to_string(), graph.to_string());
    meta.insert(
        "input".to_string(),
        json!({"channels": info.channels, "height": info.height, "width": info.width, "classes": info.classes,
               "mean": info.mean, "std": info.std, "source": info.source})
        .to_string(),
    );
    let data = safetensors::tensor::serialize(views, &Some(meta)).map_err(|e| DeployError::Invalid {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    let tmp = path.with_extension("winq.tmp");
    std::fs::write(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

struct Reader<'a> {
    st: SafeTensors<'a>,
    path: String,
}

impl Reader<'_> {
    fn bad(&self, why: impl Into<String>) -> DeployError {
        DeployError::Invalid {
            path: self.path.clone(),
            why: why.into(),
        }
    }

    /// The bytes of the tensor an op names under `key`, checked to have `dtype`.
    fn bytes(&self, v: &Value, key: &str, dtype: Dtype) -> Result<&[u8], DeployError> {
        let name = v[key]
            .as_str()
            .ok_or_else(|| self.bad(format!("op {} lacks tensor '{key}'", v["op"])))?;
        let t = self
            .st
            .tensor(name)
            .map_err(|_| self.bad(format!("tensor {name} ('{key}') is missing")))?;
        if t.dtype() != dtype {
            return Err(self.bad(format!("tensor {name} is {:?}, expected {dtype:?}", t.dtype())));
        }
        Ok(t.data())
    }

    fn tensor(&self, v: &Value, key: &str, len: Option<usize>) -> Result<Vec<f32>, DeployError> {
        let out: Vec<f32> = self
            .bytes(v, key, Dtype::F32)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        match len {
            Some(l) if l != out.len() => {
                Err(self.bad(format!("tensor '{key}' has {} values, expected {l}", out.len())))
            }
            _ => Ok(out),
        }
    }

    /// Quantized values stored as 8-bit codes, rebuilt as code × f32(scale).
    fn coded(&self, v: &Value, key: &str, len: usize, scales: &[f64]) -> Result<Vec<f32>, DeployError> {
        let data = self.bytes(v, key, Dtype::I8)?;
        if data.len() != len || !len.is_multiple_of(scales.len().max(1)) {
            return Err(self.bad(format!("tensor '{key}' has {} codes, expected {len}", data.len())));
        }
        let c: Vec<i8> = data.iter().map(|&b| b as i8).collect();
        Ok(values(&c, scales))
    }

    fn num(&self, v: &Value, key: &str) -> Result<usize, DeployError> {
        v[key]
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| self.bad(format!("op {} lacks integer '{key}'", v["op"])))
    }

    fn scale(&self, v: &Value, key: &str) -> Result<f64, DeployError> {
        v[key]
            .as_f64()
            .filter(|s| *s > 0.0 && s.is_finite())
            .ok_or_else(|| self.bad(format!("op {} has no valid scale '{key}'", v["op"])))
    }

    fn scales(&self, v: &Value, key: &str, allowed: &[usize]) -> Result<Vec<f64>, DeployError> {
        let a = v[key]
            .as_array()
            .ok_or_else(|| self.bad(format!("op {} lacks scales '{key}'", v["op"])))?;
        let s: Vec<f64> = a
            .iter()
            .filter_map(Value::as_f64)
            .filter(|s| *s > 0.0 && s.is_finite())
            .collect();
        if s.len() != a.len() || !allowed.contains(&s.len()) {
            return Err(self.bad(format!(
                "op {}: '{key}' must hold {allowed:?} positive scales",
                v["op"]
            )));
        }
        Ok(s)
    }

    fn ops(&self, v: &Value) -> Result<Vec<Op>, DeployError> {
        v.as_array()
            .ok_or_else(|| self.bad("expected a list of ops"))?
            .iter()
            .map(|o| self.op(o))
            .collect()
    }

    fn op(&self, v: &Value) -> Result<Op, DeployError> {
        let kind = v["op"]
            .as_str()
            .ok_or_else(|| self.bad("an op has no 'op' field"))?;
        Ok(match kind {
            "conv_f32" => {
                let (c, k, r) = (self.num(v, "c")?, self.num(v, "k")?, self.num(v, "r")?);
                Op::ConvF32 {
                    c,
                    k,
                    r,
                    weight: self.tensor(v, "weight", Some(k * c * r * r))?,
                }
            }
            "winograd_f32" => {
                let (c, k, m) = (self.num(v, "c")?, self.num(v, "k")?, self.num(v, "m")?);
                if !(1..=8).contains(&m) {
                    return Err(self.bad(format!("winograd_f32: unsupported tile m = {m}")));
                }
                let t = m + 2;
                Op::WinogradF32 {
                    c,
                    k,
                    m,
                    at: self.tensor(v, "at", Some(m * t))?,
                    bt: self.tensor(v, "bt", Some(t * t))?,
                    u: self.tensor(v, "u", Some(t * t * k * c))?,
                }
            }
            "conv_i8" => {
                let (c, k, r) = (self.num(v, "c")?, self.num(v, "k")?, self.num(v, "r")?);
                let s_w = self.scales(v, "s_w", &[1, k])?;
                Op::ConvI8(ConvExport {
                    in_channels: c,
                    out_channels: k,
                    kernel: r,
                    bits: self.num(v, "bits")? as u32,
                    weight: self.coded(v, "weight", k * c * r * r, &s_w)?,
                    s_w,
                    s_in: self.scale(v, "s_in")?,
                    s_out: self.scale(v, "s_out")?,
                })
            }
            "winograd_i8" => {
                let (c, k, m) = (self.num(v, "c")?, self.num(v, "k")?, self.num(v, "m")?);
                let t = m + 2;
                let taps = [1, t * t];
                let (s_at, s_bt, s_u) = (
                    self.scale(v, "s_at")?,
                    self.scale(v, "s_bt")?,
                    self.scales(v, "s_u", &taps)?,
                );
                Op::WinogradI8(WinogradExport {
                    in_channels: c,
                    out_channels: k,
                    m,
                    bits: self.num(v, "bits")? as u32,
                    at: self.coded(v, "at", m * t, &[s_at])?,
                    bt: self.coded(v, "bt", t * t, &[s_bt])?,
                    s_at,
                    s_bt,
                    u: self.coded(v, "u", t * t * k * c, &s_u)?,
                    s_u,
                    s_in: self.scale(v, "s_in")?,
                    s_v: self.scales(v, "s_v", &taps)?,
                    s_m: self.scales(v, "s_m", &taps)?,
                    s_out: self.scale(v, "s_out")?,
                })
            }
            "batchnorm" => {
                let mean = self.tensor(v, "mean", None)?;
                let n = Some(mean.len());
                Op::BatchNorm {
                    scale: self.tensor(v, "scale", n)?,
                    bias: self.tensor(v, "bias", n)?,
                    mean,
                }
            }
            "relu" => Op::Relu,
            "maxpool2" => Op::MaxPool2,
            "global_avg_pool" => Op::GlobalAvgPool,
            "linear" => {
                let (i, o) = (self.num(v, "inputs")?, self.num(v, "outputs")?);
                Op::Linear {
                    inputs: i,
                    outputs: o,
                    weight: self.tensor(v, "weight", Some(i * o))?,
                    bias: self.tensor(v, "bias", Some(o))?,
                }
            }
            "seq" => Op::Seq(self.ops(&v["ops"])?),
            "residual" => Op::Residual {
                body: self.ops(&v["body"])?,
                shortcut: if v["shortcut"].is_null() {
                    None
                } else {
                    Some(self.ops(&v["shortcut"])?)
                },
            },
            other => return Err(self.bad(format!("unknown op '{other}'"))),
        })
    }
}

/// Reads and validates a `.winq` file.
pub fn load(path: &Path) -> Result<(Op, ModelInfo), DeployError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| DeployError::Io {
        path: shown.clone(),
        source: e,
    })?;
    let corrupt = |why: String| DeployError::Corrupt {
        path: shown.clone(),
        why,
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let r = Reader {
        st,
        path: shown.clone(),
    };
    let meta = meta
        .metadata()
        .clone()
        .ok_or_else(|| r.bad("no metadata: not a winq model"))?;
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        other => return Err(r.bad(format!("format {other:?}, this winq reads {FORMAT}"))),
    }
    let parse = |k: &str| -> Result<Value, DeployError> {
        serde_json::from_str(meta.get(k).ok_or_else(|| r.bad(format!("no '{k}' metadata")))?)
            .map_err(|e| r.bad(format!("bad '{k}' metadata: {e}")))
    };
    let graph = parse("graph")?;
    let input = parse("input")?;
    let floats = |k: &str| -> Vec<f32> {
        input[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).map(|v| v as f32).collect())
            .unwrap_or_default()
    };
    let info = ModelInfo {
        channels: r.num(&input, "channels")?,
        height: r.num(&input, "height")?,
        width: r.num(&input, "width")?,
        classes: r.num(&input, "classes")?,
        mean: floats("mean"),
        std: floats("std"),
        source: input["source"].as_str().unwrap_or_default().to_string(),
    };
    let op = r.op(&graph)?;
    let out = crate::check_shapes(&op, (info.channels, info.height, info.width)).map_err(|e| r.bad(e))?;
    if out != (info.classes, 1, 1) {
        return Err(r.bad(format!(
            "the graph gives {out:?}, not {} class scores",
            info.classes
        )));
    }
    Ok((op, info))
}
