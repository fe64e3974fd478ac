//! File and stdout sinks: O_APPEND writes, resumable after a failure, optionally fdatasync'd.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::Sink;

pub struct FileSink {
    path: Option<PathBuf>,
    file: Option<File>,
    sync: bool,
    /// Bytes of the current batch already written (resumption point after an error).
    done: usize,
}

fn open_append(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    let cut = trim_partial_line(&f)?;
    if cut > 0 {
        eprintln!(
            "fwlog: {}: removed a partial last line ({cut} bytes) left by a crash during a write; its packets are printed again",
            path.display()
        );
    }
    Ok(f)
}

/// A crash (kill -9 interrupts a large write between pages) can leave the file ending in part of
/// a line. fwlog is its only writer and acknowledges nothing before a whole batch is written, so
/// those packets will be printed again: cut the fragment back to the last newline, so the next
/// line does not run into it. Returns the bytes removed.
fn trim_partial_line(f: &File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        return Ok(0);
    }
    // Look back for the last newline, a chunk at a time; a line is short, so this is brief.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            f.set_len(keep)?;
            return Ok(len - keep);
        }
        end = start;
    }
    f.set_len(0)?;
    Ok(len)
}

impl FileSink {
    pub fn open(path: &Path, sync: bool) -> io::Result<FileSink> {
        let file = open_append(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(FileSink {
            path: Some(path.to_path_buf()),
            file: Some(file),
            sync,
            done: 0,
        })
    }

    pub fn stdout() -> FileSink {
        FileSink {
            path: None,
            file: None,
            sync: false,
            done: 0,
        }
    }
}

impl Sink for FileSink {
    fn write_batch(&mut self, lines: &[u8]) -> io::Result<()> {
        while self.done < lines.len() {
            let rest = &lines[self.done..];
            let n = match &mut self.file {
                Some(f) => f.write(rest),
                None => io::stdout().lock().write(rest),
            };
            match n {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
                Ok(n) => self.done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        match &mut self.file {
            Some(f) if self.sync => f.sync_data()?,
            Some(_) => {}
            None => io::stdout().lock().flush()?,
        }
        self.done = 0;
        Ok(())
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Some(p) = &self.path {
            self.file = Some(open_append(p)?);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "-".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_after_rename_writes_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut s = FileSink::open(&path, true).unwrap();
        s.write_batch(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("log.1")).unwrap();
        s.write_batch(b"two\n").unwrap(); // still the old file, as logrotate expects
        s.reopen().unwrap();
        s.write_batch(b"three\n").unwrap();
        let old = std::fs::read_to_string(dir.path().join("log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!((old.as_str(), new.as_str()), ("one\ntwo\n", "three\n"));
    }

    #[test]
    fn a_partial_last_line_from_a_crash_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"one\ntwo\n{\"half\":").unwrap();
        let mut s = FileSink::open(&path, false).unwrap();
        s.write_batch(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
        // Whole lines are left alone; a file of one fragment is emptied.
        std::fs::write(&path, b"no newline at all").unwrap();
        drop(FileSink::open(&path, false).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let e = FileSink::open(Path::new("/nonexistent-dir/x/log"), false)
            .err()
            .expect("error");
        assert!(e.to_string().contains("/nonexistent-dir/x/log"), "{e}");
    }
}
