//! Vector search: a persisted hnsw_rs graph plus an exact scan of the vectors added since the
//! graph was last saved.
//!
//! Chunk ids only grow, so "added since" is "id above the graph's `max_id`": a commit never has
//! to rewrite the graph, and the graph is brought up to date once at the end of an ingest run.
//! Deleted chunks stay in the graph as tombstones that searches filter out; the graph is rebuilt
//! when they pass a third of its points. Below [`GRAPH_MIN_POINTS`] live vectors there is no graph
//! at all: an exact scan of a few thousand vectors takes about a millisecond.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};

use crate::error::{Error, Result};

/// Below this many live vectors, search is an exact scan and no graph is kept.
pub const GRAPH_MIN_POINTS: usize = 2048;
const MAX_CONNECTIONS: usize = 24;
const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;

/// Cosine distance for unit vectors: `1 - a·b`, in a loop the compiler vectorizes.
#[derive(Default, Clone, Copy)]
pub struct UnitCosine;

/// Dot product with eight independent accumulators (vectorizes without fast-math).
#[must_use]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

pub(crate) struct Graph {
    hnsw: Hnsw<'static, f32, UnitCosine>,
}

impl Graph {
    pub fn new(expected: usize) -> Self {
        Graph {
            hnsw: Hnsw::new(
                MAX_CONNECTIONS,
                expected.max(1024),
                MAX_LAYERS,
                EF_CONSTRUCTION,
                UnitCosine,
            ),
        }
    }

