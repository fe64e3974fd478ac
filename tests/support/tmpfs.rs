//! A small tmpfs a test mounts for its lifetime: a filesystem that fills up on demand (ENOSPC
//! for the spool, an output, a database). Root only; unmounted (lazily) on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (e.g. "16k", "1m") on `at`, creating the directory. Its root is
    /// 0700: no other user can plant anything in it.
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    /// Grow or shrink it in place.
    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount tmpfs");
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Fill it up with one file, run `f` while it is full, then delete the file again.
    pub fn while_full<R>(&self, f: impl FnOnce() -> R) -> R {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0xAAu8; 4096];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&block[..1]).is_ok() {}
        let r = f();
        std::fs::remove_file(&filler).unwrap();
        r
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
