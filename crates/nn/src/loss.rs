//! Softmax cross-entropy loss.

use crate::tensor::Tensor;
use std::fmt;

/// Why a loss cannot be computed from the given logits and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossError {
    /// Logits must be [N, classes].
    Shape(Vec<usize>),
    /// One label per row of logits.
    Count { rows: usize, labels: usize },
    /// A label outside 0..classes.
    Label {
        row: usize,
        label: usize,
        classes: usize,
    },
    /// No rows or no classes: the mean is undefined.
    Empty,
}

impl fmt::Display for LossError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossError::Shape(s) => write!(f, "logits must be a 2-D [N, classes] tensor, got shape {s:?}"),
            LossError::Count { rows, labels } => {
                write!(
                    f,
                    "{rows} rows of logits but {labels} labels; need one label per row"
                )
            }
            LossError::Label { row, label, classes } => write!(
                f,
                "label {label} of sample {row} is out of range: there are {classes} classes (0..={})",
                classes.saturating_sub(1)
            ),
            LossError::Empty => write!(f, "cross-entropy needs at least one sample and one class"),
        }
    }
}

impl std::error::Error for LossError {}

/// Mean softmax cross-entropy over the batch, its gradient w.r.t. the logits
/// ((softmax − onehot)/N) and how many rows have the label as their (first) argmax.
/// Uses log-sum-exp with the row maximum subtracted, so large logits do not overflow.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &[usize]) -> Result<(f32, Tensor, usize), LossError> {
    if logits.shape.len() != 2 {
        return Err(LossError::Shape(logits.shape.clone()));
    }
    let (n, k) = (logits.shape[0], logits.shape[1]);
    if n != labels.len() {
        return Err(LossError::Count {
            rows: n,
            labels: labels.len(),
        });
    }
    if n == 0 || k == 0 {
        return Err(LossError::Empty);
    }
    if let Some((row, &label)) = labels.iter().enumerate().find(|(_, &l)| l >= k) {
        return Err(LossError::Label {
            row,
            label,
            classes: k,
        });
    }
    let mut grad = Tensor::zeros(&[n, k]);
    let (mut total, mut correct) = (0.0f64, 0usize);
    let inv_n = 1.0 / n as f64;
    for ((row, g), &label) in logits
        .data
        .chunks_exact(k)
        .zip(grad.data.chunks_exact_mut(k))
        .zip(labels)
    {
        let (mut arg, mut max) = (0, row[0]);
        for (j, &v) in row.iter().enumerate().skip(1) {
            if v > max {
                max = v;
                arg = j;
            }
        }
        correct += usize::from(arg == label);
        let max = max as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        total += lse - row[label] as f64;
        for (j, (o, &v)) in g.iter_mut().zip(row).enumerate() {
            let p = (v as f64 - lse).exp();
            let t = if j == label { 1.0 } else { 0.0 };
            *o = ((p - t) * inv_n) as f32;
        }
    }
    Ok(((total * inv_n) as f32, grad, correct))
}