    /// Loads a dump. hnsw_rs ties a loaded graph's lifetime to its loader, so the (small)
    /// loader is leaked: one per opened graph, for the life of the process.
    pub fn load(dir: &Path, basename: &str) -> Result<Self> {
        let corrupt = |message: String| Error::Corrupt {
            path: dir.join(format!("{basename}.hnsw.graph")),
            message,
        };
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
            io.load_hnsw::<f32, UnitCosine>()
        }));
        match loaded {
            Ok(Ok(hnsw)) => Ok(Graph { hnsw }),
            Ok(Err(e)) => Err(corrupt(e.to_string())),
            Err(_) => Err(corrupt("the vector graph could not be read".into())),
        }
    }

    pub fn insert(&self, items: &[(u64, Vec<f32>)]) {
        let refs: Vec<(&[f32], usize)> = items
            .iter()
            .map(|(id, v)| (v.as_slice(), *id as usize))
            .collect();
        self.hnsw.parallel_insert_slice(&refs);
    }

    /// Inserts on every core, or one vector at a time in the given order when `deterministic`
    /// (hnsw_rs draws levels from a fixed seed, so the same order gives the same graph).
    pub fn insert_in(&self, items: &[(u64, Vec<f32>)], deterministic: bool) {
        if deterministic {
            for (id, v) in items {
                self.hnsw.insert_slice((v.as_slice(), *id as usize));
            }
        } else {
            self.insert(items);
        }
    }

    pub fn points(&self) -> usize {
        self.hnsw.get_nb_point()
    }

    /// Writes the graph as `basename.hnsw.{graph,data}` in `dir` (hnsw_rs's dump, which the
    /// writer reloads to extend it) and as `basename.hnsw.flat` (which readers map in place);
    /// returns the basename used.
    pub fn dump(&self, dir: &Path, basename: &str) -> Result<String> {
        let name = self.hnsw.file_dump(dir, basename).map_err(|e| Error::Io {
            path: dir.join(basename),
            source: std::io::Error::other(e.to_string()),
        })?;
        self.dump_flat(dir, &name)?;
        Ok(name)
    }

    /// Writes only `basename.hnsw.flat`.
    pub fn dump_flat(&self, dir: &Path, basename: &str) -> Result<()> {
        let nodes = self.nodes();
        let dim = nodes.vectors.first().map_or(1, Vec::len);
        crate::flat::write(&dir.join(format!("{basename}.hnsw.flat")), &nodes, dim)
    }

    /// The graph's nodes, vectors and neighbour lists, for the flat layout.
    fn nodes(&self) -> crate::flat::Nodes {
        let pi = self.hnsw.get_point_indexation();
        let points: Vec<_> = pi.into_iter().collect();
        let ids: Vec<u64> = points.iter().map(|p| p.get_origin_id() as u64).collect();
        let index = crate::flat::index_of(&ids);
        let vectors = points.iter().map(|p| p.get_v().to_vec()).collect();
        let neighbours = points
            .iter()
            .map(|p| {
                p.get_neighborhood_id()
                    .into_iter()
                    .map(|layer| {
                        layer
                            .iter()
                            .filter_map(|nb| index.get(&(nb.d_id as u64)).copied())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let top = usize::from(self.hnsw.get_max_level_observed());
        let entry = pi
            .get_layer_iterator(top)
            .next()
            .and_then(|p| index.get(&(p.get_origin_id() as u64)).copied())
            .unwrap_or(0);
        crate::flat::Nodes {
            ids,
            vectors,
            neighbours,
            entry,
        }
    }

    /// The `k` nearest live chunks: (id, cosine similarity), best first.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        live: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        let filter = |id: &usize| live(*id as u64);
        self.hnsw
            .search_filter(query, k, ef.max(k), Some(&filter))
            .into_iter()
            .map(|n| (n.d_id as u64, 1.0 - n.distance))
            .collect()
    }
}

/// Exact top-k by dot product over `(id, vector)` pairs.
pub(crate) fn flat_top_k(
    query: &[f32],
    items: impl Iterator<Item = (u64, Vec<f32>)>,
    k: usize,
) -> Vec<(u64, f32)> {
    let mut best: Vec<(u64, f32)> = Vec::with_capacity(k + 1);
    for (id, v) in items {
        let s = dot(query, &v);
        if best.len() < k || s > best[best.len() - 1].1 {
            let at =
                best.partition_point(|&(bid, bs)| bs > s || (bs.total_cmp(&s).is_eq() && bid < id));
            best.insert(at, (id, s));
            best.truncate(k);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph search under test: query → (id, similarity), best first.
    type Search<'a> = &'a dyn Fn(&[f32]) -> Vec<(u64, f32)>;

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let n = dot(&v, &v).sqrt();
        for a in &mut v {
            *a /= n;
        }
        v
    }

    #[test]
    fn graph_finds_what_the_exact_scan_finds_and_survives_a_dump() {
        let items: Vec<(u64, Vec<f32>)> = (0..3000).map(|i| (i, unit(i, 32))).collect();
        let g = Graph::new(items.len());
        g.insert(&items);
        let dir = tempfile::tempdir().unwrap();
        let name = g.dump(dir.path(), "g1").unwrap();
        let loaded = Graph::load(dir.path(), &name).unwrap();
        // Live hits among the exact top 10 of the live points, over 50 queries.
        let recall = |search: Search<'_>| {
            let mut hits = 0;
            for q in 0..50u64 {
                let query = unit(10_000 + q, 32);
                let approx = search(&query);
                assert_eq!(approx.len(), 10);
                assert!(approx.iter().all(|(id, _)| id % 7 != 3), "filter applies");
                let exact_live: Vec<u64> = flat_top_k(
                    &query,
                    items.iter().filter(|(id, _)| id % 7 != 3).cloned(),
                    10,
                )
                .into_iter()
                .map(|x| x.0)
                .collect();
                hits += approx
                    .iter()
                    .filter(|(id, _)| exact_live.contains(id))
                    .count();
            }
            hits
        };
        let hits = recall(&|q| loaded.search(q, 10, 64, &|id| id % 7 != 3));
        assert!(hits >= 450, "recall@10 {hits}/500");
        // The flat layout finds what the exact scan finds.
        let flat =
            crate::flat::FlatGraph::open(&dir.path().join(format!("{name}.hnsw.flat"))).unwrap();
        assert_eq!(flat.points(), 3000);
        let flat_hits = recall(&|q| flat.search(q, 10, 64, &|id| id % 7 != 3));
        assert!(flat_hits >= 475, "flat recall@10 {flat_hits}/500");
        // A loaded graph takes new points.
        loaded.insert(&[(5000, unit(5000, 32))]);
        let found = loaded.search(&unit(5000, 32), 1, 32, &|_| true);
        assert_eq!(found[0].0, 5000);
    }
}
