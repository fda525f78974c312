//! The record keys of one submission, in memory that does not grow with the file: every keyed
//! row is noted in a [`KeyBook`] (24 bytes a row), sorted runs of it go to a private staging
//! directory once it holds `ingest.keys_in_memory` of them, and the runs are merged into the submission's
//! unique keys ([`KeySet`]: sorted, 17 bytes a key, on disk past the same size, with a small
//! index in memory) and the rows that share a key with another row.

use std::collections::{BinaryHeap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};

use crate::source::{Reason, RowIssue, SourceError};
use crate::util::staging::Staging;

/// A record key (`k<alternative>_<32 hex digits>`) in 17 bytes: the MAC, then the alternative.
type Packed = ([u8; 16], u8);

fn pack(key: &str) -> Option<Packed> {
    let (alt, digits) = key.strip_prefix('k')?.split_once('_')?;
    let mut h = [0u8; 16];
    hex::decode_to_slice(digits, &mut h).ok()?;
    Some((h, alt.parse().ok()?))
}

fn text((h, alt): &Packed) -> String {
    format!("k{alt}_{}", hex::encode(h))
}

/// Keys per block of an on-disk key set: its index in memory holds the first key of each.
const BLOCK: usize = 256;

/// The unique keys of a submission, sorted, 17 bytes each: in memory up to the book's limit,
/// else in a file read a block at a time through an index of every
/// [`BLOCK`]th key (a file of 40 million records keeps about 3 MiB of keys in memory).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    memory: Vec<Packed>,
    disk: Option<DiskKeys>,
}

