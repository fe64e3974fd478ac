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
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
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
    fn unwritable_path_is_a_clear_error() {
        let e = FileSink::open(Path::new("/nonexistent-dir/x/log"), false)
            .err()
            .expect("error");
        assert!(e.to_string().contains("/nonexistent-dir/x/log"), "{e}");
    }
}
