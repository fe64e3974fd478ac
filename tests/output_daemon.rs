//! `fwlog run` with outputs that cannot take what it writes: a FIFO with no reader (signals
//! still work), a FIFO with a reader (no fdatasync, everything acknowledged), /dev/full (the
//! back-off sleeps; "printed" and "pending" tell the truth), and `replay --pcap` files that
//! stay private whatever the umask.

mod support;

use std::ffi::CString;
use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::daemon::{lines, send_udp, wait_for, RunArgs};
use support::netns::NetNs;
use support::tmpfs::Tmpfs;

fn rules(ns: &NetNs) {
    ns.output_rules(&["udp dport 9999 counter log prefix \"OUT \" group 5"]);
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// `fwlog run --group 5` with the spool in `dir`, output to `out`.
fn args(dir: &Path, out: &Path) -> RunArgs {
    RunArgs::new(dir).group(5).output_to(out.to_str().unwrap())
}

/// A number of the last counters line (`KEY=N` words).
fn field(err: &str, key: &str) -> u64 {
    let line = err
        .lines()
        .rfind(|l| l.contains(" printed="))
        .unwrap_or_else(|| panic!("no counters line in {err}"));
    let want = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(want.as_str()))
        .unwrap_or_else(|| panic!("{key} not in {line}"))
        .trim_end_matches(';')
        .parse()
        .unwrap()
}

/// CPU time (user + system) the process has used so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are 11 and 12 after the state field.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn a_fifo_output_with_no_reader_leaves_signals_working() {
    require_root!();
    let ns = NetNs::new("fifo0");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    mkfifo(&fifo);
    let d = args(dir.path(), &fifo).start(&ns);
    // Far more than a pipe holds.
    send_udp(&ns, 9999, 0..2000);
    std::thread::sleep(Duration::from_secs(1));
    d.signal(libc::SIGHUP);
    d.signal(libc::SIGUSR1);
    let path = d.stderr.clone();
    wait_for("the SIGUSR1 counters line", Duration::from_secs(5), || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.contains(" pending="))
    });
    let t = Instant::now();
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0, "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        t.elapsed()
    );
}

#[test]
fn a_fifo_output_with_a_reader_is_not_synced_and_everything_is_acknowledged() {
    require_root!();
    let ns = NetNs::new("fifo1");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    mkfifo(&fifo);
    let reader_path = fifo.clone();
    let got = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let got2 = std::sync::Arc::clone(&got);
    std::thread::spawn(move || {
        let f = std::fs::File::open(&reader_path).unwrap();
        for l in std::io::BufReader::new(f).lines() {
            if l.is_ok_and(|l| l.contains("OUT ")) {
                got2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let d = args(dir.path(), &fifo).start(&ns);
    send_udp(&ns, 9999, 0..50);
    wait_for("50 lines through the FIFO", Duration::from_secs(20), || {
        got.load(std::sync::atomic::Ordering::Relaxed) >= 50
    });
    std::thread::sleep(Duration::from_millis(300));
    let path = d.stderr.clone();
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0, "{err}");
    let err = std::fs::read_to_string(&path).unwrap();
    assert!(!err.contains("cannot write"), "{err}");
    assert_eq!(field(&err, "printed"), 50, "{err}");
    assert_eq!(field(&err, "pending"), 0, "{err}");
    // The next start finds nothing left to print again.
    let out = dir.path().join("out.log");
    let d = args(dir.path(), &out).start(&ns);
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert!(!err.contains("from before"), "{err}");
}

#[test]
fn a_full_output_backs_off_without_spinning_and_counts_nothing_as_printed() {
    require_root!();
    let ns = NetNs::new("full");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let d = args(dir.path(), Path::new("/dev/full")).start(&ns);
    send_udp(&ns, 9999, 0..50);
    let path = d.stderr.clone();
    wait_for("the write error", Duration::from_secs(10), || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.contains("cannot write to /dev/full"))
    });
    let pid = d.child.id();
    let before = (cpu(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu(pid) - before.0;
    let wall = before.1.elapsed();
    eprintln!("CPU used while the output failed: {used:?} in {wall:?}");
    assert!(
        used < wall / 10,
        "fwlog used {used:?} of CPU in {wall:?} while its output failed"
    );
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0, "{err}");
    let err = std::fs::read_to_string(&path).unwrap();
    assert_eq!(field(&err, "printed"), 0, "{err}");
    assert_eq!(field(&err, "pending"), 50, "{err}");
    assert_eq!(
        err.matches("cannot write to /dev/full").count(),
        1,
        "said once: {err}"
    );
}

#[test]
fn replay_pcap_files_are_private_whatever_the_umask() {
    require_root!();
    let ns = NetNs::new("pcapmode");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let (spool, out) = (dir.path().join("spool"), dir.path().join("out.log"));
    let d = args(dir.path(), &out)
        .with(&["--retain", "1MiB"])
        .start(&ns);
    send_udp(&ns, 9999, 0..5);
    wait_for("5 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 5
    });
    assert_eq!(d.stop(), 0);
    let pcap = dir.path().join("x.pcap");
    // SAFETY: umask has no memory-safety preconditions; the child inherits it.
    let old = unsafe { libc::umask(0o022) };
    let st = std::process::Command::new(support::fwlog_bin())
        .args(["replay", "--spool"])
        .arg(&spool)
        .arg("--pcap")
        .arg(&pcap)
        .status()
        .unwrap();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    assert!(st.success());
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&pcap).unwrap();
    assert!(m.len() > 24, "holds packets");
    assert_eq!(m.mode() & 0o037, 0, "mode {:o}", m.mode() & 0o777);
}