#[derive(Debug)]
struct DiskKeys {
    _dir: Staging,
    file: std::fs::File,
    len: usize,
    /// The first key of each block.
    index: Vec<Packed>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.disk.as_ref().map_or(self.memory.len(), |d| d.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` is one of the set's; an error when the key file could not be read (a
    /// key that could not be looked up is never taken as absent).
    pub fn contains(&self, key: &str) -> std::io::Result<bool> {
        let Some(p) = pack(key) else { return Ok(false) };
        match &self.disk {
            None => Ok(self.memory.binary_search(&p).is_ok()),
            Some(d) => d.contains(&p),
        }
    }

    /// The keys as text, in order. For a replacing commit, which names every key it sends.
    pub fn texts(&self) -> std::io::Result<Vec<String>> {
        match &self.disk {
            None => Ok(self.memory.iter().map(text).collect()),
            Some(d) => Ok(d.all()?.iter().map(text).collect()),
        }
    }
}

impl DiskKeys {
    fn read_block(&self, b: usize) -> std::io::Result<Vec<Packed>> {
        use std::os::unix::fs::FileExt as _;
        let start = b * BLOCK;
        let n = BLOCK.min(self.len - start);
        let mut buf = vec![0u8; n * 17];
        self.file.read_exact_at(&mut buf, (start * 17) as u64)?;
        Ok(buf.chunks_exact(17).map(unpack17).collect())
    }

    fn contains(&self, p: &Packed) -> std::io::Result<bool> {
        let b = self.index.partition_point(|x| x <= p);
        if b == 0 {
            return Ok(false);
        }
        Ok(self.read_block(b - 1)?.binary_search(p).is_ok())
    }

    fn all(&self) -> std::io::Result<Vec<Packed>> {
        (0..self.index.len())
            .map(|b| self.read_block(b))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.concat())
    }
}

fn unpack17(c: &[u8]) -> Packed {
    let mut h = [0u8; 16];
    h.copy_from_slice(&c[..16]);
    (h, c[16])
}

/// Writes sorted unique keys: in memory up to `limit`, then to a file.
struct KeySetWriter {
    limit: usize,
    memory: Vec<Packed>,
    disk: Option<KeyFile>,
}

/// The key file being written: its staging directory, path, index and length so far.
struct KeyFile {
    dir: Staging,
    out: BufWriter<std::fs::File>,
    path: PathBuf,
    index: Vec<Packed>,
    len: usize,
}

impl KeySetWriter {
    fn new(limit: usize) -> KeySetWriter {
        KeySetWriter {
            limit,
            memory: Vec::new(),
            disk: None,
        }
    }

    fn push(&mut self, p: Packed) -> std::io::Result<()> {
        if self.disk.is_none() && self.memory.len() >= self.limit {
            let dir = Staging::new()?;
            let path = dir.path().join("keys");
            let out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&path)?);
            self.disk = Some(KeyFile {
                dir,
                out,
                path,
                index: Vec::new(),
                len: 0,
            });
            for q in std::mem::take(&mut self.memory) {
                self.push(q)?;
            }
        }
        match &mut self.disk {
            None => self.memory.push(p),
            Some(f) => {
                if f.len.is_multiple_of(BLOCK) {
                    f.index.push(p);
                }
                f.out.write_all(&p.0)?;
                f.out.write_all(&[p.1])?;
                f.len += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> std::io::Result<KeySet> {
        let Some(KeyFile {
            dir,
            out,
            path,
            index,
            len,
        }) = self.disk
        else {
            return Ok(KeySet {
                memory: self.memory,
                ..KeySet::default()
            });
        };
        out.into_inner().map_err(|e| e.into_error())?;
        let file = std::fs::File::open(path)?;
        Ok(KeySet {
            disk: Some(DiskKeys {
                _dir: dir,
                file,
                len,
                index,
            }),
            ..KeySet::default()
        })
    }
}

/// One keyed row: the key's MAC, and the row with the key's alternative in its top byte.
type Entry = ([u8; 16], u64);

fn entry_key(e: &Entry) -> Packed {
    (e.0, (e.1 >> 56) as u8)
}

fn entry_row(e: &Entry) -> u64 {
    e.1 & ((1 << 56) - 1)
}

/// Every keyed row seen, 24 bytes each; past `limit` (`ingest.keys_in_memory`, 2 Mi rows: 48
/// MiB), in sorted runs on disk.
pub(crate) struct KeyBook {
    /// Entries held in memory (and keys a key set holds) before they go to disk.
    limit: usize,
    seen: Vec<Entry>,
    missing: Vec<u64>,
    runs: Vec<PathBuf>,
    /// Merged runs written so far (their file names).
    merged: usize,
    dir: Option<Staging>,
}

/// Runs on disk at most: past it they are merged into one.
const MAX_RUNS: usize = 64;

/// What a book learned.
pub(crate) struct Finished {
    /// The unique keys.
    pub keys: KeySet,
    /// The keys that two or more rows shared (none of those rows is taken).
    pub shared: KeySet,
    /// The rows not taken: no key, or a key another row has too.
    pub excluded: HashSet<u64>,
    /// The row problems for them.
    pub issues: Vec<RowIssue>,
}

impl KeyBook {
    pub fn with_limit(limit: usize) -> KeyBook {
        KeyBook {
            limit,
            seen: Vec::new(),
            missing: Vec::new(),
            runs: Vec::new(),
            merged: 0,
            dir: None,
        }
    }

    pub fn add(&mut self, rows: &Int64Array, keys: &ArrayRef) -> Result<(), SourceError> {
        let keys = keys.as_any().downcast_ref::<StringArray>();
        for r in 0..rows.len() {
            let row = rows.value(r) as u64;
            match keys.filter(|k| k.is_valid(r)).map(|k| k.value(r)) {
                None => self.missing.push(row),
                Some(k) => {
                    let (h, alt) =
                        pack(k).ok_or_else(|| SourceError::Sink("malformed record key".into()))?;
                    self.seen.push((h, u64::from(alt) << 56 | row));
                }
            }
        }
        if self.seen.len() >= self.limit {
            self.spill().map_err(staging_err)?;
        }
        Ok(())
    }

    /// Writes the rows held, sorted, to a new run.
    fn spill(&mut self) -> std::io::Result<()> {
        if self.dir.is_none() {
            self.dir = Some(Staging::new()?);
        }
        let Some(dir) = &self.dir else { return Ok(()) };
        self.seen.sort_unstable_by_key(entry_key);
        let path = dir.path().join(format!("run-{}", self.runs.len()));
        let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&path)?);
        for e in &self.seen {
            out.write_all(&e.0)?;
            out.write_all(&e.1.to_le_bytes())?;
        }
        out.into_inner().map_err(|e| e.into_error())?;
        self.seen = Vec::new();
        self.runs.push(path);
        if self.runs.len() >= MAX_RUNS {
            self.merge_runs()?;
        }
        Ok(())
    }

    /// Merges every run into one (duplicates kept), so the final merge never opens more than
    /// [`MAX_RUNS`] files however small the limit is.
    fn merge_runs(&mut self) -> std::io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let path = dir.path().join(format!("merged-{}", self.merged));
        self.merged += 1;
        let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&path)?);
        merge(&self.runs, &mut |e: Entry| {
            out.write_all(&e.0)?;
            out.write_all(&e.1.to_le_bytes())
        })?;
        out.into_inner().map_err(|e| e.into_error())?;
        for run in std::mem::replace(&mut self.runs, vec![path]) {
            std::fs::remove_file(run)?;
        }
        Ok(())
    }

    /// The unique keys, the rows not taken (no key, or a key another row has too), and the
    /// row problems for them. `key_inputs` names the fields keys are made from.
    pub fn finish(mut self, key_inputs: &str) -> Result<Finished, SourceError> {
        let issue = |row: u64, reason| RowIssue {
            row,
            field: key_inputs.to_string(),
            reason,
        };
        let mut issues: Vec<RowIssue> = self
            .missing
            .iter()
            .map(|&r| issue(r, Reason::MissingKey))
            .collect();
        let mut excluded: HashSet<u64> = self.missing.iter().copied().collect();
        let mut keys = KeySetWriter::new(self.limit);
        let mut shared = KeySetWriter::new(self.limit);
        let mut group: Vec<Entry> = Vec::new();
        let mut close = |group: &mut Vec<Entry>| -> std::io::Result<()> {
            match group.as_slice() {
                [] => {}
                [one] => keys.push(entry_key(one))?,
                many => {
                    shared.push(entry_key(&many[0]))?;
                    for e in many {
                        excluded.insert(entry_row(e));
                        issues.push(issue(entry_row(e), Reason::DuplicateKey));
                    }
                }
            }
            group.clear();
            Ok(())
        };
        let mut each = |e: Entry| -> std::io::Result<()> {
            if group.first().is_some_and(|g| entry_key(g) != entry_key(&e)) {
                close(&mut group)?;
            }
            group.push(e);
            Ok(())
        };
        if self.runs.is_empty() {
            self.seen.sort_unstable_by_key(entry_key);
            std::mem::take(&mut self.seen)
                .into_iter()
                .try_for_each(&mut each)
                .map_err(staging_err)?;
        } else {
            self.spill().map_err(staging_err)?;
            merge(&self.runs, &mut each).map_err(staging_err)?;
        }
        close(&mut group).map_err(staging_err)?;
        Ok(Finished {
            keys: keys.finish().map_err(staging_err)?,
            shared: shared.finish().map_err(staging_err)?,
            excluded,
            issues,
        })
    }
}

fn staging_err(e: std::io::Error) -> SourceError {
    SourceError::Sink(format!("cannot stage the record keys: {}", e.kind()))
}

/// Hands every entry of the sorted runs to `each`, in key order.
fn merge(
    runs: &[PathBuf],
    each: &mut dyn FnMut(Entry) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut readers = runs
        .iter()
        .map(|p| Ok(BufReader::with_capacity(1 << 16, std::fs::File::open(p)?)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let next = |r: &mut BufReader<std::fs::File>| -> std::io::Result<Option<Entry>> {
        let mut buf = [0u8; 24];
        match r.read_exact(&mut buf) {
            Ok(()) => {
                let mut h = [0u8; 16];
                h.copy_from_slice(&buf[..16]);
                let mut row = [0u8; 8];
                row.copy_from_slice(&buf[16..]);
                Ok(Some((h, u64::from_le_bytes(row))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    };
    // A min-heap of each run's next entry, ordered by key (then run, for a stable order).
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(e) = next(r)? {
            heap.push(std::cmp::Reverse((entry_key(&e), i, e.1)));
        }
    }
    while let Some(std::cmp::Reverse(((h, _), i, row))) = heap.pop() {
        each((h, row))?;
        if let Some(e) = next(&mut readers[i])? {
            heap.push(std::cmp::Reverse((entry_key(&e), i, e.1)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64, alt: u8) -> String {
        let mut h = [0u8; 16];
        h[..8].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
        text(&(h, alt))
    }

    /// A book past several runs finds the same unique keys and duplicate rows as one in
    /// memory, and its key set (on disk) answers `contains` and `texts` like the memory one.
    #[test]
    fn runs_on_disk_agree_with_memory() {
        let n = 50_000usize;
        let mut rows = Vec::new();
        let mut keys = Vec::new();
        for r in 0..n as u64 {
            rows.push(r as i64 + 1);
            // Every 1000th row repeats the key of the row before it; every 777th has none.
            let k = match r {
                _ if r % 777 == 0 => None,
                _ if r % 1000 == 999 => Some(key(r - 1, 0)),
                _ => Some(key(r, (r % 2) as u8)),
            };
            keys.push(k);
        }
        // A book of every row, handed over in batches of `batch` rows.
        let fill = |limit: usize, batch: usize| {
            let mut book = KeyBook::with_limit(limit);
            for chunk in (0..n).collect::<Vec<_>>().chunks(batch) {
                let r = Int64Array::from(chunk.iter().map(|&i| rows[i]).collect::<Vec<_>>());
                let k: ArrayRef = std::sync::Arc::new(StringArray::from(
                    chunk.iter().map(|&i| keys[i].clone()).collect::<Vec<_>>(),
                ));
                book.add(&r, &k).unwrap();
            }
            book
        };
        let book = fill(20_000, 8192);
        assert!(book.runs.len() >= 2, "the book spilled runs");
        // A tiny limit spills a run per batch: past 64 runs they are merged, and the result
        // is the same.
        let tiny = fill(1, 500);
        assert!(tiny.merged > 0 && tiny.runs.len() < MAX_RUNS);
        let tiny = tiny.finish("case_number").unwrap();
        let (tiny_set, tiny_excluded) = (tiny.keys, tiny.excluded);
        let Finished {
            keys: set,
            shared,
            excluded,
            issues,
        } = book.finish("case_number").unwrap();
        assert!(set.disk.is_some(), "the key set is on disk");
        let missing = (0..n as u64).filter(|r| r % 777 == 0).count();
        // A repeated key whose first row had no key is unique after all.
        let dup_pairs = (0..n as u64)
            .filter(|r| r % 1000 == 999 && r % 777 != 0 && (r - 1) % 777 != 0)
            .count();
        assert!(missing > 0 && dup_pairs > 0);
        assert_eq!(excluded.len(), missing + 2 * dup_pairs);
        assert_eq!(issues.len(), excluded.len());
        assert_eq!(set.len(), n - missing - 2 * dup_pairs);
        let has = |s: &KeySet, k: String| s.contains(&k).unwrap();
        assert!(has(&set, key(1, 1)));
        assert!(!has(&set, key(1, 0)), "the alternative is part of the key");
        assert!(!has(&set, key(998, 0)), "a duplicated key is not taken");
        assert!(has(&shared, key(998, 0)), "but it is known as shared");
        assert_eq!(shared.len(), dup_pairs);
        assert!(!has(&set, key(n as u64 + 5, 1)));
        let texts = set.texts().unwrap();
        assert_eq!(texts.len(), set.len());
        assert!(texts.windows(2).all(|w| pack(&w[0]) < pack(&w[1])));
        assert_eq!(tiny_excluded, excluded);
        assert_eq!(tiny_set.texts().unwrap(), texts);
    }
}
