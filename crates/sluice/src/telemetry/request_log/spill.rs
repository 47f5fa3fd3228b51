//! The spill: where request-log records go while the store cannot take
//! them. Records are appended as JSON lines to numbered segment files in
//! the spill directory (`requests-<n>.jsonl`, `n` increasing, so replay
//! keeps their order); a segment is closed after [`SEGMENT_RECORDS`]
//! records or when replay starts on it, and deleted once every record in
//! it is in the store. Segments left by an earlier run are found at start.
//!
//! Every call does blocking file I/O: the writer runs them on the blocking
//! pool, never on the request path. Appends are `fsync`ed, so a spilled
//! record survives a crash of the process.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use sluice_store::LogRecord;

/// Records per segment before a new one is started.
pub const SEGMENT_RECORDS: usize = 10_000;

pub struct Spill {
    dir: PathBuf,
    /// Closed segments, oldest first, with their record counts.
    closed: Vec<(PathBuf, usize)>,
    /// The segment being appended to and its record count.
    current: Option<(PathBuf, File, usize)>,
    next: u64,
}

/// A segment's records, and how many of its lines could not be read.
pub struct Segment {
    pub path: PathBuf,
    pub records: Vec<LogRecord>,
    pub corrupt: usize,
}

impl Spill {
    /// Opens (creating) the directory and finds the segments already there.
    pub fn open(dir: &Path) -> std::io::Result<Spill> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n = name.strip_prefix("requests-")?.strip_suffix(".jsonl")?;
                Some((n.parse().ok()?, e.path()))
            })
            .collect();
        found.sort();
        let next = found.last().map_or(0, |(n, _)| n + 1);
        let closed = found
            .into_iter()
            .map(|(_, p)| {
                let lines = count_lines(&p);
                (p, lines)
            })
            .collect();
        Ok(Spill {
            dir: dir.to_owned(),
            closed,
            current: None,
            next,
        })
    }

    /// Records waiting in the spill.
    pub fn pending(&self) -> usize {
        self.closed.iter().map(|(_, n)| n).sum::<usize>() + self.current.as_ref().map_or(0, |c| c.2)
    }

    /// Appends records, durably (fsync) before returning.
    pub fn append(&mut self, records: &[LogRecord]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(records.len() * 700);
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        let (_, file, count) = match &mut self.current {
            Some(c) => c,
            None => {
                let path = self.dir.join(format!("requests-{:012}.jsonl", self.next));
                self.next += 1;
                let file = OpenOptions::new().create(true).append(true).open(&path)?;
                self.current.insert((path, file, 0))
            }
        };
        file.write_all(&buf)?;
        file.sync_data()?;
        *count += records.len();
        if *count >= SEGMENT_RECORDS {
            self.close_current();
        }
        Ok(())
    }

    fn close_current(&mut self) {
        if let Some((path, _, n)) = self.current.take() {
            self.closed.push((path, n));
        }
    }

    /// The oldest segment to replay (closing the current one when no other
    /// is left), or `None` when the spill is empty.
    pub fn oldest(&mut self) -> Option<Segment> {
        if self.closed.is_empty() {
            self.close_current();
        }
        let (path, _) = self.closed.first()?.clone();
        let (records, corrupt) = read(&path);
        Some(Segment {
            path,
            records,
            corrupt,
        })
    }

    /// Deletes a replayed segment.
    pub fn remove(&mut self, path: &Path) -> std::io::Result<()> {
        self.closed.retain(|(p, _)| p != path);
        std::fs::remove_file(path)
    }
}

/// The records of a segment; a line that does not parse (a write cut by a
/// crash) is counted, not returned.
fn read(path: &Path) -> (Vec<LogRecord>, usize) {
    let Ok(file) = File::open(path) else {
        return (Vec::new(), 0);
    };
    let (mut records, mut corrupt) = (Vec::new(), 0);
    for line in BufReader::new(file).split(b'\n') {
        match line.map(|l| serde_json::from_slice::<LogRecord>(&l)) {
            Ok(Ok(r)) => records.push(r),
            Ok(Err(_)) | Err(_) => corrupt += 1,
        }
    }
    (records, corrupt)
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|c| **c == b'\n').count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> LogRecord {
        LogRecord {
            id: format!("log_{n}"),
            ts: n as i64,
            request_id: format!("req \"{n}\"\n"),
            endpoint: "chat".into(),
            format: "openai".into(),
            ..LogRecord::default()
        }
    }

    #[test]
    fn segments_keep_order_survive_reopen_and_skip_torn_lines() {
        let dir = std::env::temp_dir().join(format!("sluice-spill-{}", fastrand::u64(..)));
        let mut spill = Spill::open(&dir).unwrap();
        let all: Vec<LogRecord> = (0..SEGMENT_RECORDS + 5).map(rec).collect();
        spill.append(&all[..SEGMENT_RECORDS]).unwrap();
        spill.append(&all[SEGMENT_RECORDS..]).unwrap();
        assert_eq!(spill.closed.len(), 1);
        assert_eq!(spill.pending(), all.len());
        drop(spill);
        // A torn last line, as a crash mid-append leaves it.
        let mut reopened = Spill::open(&dir).unwrap();
        let last = reopened.closed.last().unwrap().0.clone();
        OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap()
            .write_all(b"{\"id\":\"log_x\",\"ts\"")
            .unwrap();
        let mut seen = Vec::new();
        let mut corrupt = 0;
        while let Some(seg) = reopened.oldest() {
            seen.extend(seg.records);
            corrupt += seg.corrupt;
            reopened.remove(&seg.path).unwrap();
        }
        assert_eq!(seen, all);
        assert_eq!(corrupt, 1);
        assert_eq!(reopened.pending(), 0);
        // New segments continue the numbering after the old ones.
        reopened.append(&all[..1]).unwrap();
        assert_eq!(reopened.oldest().unwrap().records, all[..1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