#[test]
fn a_spool_max_storm_is_reported_once_a_second_with_its_count() {
    require_root!();
    let ns = NetNs::new("storm");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let json = format!("json={}", out.display());
    let a = RunArgs::new(dir.path())
        .group(5)
        .with(&["--segment-size", "4KiB", "--spool-max", "8KiB"])
        .output_to(&json);
    let d = a.start(&ns);
    let t = Instant::now();
    // About 3 s of traffic faster than a tiny spool and a synced output take it.
    for k in 0..30 {
        send_udp(&ns, 9999, k * 200..(k + 1) * 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = t.elapsed().as_secs() + 1;
    std::thread::sleep(Duration::from_millis(500));
    let path = d.stderr.clone();
    assert_eq!(d.stop(), 0);
    let err = std::fs::read_to_string(&path).unwrap();
    // A report spooled as the daemon stopped is printed by the next start.
    let pending = field(&err, "pending");
    let n = lines(&out).len();
    let d = a.start(&ns);
    let path2 = d.stderr.clone();
    let waited = std::panic::catch_unwind(|| {
        wait_for("what was pending", Duration::from_secs(10), || {
            lines(&out).len() as u64 >= n as u64 + pending
        })
    });
    assert_eq!(d.stop(), 0);
    assert!(
        waited.is_ok(),
        "pending {pending}, printed {}:\n{err}\n{}",
        lines(&out).len() - n,
        std::fs::read_to_string(&path2).unwrap()
    );
    let logged = ns.counter();
    let (mut printed, mut lost, mut reports) = (0u64, 0u64, 0u64);
    for l in lines(&out) {
        let o: serde_json::Value = serde_json::from_str(&l).unwrap();
        if o["event"] == "loss" {
            assert_eq!(o["cause"], "spool-full", "{l}");
            lost += o["count"].as_u64().unwrap();
            reports += 1;
        } else {
            printed += 1;
        }
    }
    let noise = err
        .lines()
        .filter(|l| l.contains("cannot spool") || l.contains("room again"))
        .count() as u64;
    eprintln!("{lost} lost in {reports} loss lines, {noise} stderr lines, {secs} s");
    assert!(lost > 0, "the spool really refused packets");
    assert_eq!(
        printed + lost,
        logged,
        "every packet printed or counted lost"
    );
    assert!(reports <= secs + 1, "{reports} loss lines in {secs} s");
    let noise = err
        .lines()
        .filter(|l| l.contains("cannot spool") || l.contains("room again"))
        .count() as u64;
    assert!(
        noise <= 2 * (secs + 1),
        "{noise} stderr lines in {secs} s:\n{err}"
    );
}

#[test]
fn a_stderr_nobody_reads_blocks_neither_printing_nor_sigterm() {
    require_root!();
    let ns = NetNs::new("stall");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let mut child = ns
        .command(support::fwlog_bin())
        .arg("run")
        .args(args(dir.path(), &out).args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read up to the start-up line, then never again.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut l = String::new();
    while !l.contains("fwlog: logging") {
        l.clear();
        assert!(err.read_line(&mut l).unwrap() > 0, "fwlog ended early");
    }
    // Far more than a pipe holds: each SIGUSR1 prints a counters line.
    for _ in 0..1500 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_micros(500));
    }
    send_udp(&ns, 9999, 0..20);
    wait_for(
        "20 lines despite the stalled stderr",
        Duration::from_secs(10),
        || lines(&out).len() >= 20,
    );
    let t = Instant::now();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("SIGTERM ignored with a stalled stderr");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(status.code(), Some(0));
    drop(err);
}

#[test]
fn sighup_while_the_output_is_full_keeps_each_batch_in_one_file() {
    require_root!();
    let ns = NetNs::new("hupfull");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let small = Tmpfs::mount(&dir.path().join("small"), "16k");
    let out = dir.path().join("small/out.json");
    let json = format!("json={}", out.display());
    let a = RunArgs::new(dir.path()).group(5).output_to(&json);
    let d = a.start(&ns);
    send_udp(&ns, 9999, 0..300);
    let path = d.stderr.clone();
    wait_for("the write failure", Duration::from_secs(20), || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.contains("cannot write to"))
    });
    // logrotate while the output is failing: rename, then SIGHUP.
    let rotated = dir.path().join("small/out.json.1");
    std::fs::rename(&out, &rotated).unwrap();
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    small.resize("4m");
    wait_for("all 300 packets", Duration::from_secs(30), || {
        lines(&out).len() + lines(&rotated).len() >= 300
    });
    // What was formatted before the reopen may all be one held batch (a burst is one commit),
    // finished in the old file; packets sent now must go to the new one.
    send_udp(&ns, 9999, 300..310);
    wait_for("all 310 packets", Duration::from_secs(30), || {
        lines(&out).len() + lines(&rotated).len() >= 310
    });
    assert_eq!(d.stop(), 0);
    let mut seqs = Vec::new();
    for f in [&rotated, &out] {
        for l in lines(f) {
            let o: serde_json::Value = serde_json::from_str(&l).unwrap_or_else(|e| {
                panic!("{}: a line split across files? {l:?}: {e}", f.display())
            });
            seqs.push(o["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs.len(), 310, "every packet exactly once");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order");
    assert!(
        !lines(&out).is_empty(),
        "the new file took the later batches"
    );
}

#[test]
fn a_failed_sighup_reopen_is_retried() {
    require_root!();
    let ns = NetNs::new("reopen");
    rules(&ns);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let out = logs.join("out.log");
    let json = format!("json={}", out.display());
    let a = RunArgs::new(dir.path()).group(5).output_to(&json);
    let d = a.start(&ns);
    send_udp(&ns, 9999, 0..5);
    wait_for("5 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 5
    });
    // The directory is gone when SIGHUP comes: the reopen fails, the old file keeps the lines.
    let moved = dir.path().join("logs.old");
    std::fs::rename(&logs, &moved).unwrap();
    d.signal(libc::SIGHUP);
    let path = d.stderr.clone();
    wait_for("the failed reopen", Duration::from_secs(10), || {
        std::fs::read_to_string(&path).is_ok_and(|s| s.contains("cannot reopen"))
    });
    send_udp(&ns, 9999, 5..10);
    let old = moved.join("out.log");
    wait_for(
        "5 more lines in the old file",
        Duration::from_secs(20),
        || lines(&old).len() >= 10,
    );
    // Back: the next batch after a second goes to a new file, without another SIGHUP.
    std::fs::create_dir(&logs).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    send_udp(&ns, 9999, 10..15);
    wait_for("the retried reopen", Duration::from_secs(20), || {
        lines(&out).len() >= 5
    });
    assert_eq!(d.stop(), 0);
    assert_eq!(lines(&old).len(), 10);
    assert_eq!(lines(&out).len(), 5);
    let err = std::fs::read_to_string(&path).unwrap();
    assert!(err.contains("reopened"), "{err}");
}
