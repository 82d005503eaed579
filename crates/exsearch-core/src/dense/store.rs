//! `vectors.sqlite`: one row per passage, its vector as 8-bit codes and a
//! scale (a quarter of the bytes of f32, cosine ranking unchanged to within
//! the codes' rounding), and the encoder that wrote them. Searching loads
//! every vector into a [`DenseMatrix`], kept per process and reloaded only
//! when the store's generation (bumped by every write) moves.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::sqlite::{self, Schema};

const SCHEMA: Schema = Schema {
    what: "vector store",
    migrations: &[r#"
    CREATE TABLE meta (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    CREATE TABLE vectors (
        passage_id  INTEGER PRIMARY KEY,
        scale       REAL NOT NULL,
        codes       BLOB NOT NULL
    );
    "#],
};

pub struct VectorStore {
    path: PathBuf,
    conn: Connection,
}

impl VectorStore {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            conn: sqlite::open(path, &SCHEMA)?,
        })
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Database {
            what: SCHEMA.what,
            path: self.path.clone(),
            source,
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The encoder the stored vectors came from, and their length.
    pub fn encoder(&self) -> Result<Option<(String, usize)>> {
        let name = self.meta("encoder")?;
        let dim = self.meta("dim")?.and_then(|d| d.parse().ok());
        Ok(name.zip(dim))
    }

    /// Bumped by every write, so readers know when to reload.
    pub fn generation(&self) -> Result<u64> {
        Ok(self
            .meta("generation")?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0))
    }

    fn bump(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [],
        )
        .map(drop)
    }

    /// Makes `name` the store's encoder; vectors of another encoder (or
    /// length) are dropped, since they cannot be compared with its queries.
    pub fn use_encoder(&mut self, name: &str, dim: usize) -> Result<()> {
        if self.encoder()?.is_some_and(|(n, d)| n == name && d == dim) {
            return Ok(());
        }
        self.write(|tx| {
            let removed = tx.execute("DELETE FROM vectors", [])?;
            for (key, value) in [("encoder", name.to_string()), ("dim", dim.to_string())] {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )?;
            }
            Ok(-(removed as i64))
        })
    }

    /// Runs `f` in one transaction that also bumps the generation.
    /// Runs `f` in one transaction that also bumps the generation and
    /// moves the stored count by the rows `f` says it added (negative when
    /// it removed).
    fn write(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<i64>,
    ) -> Result<()> {
        let result = (|| {
            let tx = self.conn.transaction()?;
            // Counted once, the first time (a scan); kept since.
            tx.execute(
                "INSERT INTO meta (key, value) SELECT 'count', (SELECT count(*) FROM vectors)
                 WHERE NOT EXISTS (SELECT 1 FROM meta WHERE key = 'count')",
                [],
            )?;
            let added = f(&tx)?;
            tx.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + ?1 WHERE key = 'count'",
                [added],
            )?;
            Self::bump(&tx)?;
            tx.commit()
        })();
        result.map_err(|e| self.err(e))
    }

    /// Vectors stored, without a scan (`library status` asks often, and
    /// counting a million rows reads every page of the table).
    pub fn count(&self) -> Result<u64> {
        match self.meta("count")?.and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => Ok(n),
            None => self
                .conn
                .query_row("SELECT count(*) FROM vectors", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(|e| self.err(e)),
        }
    }

    pub fn ids(&self) -> Result<HashSet<u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT passage_id FROM vectors")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|id| id as u64).map_err(|e| self.err(e)))
            .collect()
    }

    /// Stores `vectors` (unit length) for `ids` in one transaction.
    pub fn insert(&mut self, ids: &[u64], vectors: &[Vec<f32>]) -> Result<()> {
        let dim = self.encoder()?.map_or(0, |(_, d)| d);
        if let Some(v) = vectors.iter().find(|v| v.len() != dim) {
            return Err(Error::Embedder(format!(
                "the encoder returned a vector of length {}, expected {dim}",
                v.len()
            )));
        }
        self.write(|tx| {
            // A vector already stored is replaced: it does not count twice.
            let mut drop_old = tx.prepare("DELETE FROM vectors WHERE passage_id = ?1")?;
            let mut add =
                tx.prepare("INSERT INTO vectors (passage_id, scale, codes) VALUES (?1, ?2, ?3)")?;
            let mut added = 0i64;
            for (id, vector) in ids.iter().zip(vectors) {
                let (scale, codes) = quantize(vector);
                let codes: Vec<u8> = codes.iter().map(|c| *c as u8).collect();
                let replaced = drop_old.execute([*id as i64])?;
                add.execute(params![*id as i64, f64::from(scale), codes])?;
                added += 1 - replaced as i64;
            }
            Ok(added)
        })
    }

    /// Drops the vectors of `ids`.
    pub fn delete(&mut self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut stmt = tx.prepare("DELETE FROM vectors WHERE passage_id = ?1")?;
            let mut removed = 0i64;
            for id in ids {
                removed += stmt.execute([*id as i64])? as i64;
            }
            Ok(-removed)
        })
    }

    /// Every vector, for searching; shared by every caller in the process
    /// until the store changes.
    pub fn matrix(&self) -> Result<Arc<DenseMatrix>> {
        static LOADED: Mutex<Vec<(PathBuf, u64, Arc<DenseMatrix>)>> = Mutex::new(Vec::new());
        let generation = self.generation()?;
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, m)) = loaded
            .iter()
            .find(|(p, g, _)| *p == self.path && *g == generation)
        {
            return Ok(m.clone());
        }
        let matrix = Arc::new(self.load()?);
        loaded.retain(|(p, _, _)| *p != self.path);
        loaded.push((self.path.clone(), generation, matrix.clone()));
        Ok(matrix)
    }

    fn load(&self) -> Result<DenseMatrix> {
        let dim = self.encoder()?.map_or(0, |(_, d)| d);
        let mut matrix = DenseMatrix {
            dim,
            ids: Vec::new(),
            scales: Vec::new(),
            codes: Vec::new(),
        };
        let mut stmt = self
            .conn
            .prepare("SELECT passage_id, scale, codes FROM vectors ORDER BY passage_id")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let codes = row.get_ref(2).map_err(|e| self.err(e))?;
            let codes = codes
                .as_blob()
                .map_err(|e| self.err(rusqlite::Error::from(e)))?;
            if codes.len() != dim {
                continue; // written under another encoder: never compared
            }
            matrix
                .ids
                .push(row.get::<_, i64>(0).map_err(|e| self.err(e))? as u64);
            matrix
                .scales
                .push(row.get::<_, f64>(1).map_err(|e| self.err(e))? as f32);
            matrix.codes.extend(codes.iter().map(|c| *c as i8));
        }
        Ok(matrix)
    }
}

