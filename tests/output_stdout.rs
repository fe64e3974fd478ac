//! `fwlog run -o -` into a pipe or a socket whose reader never reads: the processing loop is
//! not held by the write, so SIGUSR1 is answered and SIGTERM ends fwlog promptly; what was not
//! written stays in the spool and the next start prints it (nothing acknowledged that was not
//! written).

mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::daemon::{lines, send_udp, wait_for, Daemon};
use support::netns::NetNs;

/// `seq_global` of every whole JSON packet line in `text` (a last line cut off is skipped).
fn seqs<'a>(text: impl Iterator<Item = &'a str>) -> Vec<u64> {
    text.filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|o| o["event"] == "packet")
        .map(|o| o["seq_global"].as_u64().expect("seq_global"))
        .collect()
}

/// A number of the last counters line (`KEY=N` words).
fn field(err: &str, key: &str) -> u64 {
    let line = err
        .lines()
        .rfind(|l| l.starts_with("fwlog: received="))
        .unwrap_or_else(|| panic!("no counters line in {err}"));
    let want = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(want.as_str()))
        .unwrap_or_else(|| panic!("{key} not in {line}"))
        .trim_end_matches(';')
        .parse()
        .unwrap()
}

#[test]
fn stdout_into_a_pipe_nobody_reads_leaves_signals_working_and_loses_nothing() {
    require_root!();
    stalled_stdout("stdoutp", || {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both were just created and belong to nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        (Stdio::from(w), Box::new(std::fs::File::from(r)))
    });
}

#[test]
fn stdout_into_a_socket_nobody_reads_leaves_signals_working_and_loses_nothing() {
    require_root!();
    // As under systemd, where standard output is a stream socket to the journal.
    stalled_stdout("stdouts", || {
        let (a, b) = UnixStream::pair().unwrap();
        (Stdio::from(OwnedFd::from(a)), Box::new(b))
    });
}

/// `fwlog run -o -` with standard output from `make` (the write end, and the read end the test
/// keeps and reads only after fwlog exited).
fn stalled_stdout(tag: &str, make: impl FnOnce() -> (Stdio, Box<dyn Read>)) {
    let ns = NetNs::new(tag);
    support::fdstore::rule(&ns, &[(9999, 5)]);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let stderr = dir.path().join("stderr.pipe");
    let (out_end, mut pipe) = make();
    let mut child = ns
        .command(support::fwlog_bin())
        .args(["run", "--group", "5", "--no-dns", "--format", "json"])
        .arg("--spool")
        .arg(&spool)
        .args(["-o", "-"])
        .stdin(Stdio::null())
        .stdout(out_end)
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("spawn fwlog run");
    // The command, and with it the test's copy of the write end, is gone: fwlog's exit is the
    // reader's end of file.
    let err = || std::fs::read_to_string(&stderr).unwrap_or_default();
    wait_for("fwlog to start", Duration::from_secs(20), || {
        err().contains("fwlog: logging NFLOG group")
    });
    // Far more than a pipe holds (about 1 MB of JSON lines against 64 KiB).
    const N: u64 = 3000;
    send_udp(&ns, 9999, 0..N as u32);
    let logged = support::fdstore::rule_count(&ns, 9999);
    assert_eq!(logged, N);
    // SAFETY: kill has no memory-safety preconditions; `ip netns exec` execs fwlog.
    let signal = |sig| unsafe { libc::kill(child.id() as i32, sig) };
    // SIGUSR1 is answered while the output is stalled.
    wait_for(
        "a SIGUSR1 line with every packet received",
        Duration::from_secs(20),
        || {
            signal(libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(200));
            err()
                .lines()
                .any(|l| l.starts_with(&format!("fwlog: received={N} ")))
        },
    );
    let t = Instant::now();
    signal(libc::SIGTERM);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("fwlog ignored SIGTERM with a stalled stdout:\n{}", err());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t.elapsed();
    assert_eq!(status.code(), Some(0), "{}", err());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let e = err();
    let pending = field(&e, "pending");
    assert!(pending > 0, "the stalled rest stays in the spool: {e}");

    // What reached the pipe, and what the next start prints from the spool.
    let mut written = String::new();
    pipe.read_to_string(&mut written).unwrap();
    let in_pipe = seqs(written.lines());
    assert!(!in_pipe.is_empty() && (in_pipe.len() as u64) < N);
    let out = dir.path().join("out.json");
    let next = Daemon::start(
        &ns,
        dir.path(),
        &[
            "--group",
            "5",
            "--no-dns",
            "--spool",
            spool.to_str().unwrap(),
            "-o",
            &format!("json={}", out.display()),
        ],
    );
    wait_for("the rest printed", Duration::from_secs(20), || {
        lines(&out).len() as u64 >= pending
    });
    assert_eq!(next.stop(), 0);
    let again = seqs(lines(&out).iter().map(String::as_str));
    let all: BTreeSet<u64> = in_pipe.iter().chain(&again).copied().collect();
    assert_eq!(
        all.len() as u64,
        N,
        "every packet in the pipe or printed after the restart ({} + {})",
        in_pipe.len(),
        again.len()
    );
    // Nothing was acknowledged beyond what reached the pipe: the next start begins at or
    // before the first packet missing from it.
    let first_missing = (in_pipe[0]..).find(|s| !in_pipe.contains(s)).unwrap();
    assert!(again.first().is_some_and(|&s| s <= first_missing));
}
