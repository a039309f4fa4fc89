//! The vector graph in a layout that opens in place: one file, memory-mapped, read where it lies.
//!
//! hnsw_rs builds and extends the graph; its own dump is read back node by node (about 200 ms
//! for 23k vectors, seconds for a million). Beside each dump the writer saves the same graph as
//! `NAME.hnsw.flat`, which a reader maps and searches with no parsing beyond a header:
//!
//! ```text
//! "CAIRNFG1" · dim u32 · levels u32 · n u64 · entry u64          (32 bytes, little-endian)
//! ids      u64 × n                 node → chunk id
//! vectors  f32 × n × dim           unit vectors, node-major
//! per level, 0 first: offsets u64 × (n + 1), then neighbours u32 × offsets[n], padded to 8 bytes
//! ```

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::vectors::dot;

const MAGIC: &[u8; 8] = b"CAIRNFG1";

/// A graph to save: per node its chunk id, vector, and per level its neighbours (node indexes).
pub(crate) struct Nodes {
    pub ids: Vec<u64>,
    pub vectors: Vec<Vec<f32>>,
    /// `neighbours[node][level]`, for the levels the node is on.
    pub neighbours: Vec<Vec<Vec<u32>>>,
    pub entry: u32,
}

/// Writes `nodes` to `path` (aside, then renamed).
pub(crate) fn write(path: &Path, nodes: &Nodes, dim: usize) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let n = nodes.ids.len();
    let levels = nodes
        .neighbours
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(1)
        .max(1);
    let tmp = path.with_extension("flat.tmp");
    let mut w = Out {
        w: BufWriter::new(File::create(&tmp).map_err(io)?),
        at: 0,
    };
    w.put(MAGIC).map_err(io)?;
    w.put(&(dim as u32).to_le_bytes()).map_err(io)?;
    w.put(&(levels as u32).to_le_bytes()).map_err(io)?;
    w.put(&(n as u64).to_le_bytes()).map_err(io)?;
    w.put(&u64::from(nodes.entry).to_le_bytes()).map_err(io)?;
    for id in &nodes.ids {
        w.put(&id.to_le_bytes()).map_err(io)?;
    }
    for v in &nodes.vectors {
        for x in v {
            w.put(&x.to_le_bytes()).map_err(io)?;
        }
    }
    w.pad8().map_err(io)?;
    for level in 0..levels {
        let mut off = 0u64;
        w.put(&off.to_le_bytes()).map_err(io)?;
        for nb in &nodes.neighbours {
            off += nb.get(level).map_or(0, Vec::len) as u64;
            w.put(&off.to_le_bytes()).map_err(io)?;
        }
        for nb in &nodes.neighbours {
            for &x in nb.get(level).map_or(&[][..], Vec::as_slice) {
                w.put(&x.to_le_bytes()).map_err(io)?;
            }
        }
        w.pad8().map_err(io)?;
    }
    let mut w = w.w;
    w.flush().map_err(io)?;
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A writer that counts what it wrote, for alignment.
struct Out {
    w: BufWriter<File>,
    at: u64,
}

impl Out {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.at += bytes.len() as u64;
        self.w.write_all(bytes)
    }
    fn pad8(&mut self) -> std::io::Result<()> {
        let pad = (8 - self.at % 8) % 8;
        self.put(&vec![0u8; pad as usize])
    }
}

/// A mapped graph.
pub(crate) struct FlatGraph {
    map: memmap2::Mmap,
    dim: usize,
    n: usize,
    entry: usize,
    ids_at: usize,
    vectors_at: usize,
    /// Per level: (offsets start, neighbours start), in bytes.
    levels: Vec<(usize, usize)>,
    /// Chunk id → node, made on the first [`FlatGraph::vector_of`] (searches never need it).
    nodes: std::sync::OnceLock<HashMap<u64, u32>>,
}

