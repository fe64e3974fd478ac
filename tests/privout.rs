//! `fwlog run --user nobody` started as root, against what nobody can plant in the spool
//! directory it owns: symlinks, FIFOs and hard links under any name (a directory name, the
//! `fwlog.seq_global` file, `quarantine`) never make root act on their targets, and never hang
//! start-up; a spool directory that is itself a link or writable by others is refused before
//! anything in it is touched.

mod support;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, RunArgs};
use support::netns::NetNs;

const NOBODY: u32 = 65534;

fn rules(ns: &NetNs) {
    ns.output_rules(&["udp dport 9999 log prefix \"PRIV \" group 5"]);
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What nobody owns: the entry itself (not a link's target) is given to nobody.
fn as_nobodys(p: &Path) {
    std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {p:?}"
    );
    as_nobodys(p);
}

fn symlink(target: &Path, p: &Path) {
    std::os::unix::fs::symlink(target, p).unwrap();
    as_nobodys(p);
}

/// A test directory nobody can traverse, a spool in it that nobody owns (as after an earlier
/// `--user nobody` run), and a root-only directory with a secret and a victim file.
struct Setup {
    dir: tempfile::TempDir,
    spool: PathBuf,
    rootonly: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        chmod(&spool, 0o700);
        as_nobodys(&spool);
        let rootonly = dir.path().join("rootonly");
        std::fs::create_dir(&rootonly).unwrap();
        chmod(&rootonly, 0o700);
        std::fs::write(rootonly.join("secret"), b"s3cret\n").unwrap();
        chmod(&rootonly.join("secret"), 0o600);
        std::fs::write(rootonly.join("victim"), b"abcdefghijklmnopqrstuvwxyz\n").unwrap();
        Setup {
            dir,
            spool,
            rootonly,
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out.log")
    }

    fn args(&self) -> RunArgs {
        RunArgs::new(self.dir.path())
            .spool_at(&self.spool)
            .group(5)
            .with(&["--user", "nobody"])
            .output_to(self.out().to_str().unwrap())
    }

    /// Nothing in the root-only directory changed owner, content or place.
    fn assert_root_files_untouched(&self) {
        let m = std::fs::metadata(&self.rootonly).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (0, 0o700), "rootonly dir");
        let mut names: Vec<_> = std::fs::read_dir(&self.rootonly)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["secret", "victim"], "nothing moved into it");
        for f in ["secret", "victim"] {
            let m = std::fs::metadata(self.rootonly.join(f)).unwrap();
            assert_eq!(m.uid(), 0, "{f} still root's");
        }
        assert_eq!(
            std::fs::read(self.rootonly.join("victim")).unwrap(),
            b"abcdefghijklmnopqrstuvwxyz\n"
        );
    }

    /// Start fwlog, log 20 packets, stop it; returns its stderr.
    fn run_and_log(&self, ns: &NetNs) -> String {
        let d = self.args().start(ns);
        send_udp(ns, 9999, 0..20);
        let out = self.out();
        wait_for("20 lines", Duration::from_secs(20), || {
            lines(&out).len() >= 20
        });
        let err = d.stderr_text();
        assert_eq!(d.stop(), 0, "{err}");
        err
    }

    /// Run fwlog expecting it to refuse to start; returns (exit status, stderr).
    fn run_refused(&self, ns: &NetNs, args: &RunArgs) -> (i32, String) {
        let mut d = args.spawn(ns);
        let st = d.wait(Duration::from_secs(20));
        (st, d.stderr_text())
    }
}

#[test]
fn planted_links_fifos_and_hard_links_in_the_spool_are_not_followed() {
    require_root!();
    let ns = NetNs::new("plant");
    rules(&ns);
    let s = Setup::new();
    // A link to a root-only directory (the old hand-over chowned what was inside), a FIFO (an
    // open for reading would block), a hard link to a root file (root cannot tell it from a
    // spool file by its name), and fwlog.seq_global as a link to a root file (root wrote the
    // sequence number over its first bytes).
    symlink(&s.rootonly, &s.spool.join("evil"));
    mkfifo(&s.spool.join("fifo"));
    std::fs::hard_link(s.rootonly.join("secret"), s.spool.join("hard")).unwrap();
    symlink(
        &s.rootonly.join("victim"),
        &s.spool.join("fwlog.seq_global"),
    );
    let err = s.run_and_log(&ns);
    s.assert_root_files_untouched();
    assert!(
        err.contains("fwlog.seq_global: is a symbolic link; not followed"),
        "{err}"
    );
    // The link itself is still there, still nobody's; fwlog made its own files as nobody.
    let m = std::fs::symlink_metadata(s.spool.join("evil")).unwrap();
    assert!(m.file_type().is_symlink());
    for e in std::fs::read_dir(&s.spool).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.ends_with(".seg") || n == "LOCK" {
            assert_eq!(e.metadata().unwrap().uid(), NOBODY, "{n}");
        }
    }
}