/// A vector as 8-bit codes times one scale: `v ≈ scale * codes`.
fn quantize(v: &[f32]) -> (f32, Vec<i8>) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (0.0, vec![0; v.len()]);
    }
    let scale = max / 127.0;
    let codes = v.iter().map(|x| (x / scale).round() as i8).collect();
    (scale, codes)
}

/// Every stored vector, row-major, for exact search.
pub struct DenseMatrix {
    dim: usize,
    ids: Vec<u64>,
    scales: Vec<f32>,
    codes: Vec<i8>,
}

impl DenseMatrix {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `k` passages most similar to `query` (cosine, best first; equal
    /// scores by id). Every vector is scored: exact, and at 384 dimensions
    /// a million passages take a few tens of milliseconds.
    pub fn top_k(&self, query: &[f32], k: usize) -> Vec<(u64, f32)> {
        if query.len() != self.dim || self.ids.is_empty() || k == 0 {
            return Vec::new();
        }
        let (q_scale, q) = quantize(query);
        let mut scored: Vec<(f32, u32)> = self
            .codes
            .chunks_exact(self.dim)
            .zip(&self.scales)
            .enumerate()
            .map(|(row, (codes, scale))| {
                let dot: i32 = codes
                    .iter()
                    .zip(&q)
                    .map(|(a, b)| i32::from(*a) * i32::from(*b))
                    .sum();
                (dot as f32 * scale * q_scale, row as u32)
            })
            .collect();
        let k = k.min(scored.len());
        let by_score = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if k < scored.len() {
            scored.select_nth_unstable_by(k - 1, by_score);
            scored.truncate(k);
        }
        scored.sort_by(by_score);
        // Rows are in id order, so ordering ties by row orders them by id.
        scored
            .into_iter()
            .map(|(score, row)| (self.ids[row as usize], score))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn vectors_persist_rank_by_cosine_and_follow_the_encoder() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("vectors.sqlite");
        let mut store = VectorStore::open(&path).expect("open");
        store.use_encoder("enc-a", 3).expect("encoder");
        let vectors = [
            unit(&[1.0, 0.0, 0.0]),
            unit(&[0.8, 0.6, 0.0]),
            unit(&[0.0, 0.0, 1.0]),
        ];
        store.insert(&[30, 10, 20], &vectors).expect("insert");
        // Storing a passage's vector again replaces it.
        store.insert(&[20], &vectors[2..]).expect("again");
        let generation = store.generation().expect("generation");
        drop(store);

        let mut store = VectorStore::open(&path).expect("reopen");
        assert_eq!(store.count().expect("count"), 3);
        let m = store.matrix().expect("matrix");
        let top = m.top_k(&unit(&[1.0, 0.1, 0.0]), 2);
        assert_eq!(top.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [30, 10]);
        assert!((top[0].1 - 0.995).abs() < 0.01, "cosine {}", top[0].1);
        // Unchanged store: the same matrix; a write makes a new one.
        assert!(Arc::ptr_eq(&m, &store.matrix().expect("again")));
        store.delete(&[30]).expect("delete");
        assert!(store.generation().expect("generation") > generation);
        let m = store.matrix().expect("reloaded");
        assert_eq!(m.len(), 2);
        assert_eq!(m.top_k(&unit(&[1.0, 0.1, 0.0]), 1)[0].0, 10);

        // A wrong-length vector is refused and nothing of its batch kept.
        let err = store
            .insert(&[40, 41], &[unit(&[1.0, 1.0, 0.0]), vec![1.0; 4]])
            .expect_err("refused");
        assert!(err.to_string().contains("length 4"), "{err}");
        assert_eq!(store.count().expect("count"), 2);

        // Another encoder's queries cannot use these vectors: they go.
        store.use_encoder("enc-b", 3).expect("switch");
        assert_eq!(store.count().expect("count"), 0);
        assert_eq!(
            store.encoder().expect("encoder"),
            Some(("enc-b".to_string(), 3))
        );
    }

    #[test]
    fn quantized_scores_keep_the_cosine_order() {
        // Pseudo-random unit vectors: the 8-bit codes rank them as f32 does.
        let mut seed = 1u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let dim = 64;
        let rows: Vec<Vec<f32>> = (0..200)
            .map(|_| unit(&(0..dim).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let tmp = tempfile::tempdir().expect("tmp");
        let mut store = VectorStore::open(&tmp.path().join("v.sqlite")).expect("open");
        store.use_encoder("e", dim).expect("encoder");
        let ids: Vec<u64> = (0..200).collect();
        store.insert(&ids, &rows).expect("insert");
        let m = store.matrix().expect("matrix");
        let query = unit(&(0..dim).map(|_| next()).collect::<Vec<_>>());
        let mut exact: Vec<(f32, u64)> = rows
            .iter()
            .zip(&ids)
            .map(|(r, id)| (r.iter().zip(&query).map(|(a, b)| a * b).sum(), *id))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let got: Vec<u64> = m.top_k(&query, 5).iter().map(|(id, _)| *id).collect();
        let want: Vec<u64> = exact[..5].iter().map(|(_, id)| *id).collect();
        assert_eq!(got, want);
    }
}
