//! Retrieval metrics as BEIR/pytrec_eval define them.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// nDCG@k with graded relevance (gain = relevance, log2 discount), the trec_eval definition.
#[must_use]
pub fn ndcg_at<S: BuildHasher>(
    ranked: &[String],
    qrels: &HashMap<String, u32, S>,
    k: usize,
) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| f64::from(*qrels.get(d).unwrap_or(&0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u32> = qrels.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &r)| f64::from(r) / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

/// Share of the relevant documents found in the top k.
#[must_use]
pub fn recall_at<S: BuildHasher>(
    ranked: &[String],
    qrels: &HashMap<String, u32, S>,
    k: usize,
) -> f64 {
    let relevant = qrels.values().filter(|&&r| r > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|d| qrels.get(*d).is_some_and(|&r| r > 0))
        .count();
    found as f64 / relevant as f64
}

/// Reciprocal rank of the first relevant document within the top k.
#[must_use]
pub fn mrr_at<S: BuildHasher>(ranked: &[String], qrels: &HashMap<String, u32, S>, k: usize) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|d| qrels.get(d).is_some_and(|&r| r > 0))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let qrels: HashMap<String, u32> = [("a".to_owned(), 1), ("b".to_owned(), 1)].into();
        let ranked: Vec<String> = ["x", "a", "y", "b"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        // DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3)
        let expected = (1.0 / 3f64.log2() + 1.0 / 5f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&ranked, &qrels, 10) - expected).abs() < 1e-12);
        assert!((recall_at(&ranked, &qrels, 2) - 0.5).abs() < 1e-12);
        assert!((mrr_at(&ranked, &qrels, 10) - 0.5).abs() < 1e-12);
        assert!(mrr_at(&ranked, &qrels, 1).abs() < 1e-12);
    }
}
