//! Deterministic parallel reductions: partial results are produced per fixed work item and
//! summed in item order, so sums never depend on rayon's scheduling (resumed training must
//! be bit-identical for the same seed and thread count).

/// Element-wise sum of `parts` in order; empty parts (nothing to add) are skipped.
pub fn ordered_sum(parts: &[Vec<f32>], len: usize) -> Vec<f32> {
    let mut acc = vec![0.0f32; len];
    for p in parts.iter().filter(|p| !p.is_empty()) {
        assert_eq!(p.len(), len, "partial result of the wrong length");
        acc.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    acc
}
