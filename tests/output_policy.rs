//! What `fwlog read` may do to its output and its input: never cut a file it did not write,
//! never through a symlink, never write to its own input; a FIFO as input or output never
//! makes it deaf to SIGTERM; plain one-line messages for inputs that are not captures.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample.pcap")
}

fn fwlog(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fwlog"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_file_fwlog_did_not_write_is_never_cut_not_even_through_a_link() {
    let d = tempfile::tempdir().unwrap();
    let victim = d.path().join("victim.dat");
    std::fs::write(&victim, b"l1\ntail").unwrap();
    let link = d.path().join("link.log");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let (code, err) = fwlog(&["read", "--no-dns", "-o", s(&link), s(&sample())]);
    assert_eq!(code, 0, "{err}");
    let after = std::fs::read(&victim).unwrap();
    assert!(after.starts_with(b"l1\ntail\n"), "the foreign tail is kept");
    assert!(after.len() > 100, "and the packets follow it");
    assert!(err.contains("did not leave that tail"), "{err}");
    // A binary file with no newline at all is not emptied.
    let bin = d.path().join("bin.dat");
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8 | 1).collect();
    let data: Vec<u8> = data
        .into_iter()
        .map(|b| if b == b'\n' { 0 } else { b })
        .collect();
    std::fs::write(&bin, &data).unwrap();
    let (code, err) = fwlog(&["read", "--no-dns", "-o", s(&bin), s(&sample())]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(&bin).unwrap().starts_with(&data));
}

#[test]
fn an_output_that_is_the_input_is_refused_before_it_is_touched() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("cap.pcap");
    std::fs::copy(sample(), &cap).unwrap();
    let before = std::fs::read(&cap).unwrap();
    let alias = d.path().join("alias.pcap");
    std::os::unix::fs::symlink(&cap, &alias).unwrap();
    for out in [&cap, &alias] {
        let (code, err) = fwlog(&["read", "--no-dns", "-o", s(out), s(&cap)]);
        assert_eq!(code, 64, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("is also the input"), "{err}");
        assert_eq!(std::fs::read(&cap).unwrap(), before, "input untouched");
    }
}

#[test]
fn a_directory_or_a_broken_capture_gives_one_plain_sentence() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = fwlog(&["read", "--no-dns", s(d.path())]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is a directory"), "{err}");
    assert!(err.contains(s(d.path())), "{err}");
    // A pcapng section header followed by a block the parser rejects.
    let ng = d.path().join("bad.pcapng");
    let mut b = Vec::new();
    b.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    // An interface block whose length is too small to be one.
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&[0u8; 64]);
    std::fs::write(&ng, &b).unwrap();
    let (code, err) = fwlog(&["read", "--no-dns", s(&ng)]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.pcapng"), "{err}");
    for raw in ["input [", "Internal", "Verify", "{", "NomError"] {
        assert!(!err.contains(raw), "no parser internals: {err}");
    }
}

/// Start `fwlog read ARGS`, give it `settle`, SIGTERM it, and return how long it took to exit.
fn term_after(args: &[&str], settle: Duration) -> Duration {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fwlog"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(settle);
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    let t = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        if child.try_wait().unwrap().is_some() {
            return t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_ends_a_read_of_a_fifo_with_no_writer() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("in.fifo");
    mkfifo(&fifo);
    let took = term_after(&["read", "--no-dns", s(&fifo)], Duration::from_millis(500));
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn sigterm_ends_a_read_into_a_fifo_nobody_reads() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("out.fifo");
    mkfifo(&fifo);
    // More than a pipe holds (64 KiB): the sample, many times over.
    let inputs: Vec<String> = (0..60).map(|_| s(&sample()).to_string()).collect();
    let mut args = vec!["read", "--no-dns", "-o", s(&fifo)];
    args.extend(inputs.iter().map(String::as_str));
    let took = term_after(&args, Duration::from_millis(1500));
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
