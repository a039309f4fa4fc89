//! Fusing ranked lists from the BM25 and dense legs.

use std::collections::HashMap;

use cairn_index::ChunkId;

/// How a leg contributed to a fused hit.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LegHit {
    /// 1-based rank in the leg.
    pub rank: usize,
    /// The leg's raw score (BM25 score, or cosine similarity).
    pub score: f32,
}

/// One fused result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fused {
    /// The chunk.
    pub id: ChunkId,
    /// The fused score (higher is better; its scale depends on the method).
    pub score: f32,
    /// Its place in the BM25 list, if it was there.
    pub bm25: Option<LegHit>,
    /// Its place in the dense list, if it was there.
    pub dense: Option<LegHit>,
    /// Asked what something is or does ([`crate::terms::subject`]), it says so
    /// ([`crate::terms::introduction`]) or opens the section titled with it
    /// ([`crate::terms::titled`]), and its score holds the bonus that earns.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub defines: bool,
}

/// How to combine the two legs.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum Fusion {
    /// Reciprocal rank fusion: `Σ w / (k + rank)` (Cormack et al. 2009; k = 60 there).
    Rrf {
        /// The rank constant.
        k: f32,
    },
    /// Convex combination of min-max normalised scores (missing = the leg's minimum).
    Score,
}

/// Fuses two best-first lists. `dense_weight` in [0, 1] weighs the dense leg, the BM25 leg gets
/// the rest. Ties break by chunk id, so the result is deterministic.
#[must_use]
pub fn fuse(
    bm25: &[(ChunkId, f32)],
    dense: &[(ChunkId, f32)],
    fusion: Fusion,
    dense_weight: f32,
) -> Vec<Fused> {
    let w = dense_weight.clamp(0.0, 1.0);
    let mut by_id: HashMap<ChunkId, Fused> = HashMap::new();
    for (i, &(id, score)) in bm25.iter().enumerate() {
        by_id
            .entry(id)
            .or_insert(Fused {
                id,
                score: 0.0,
                bm25: None,
                dense: None,
                defines: false,
            })
            .bm25 = Some(LegHit { rank: i + 1, score });
    }
    for (i, &(id, score)) in dense.iter().enumerate() {
        by_id
            .entry(id)
            .or_insert(Fused {
                id,
                score: 0.0,
                bm25: None,
                dense: None,
                defines: false,
            })
            .dense = Some(LegHit { rank: i + 1, score });
    }
    let range = |list: &[(ChunkId, f32)]| {
        let max = list.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
        let min = list.iter().map(|x| x.1).fold(f32::INFINITY, f32::min);
        (min, max)
    };
    let (bmin, bmax) = range(bm25);
    let (dmin, dmax) = range(dense);
    let norm = |s: f32, min: f32, max: f32| {
        if max > min {
            (s - min) / (max - min)
        } else {
            1.0
        }
    };
    let mut out: Vec<Fused> = by_id
        .into_values()
        .map(|mut f| {
            f.score = match fusion {
                Fusion::Rrf { k } => {
                    f.bm25.map_or(0.0, |h| (1.0 - w) / (k + h.rank as f32))
                        + f.dense.map_or(0.0, |h| w / (k + h.rank as f32))
                }
                Fusion::Score => {
                    f.bm25
                        .map_or(0.0, |h| (1.0 - w) * norm(h.score, bmin, bmax))
                        + f.dense.map_or(0.0, |h| w * norm(h.score, dmin, dmax))
                }
            };
            f
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(v: &[Fused]) -> Vec<u64> {
        v.iter().map(|f| f.id.0).collect()
    }

    #[test]
    fn rrf_rewards_agreement() {
        let bm25 = [(ChunkId(1), 9.0), (ChunkId(2), 8.0), (ChunkId(3), 1.0)];
        let dense = [(ChunkId(2), 0.9), (ChunkId(4), 0.8), (ChunkId(1), 0.1)];
        let f = fuse(&bm25, &dense, Fusion::Rrf { k: 60.0 }, 0.5);
        // 2 is near the top of both lists: 1/62 + 1/61 beats 1's 1/61 + 1/63.
        assert_eq!(ids(&f)[..2], [2, 1]);
        assert_eq!(
            f.iter().find(|x| x.id.0 == 2).unwrap().dense.unwrap().rank,
            1
        );
    }

    #[test]
    fn weight_zero_and_one_reproduce_the_legs() {
        let bm25 = [(ChunkId(1), 9.0), (ChunkId(2), 8.0)];
        let dense = [(ChunkId(3), 0.9), (ChunkId(2), 0.8), (ChunkId(1), 0.1)];
        assert_eq!(ids(&fuse(&bm25, &dense, Fusion::Score, 0.0))[..2], [1, 2]);
        assert_eq!(ids(&fuse(&bm25, &dense, Fusion::Score, 1.0)), [3, 2, 1]);
    }

    proptest! {
        #[test]
        fn fusion_is_deterministic_and_complete(
            a in prop::collection::vec((0u64..50, 0f32..10.0), 0..30),
            b in prop::collection::vec((0u64..50, -1f32..1.0), 0..30),
            w in 0f32..1.0,
            rrf in any::<bool>(),
        ) {
            let dedup = |v: Vec<(u64, f32)>| {
                let mut seen = std::collections::HashSet::new();
                let mut v: Vec<(ChunkId, f32)> = v.into_iter().filter(|x| seen.insert(x.0)).map(|(i, s)| (ChunkId(i), s)).collect();
                v.sort_by(|x, y| y.1.total_cmp(&x.1));
                v
            };
            let (a, b) = (dedup(a), dedup(b));
            let fusion = if rrf { Fusion::Rrf { k: 60.0 } } else { Fusion::Score };
            let one = fuse(&a, &b, fusion, w);
            let two = fuse(&a, &b, fusion, w);
            prop_assert_eq!(&one, &two);
            let mut all: Vec<u64> = a.iter().chain(&b).map(|x| x.0 .0).collect();
            all.sort_unstable();
            all.dedup();
            let mut got = ids(&one);
            got.sort_unstable();
            prop_assert_eq!(got, all);
            prop_assert!(one.windows(2).all(|p| p[0].score >= p[1].score));
        }
    }
}