#[test]
fn a_fifo_as_the_sequence_file_does_not_hang_start_up() {
    require_root!();
    let ns = NetNs::new("seqfifo");
    rules(&ns);
    let s = Setup::new();
    mkfifo(&s.spool.join("fwlog.seq_global"));
    let err = s.run_and_log(&ns);
    assert!(
        err.contains("fwlog.seq_global: is not a regular file; not used"),
        "{err}"
    );
}

#[test]
fn a_planted_quarantine_link_or_fifo_is_refused_not_followed() {
    require_root!();
    let ns = NetNs::new("quar");
    rules(&ns);
    for fifo in [false, true] {
        let s = Setup::new();
        // A file the spool must move aside, so that it needs `quarantine/`.
        std::fs::write(s.spool.join("junk.seg"), b"not a segment").unwrap();
        as_nobodys(&s.spool.join("junk.seg"));
        if fifo {
            mkfifo(&s.spool.join("quarantine"));
        } else {
            symlink(&s.rootonly, &s.spool.join("quarantine"));
        }
        let (st, err) = s.run_refused(&ns, &s.args());
        assert_eq!(st, 75, "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("quarantine"), "{err}");
        s.assert_root_files_untouched();
        assert!(s.spool.join("junk.seg").exists());
    }
}

#[test]
fn a_spool_directory_that_is_a_link_or_writable_by_others_is_refused() {
    require_root!();
    let ns = NetNs::new("spooldir");
    rules(&ns);
    let s = Setup::new();
    let link = s.dir.path().join("spool-link");
    std::os::unix::fs::symlink(&s.rootonly, &link).unwrap();
    let (st, err) = s.run_refused(&ns, &s.args().spool_at(&link));
    assert_eq!(st, 75, "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    chmod(&s.spool, 0o777);
    let (st, err) = s.run_refused(&ns, &s.args());
    assert_eq!(st, 75, "{err}");
    assert!(err.contains("writable by other users"), "{err}");
    // Owned by another unprivileged user than --user.
    chmod(&s.spool, 0o700);
    std::os::unix::fs::lchown(&s.spool, Some(1), Some(1)).unwrap();
    let (st, err) = s.run_refused(&ns, &s.args());
    assert_eq!(st, 75, "{err}");
    assert!(err.contains("owned by uid 1"), "{err}");
    s.assert_root_files_untouched();
    assert!(!s.rootonly.join("LOCK").exists());
}

#[test]
fn a_quarantined_file_is_one_plain_escaped_sentence() {
    require_root!();
    let ns = NetNs::new("qmsg");
    rules(&ns);
    let s = Setup::new();
    let hostile = s.spool.join("bad\x1b[2J\nfwlog: forged.seg");
    std::fs::write(&hostile, b"not a segment").unwrap();
    as_nobodys(&hostile);
    let err = s.run_and_log(&ns);
    let line = err
        .lines()
        .find(|l| l.contains("quarantined"))
        .unwrap_or_else(|| panic!("no quarantine line: {err:?}"));
    assert!(line.contains(r"bad\x1b[2J\x0afwlog: forged.seg"), "{line}");
    assert!(
        !err.contains('\x1b') && !err.contains("Quarantined {"),
        "{err:?}"
    );
    assert!(
        !err.lines().any(|l| l.starts_with("fwlog: forged")),
        "{err:?}"
    );
    assert!(s.spool.join("quarantine").is_dir());
}

#[test]
fn root_does_not_write_through_a_link_planted_in_an_output_directory() {
    require_root!();
    let s = Setup::new();
    // An output directory the unprivileged user owns, with links it planted.
    let logs = s.dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    as_nobodys(&logs);
    symlink(&s.rootonly.join("victim"), &logs.join("soft.log"));
    std::fs::hard_link(s.rootonly.join("secret"), logs.join("hard.log")).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample.pcap");
    for (name, want) in [("soft.log", "symbolic link"), ("hard.log", "hard link")] {
        let out = std::process::Command::new(support::fwlog_bin())
            .args(["read", "--no-dns", "-o"])
            .arg(logs.join(name))
            .arg(&sample)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(73), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // replay --pcap truncates its file: not through a planted link either.
    let rspool = s.dir.path().join("rspool");
    drop(fwlog_spool::Spool::open(&rspool, fwlog_spool::Options::default()).unwrap());
    let out = std::process::Command::new(support::fwlog_bin())
        .args(["replay", "--spool"])
        .arg(&rspool)
        .arg("--pcap")
        .arg(logs.join("soft.log"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(73), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read(s.rootonly.join("secret")).unwrap(),
        b"s3cret\n"
    );
    s.assert_root_files_untouched();
}
