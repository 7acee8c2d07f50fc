//! What users consume from a network's outputs: softmax probabilities, the top classes with
//! their names, and files other tools read (JSON lines, NumPy `.npy`).

/// Softmax of one row of logits (in f64, so large logits do not overflow).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let hi = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f64> = logits.iter().map(|&v| ((v - hi) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// The `k` most probable classes of one row, most probable first (ties: lower class first).
pub fn top_k(probs: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, probs[i])).collect()
}

/// The name of class `i`: its label when the model records one, else its number.
pub fn class_name(labels: &[String], i: usize) -> String {
    labels.get(i).cloned().unwrap_or_else(|| i.to_string())
}

/// One image's prediction as a JSON object: index, top-k classes with names and
/// probabilities, all logits and probabilities.
pub fn json_line(image: usize, logits: &[f32], labels: &[String], k: usize) -> String {
    let probs = softmax(logits);
    let top: Vec<serde_json::Value> = top_k(&probs, k)
        .into_iter()
        .map(|(c, p)| serde_json::json!({"class": c, "label": class_name(labels, c), "probability": p}))
        .collect();
    serde_json::json!({"image": image, "top": top, "logits": logits, "probabilities": probs}).to_string()
}

/// An f32 array of `shape` in NumPy's `.npy` format (version 1.0, little endian, C order).
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "shape and data disagree"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64,
    // ending in a newline.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_top_k_and_names() {
        let p = softmax(&[1000.0, 1001.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && p[1] > p[0] && p[0] > p[2]);
        assert_eq!(top_k(&p, 2).iter().map(|t| t.0).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(
            top_k(&[0.5, 0.5], 2).iter().map(|t| t.0).collect::<Vec<_>>(),
            [0, 1]
        );
        let labels = vec!["cat".to_string(), "dog".to_string()];
        assert_eq!(
            (class_name(&labels, 1), class_name(&labels, 7)),
            ("dog".into(), "7".into())
        );
        let v: serde_json::Value = serde_json::from_str(&json_line(3, &[0.0, 2.0], &labels, 1)).unwrap();
        assert_eq!(v["image"], 3);
        assert_eq!(v["top"][0]["label"], "dog");
        assert_eq!(v["logits"].as_array().unwrap().len(), 2);
    }

    /// The .npy layout numpy expects: magic, version 1.0, a header padded to 64 bytes that
    /// ends in a newline, then the little-endian values.
    #[test]
    fn npy_header_and_data() {
        let b = npy_bytes(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
        assert!(
            header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")
                && header.ends_with('\n')
        );
        assert_eq!(b.len(), 10 + hl + 24);
        assert_eq!(f32::from_le_bytes(b[b.len() - 4..].try_into().unwrap()), 6.5);
        assert!(std::str::from_utf8(&npy_bytes(&[4], &[0.0; 4])[10..])
            .unwrap()
            .contains("'shape': (4,)"));
    }
}