impl FlatGraph {
    /// Maps `path` and checks its header and section sizes against the file.
    pub fn open(path: &Path) -> Result<Self> {
        let corrupt = |message: &str| Error::Corrupt {
            path: path.to_owned(),
            message: message.into(),
        };
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        // SAFETY: graph files are written aside and renamed into place under a new name for
        // every graph, and never modified after; a reader maps a file no one writes to. (A
        // process truncating it behind cairn's back could still fault the reader, as with any
        // mapped file.)
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(map.get(at..at + 4)?.try_into().ok()?))
        };
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(map.get(at..at + 8)?.try_into().ok()?))
        };
        if map.get(..8) != Some(&MAGIC[..]) {
            return Err(corrupt("not a cairn vector graph"));
        }
        let dim = u32_at(8).ok_or_else(|| corrupt("truncated"))? as usize;
        let nlevels = u32_at(12).ok_or_else(|| corrupt("truncated"))? as usize;
        let n = usize::try_from(u64_at(16).ok_or_else(|| corrupt("truncated"))?)
            .map_err(|_| corrupt("too many nodes"))?;
        let entry = u64_at(24).ok_or_else(|| corrupt("truncated"))? as usize;
        if dim == 0 || nlevels == 0 || nlevels > 64 || (n > 0 && entry >= n) {
            return Err(corrupt("impossible header"));
        }
        let ids_at = 32;
        let vectors_at = n
            .checked_mul(8)
            .and_then(|b| b.checked_add(ids_at))
            .ok_or_else(|| corrupt("too many nodes"))?;
        let mut at = n
            .checked_mul(dim)
            .and_then(|c| c.checked_mul(4))
            .and_then(|b| b.checked_add(vectors_at))
            .ok_or_else(|| corrupt("too many nodes"))?;
        at = at.next_multiple_of(8);
        let mut levels = Vec::with_capacity(nlevels);
        for _ in 0..nlevels {
            let offsets = at;
            let count = u64_at(offsets + 8 * n).ok_or_else(|| corrupt("truncated"))? as usize;
            let nbrs = offsets + 8 * (n + 1);
            at = count
                .checked_mul(4)
                .and_then(|b| b.checked_add(nbrs))
                .ok_or_else(|| corrupt("impossible neighbour count"))?
                .next_multiple_of(8);
            levels.push((offsets, nbrs));
        }
        if at > map.len() {
            return Err(corrupt("truncated"));
        }
        Ok(FlatGraph {
            map,
            dim,
            n,
            entry,
            ids_at,
            vectors_at,
            levels,
            nodes: std::sync::OnceLock::new(),
        })
    }

    /// The chunk id of every node, in node order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.n).map(|node| self.id(node))
    }

    /// The vector of `node`.
    pub fn node_vector(&self, node: usize) -> Vec<f32> {
        let at = self.vectors_at + 4 * self.dim * node;
        self.map[at..at + 4 * self.dim]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    }

    /// The vector of chunk `id`, if it is in the graph (dead or alive).
    pub fn vector_of(&self, id: u64) -> Option<Vec<f32>> {
        let nodes = self.nodes.get_or_init(|| {
            let ids: Vec<u64> = self.ids().collect();
            index_of(&ids)
        });
        nodes.get(&id).map(|&node| self.node_vector(node as usize))
    }

    fn id(&self, node: usize) -> u64 {
        let at = self.ids_at + 8 * node;
        u64::from_le_bytes(self.map[at..at + 8].try_into().expect("8 bytes"))
    }

    fn similarity(&self, query: &[f32], node: usize) -> f32 {
        let at = self.vectors_at + 4 * self.dim * node;
        let bytes = &self.map[at..at + 4 * self.dim];
        // The map is page-aligned and `vectors_at` a multiple of 8, so this is aligned; a
        // misaligned map (impossible) falls back to decoding.
        if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(bytes) {
            dot(query, v)
        } else {
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            dot(query, &v)
        }
    }

    fn neighbours(&self, level: usize, node: usize) -> impl Iterator<Item = usize> + '_ {
        let (offsets, nbrs) = self.levels[level];
        let off = |i: usize| {
            let at = offsets + 8 * i;
            u64::from_le_bytes(self.map[at..at + 8].try_into().expect("8 bytes")) as usize
        };
        let (a, b) = (off(node), off(node + 1));
        (a..b.max(a)).filter_map(move |j| {
            let at = nbrs + 4 * j;
            let x = u32::from_le_bytes(self.map.get(at..at + 4)?.try_into().ok()?) as usize;
            (x < self.n).then_some(x)
        })
    }

    /// Points in the graph.
    pub fn points(&self) -> usize {
        self.n
    }

    /// The `k` nearest live chunks: (id, cosine similarity), best first. Greedy descent through
    /// the upper levels, then a beam of `ef` on level 0 (filtered points are walked through, not
    /// returned).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        live: &dyn Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        if self.n == 0 || query.len() != self.dim {
            return Vec::new();
        }
        let ef = ef.max(k);
        let mut ep = self.entry;
        let mut ep_s = self.similarity(query, ep);
        for level in (1..self.levels.len()).rev() {
            loop {
                let mut moved = false;
                for nb in self.neighbours(level, ep) {
                    let s = self.similarity(query, nb);
                    if s > ep_s {
                        (ep, ep_s) = (nb, s);
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        let mut visited = HashSet::with_capacity(ef * 16);
        visited.insert(ep);
        let mut candidates = BinaryHeap::new();
        candidates.push(Scored(ep_s, ep));
        // The best `ef` live points, worst on top.
        let mut results: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::new();
        let mut worst = f32::NEG_INFINITY;
        if live(self.id(ep)) {
            results.push(std::cmp::Reverse(Scored(ep_s, ep)));
            worst = ep_s;
        }
        while let Some(Scored(s, node)) = candidates.pop() {
            if results.len() >= ef && s < worst {
                break;
            }
            for nb in self.neighbours(0, node) {
                if !visited.insert(nb) {
                    continue;
                }
                let t = self.similarity(query, nb);
                if results.len() < ef || t > worst {
                    candidates.push(Scored(t, nb));
                    if live(self.id(nb)) {
                        results.push(std::cmp::Reverse(Scored(t, nb)));
                        if results.len() > ef {
                            results.pop();
                        }
                        worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0 .0);
                    }
                }
            }
        }
        let mut out: Vec<(u64, f32)> = results
            .into_iter()
            .map(|r| (self.id(r.0 .1), r.0 .0))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }
}

/// A similarity and a node, ordered by similarity.
#[derive(Clone, Copy)]
struct Scored(f32, usize);

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(o.1.cmp(&self.1))
    }
}

/// Node indexes for chunk ids, for converting hnsw_rs's neighbour ids.
pub(crate) fn index_of(ids: &[u64]) -> HashMap<u64, u32> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| (id, i as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.hnsw.flat");
        let nodes = Nodes {
            ids: vec![10, 11, 12],
            vectors: vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]],
            neighbours: vec![vec![vec![1, 2]], vec![vec![0, 2]], vec![vec![0, 1], vec![]]],
            entry: 2,
        };
        write(&path, &nodes, 2).unwrap();
        let g = FlatGraph::open(&path).unwrap();
        let hits = g.search(&[1.0, 0.0], 2, 8, &|_| true);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [10, 12]);
        let hits = g.search(&[1.0, 0.0], 2, 8, &|id| id != 10);
        assert_eq!(
            hits[0].0, 12,
            "filtered points are walked through, not returned"
        );
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, 20, 40, bytes.len() - 9] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(FlatGraph::open(&path).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[24] = 99; // entry past the nodes
        std::fs::write(&path, &bad).unwrap();
        assert!(FlatGraph::open(&path).is_err());
    }
}
