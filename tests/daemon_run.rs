//! `fwlog run` against the real kernel, in namespaces the tests create: every packet exactly
//! once and in order in every format, output failures (full disk) and log rotation that lose
//! and double nothing, and one-line errors with distinct exit statuses.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, Daemon, RunArgs};
use support::kmsg::{self, Kmsg};
use support::netns::NetNs;
use support::tmpfs::Tmpfs;

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn packets(v: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    v.iter().filter(|o| o["event"] == "packet").collect()
}

/// Strip the syslog header "Mmm dd HH:MM:SS host kernel: " that file outputs carry.
fn strip_syslog(line: &str) -> &str {
    line.split_once(" kernel: ").map(|(_, r)| r).unwrap_or(line)
}

#[test]
fn every_packet_once_in_order_in_every_format_for_two_groups() {
    require_root!();
    let ns = NetNs::new("once");
    let tag = format!("O{}", std::process::id());
    ns.output_rules(&[
        format!("udp dport 9999 log prefix \"{tag}a \" group 5"),
        format!("udp dport 9999 log prefix \"{tag}a \""),
        format!("udp dport 9998 log prefix \"{tag}b \" group 6"),
        format!("udp dport 9998 log prefix \"{tag}b \""),
    ]);
    kmsg::enable_log_all_netns();
    let mut k = Kmsg::open_at_end();
    let dir = tempfile::tempdir().unwrap();
    let d = RunArgs::new(dir.path())
        .group(5)
        .group(6)
        .output(Some("kernel"), "k.log")
        .output(Some("json"), "j.log")
        .output(Some("fwlog"), "f.log")
        .start(&ns);
    for i in 0..100 {
        send_udp(&ns, 9999, i..i + 1);
        send_udp(&ns, 9998, i..i + 1);
    }
    wait_for("200 JSON lines", Duration::from_secs(20), || {
        lines(&dir.path().join("j.log")).len() >= 200
    });
    assert_eq!(d.stop(), 0);

    // Kernel format: per group, byte-equal to the kernel's own LOG lines, in order.
    let kernel = k.collect(&tag, 200, Duration::from_secs(10));
    assert_eq!(kernel.len(), 200, "kernel lines seen");
    let ours: Vec<String> = lines(&dir.path().join("k.log"))
        .iter()
        .map(|l| strip_syslog(l).to_string())
        .collect();
    assert_eq!(ours.len(), 200);
    for g in ["a", "b"] {
        let pre = format!("{tag}{g} ");
        let want: Vec<_> = kernel.iter().filter(|l| l.starts_with(&pre)).collect();
        let got: Vec<_> = ours.iter().filter(|l| l.starts_with(&pre)).collect();
        assert_eq!(got, want, "group {g}");
    }
    // Syslog framing on file outputs.
    let first = lines(&dir.path().join("k.log")).remove(0);
    assert!(first.contains(" kernel: ") && first.len() > 16, "{first}");

    // JSON: exactly once, per-group sequence numbers consecutive, nothing marked replayed.
    let js = json_lines(&dir.path().join("j.log"));
    let pk = packets(&js);
    assert_eq!(pk.len(), 200);
    for g in [5, 6] {
        let seqs: Vec<u64> = pk
            .iter()
            .filter(|o| o["group"] == g)
            .map(|o| o["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs.len(), 100, "group {g}");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "group {g}: {seqs:?}"
        );
    }
    let mut globals: Vec<u64> = pk
        .iter()
        .map(|o| o["seq_global"].as_u64().unwrap())
        .collect();
    globals.sort_unstable();
    globals.dedup();
    assert_eq!(globals.len(), 200, "seq_global unique");
    assert!(pk.iter().all(|o| o["replayed"] == false));

    // fwlog format: one block per packet.
    let f = std::fs::read_to_string(dir.path().join("f.log")).unwrap();
    assert_eq!(
        f.lines().filter(|l| l.starts_with("PKT")).count(),
        200,
        "{f}"
    );
}

#[test]
fn full_output_disk_acknowledges_nothing_and_catches_up_when_space_returns() {
    require_root!();
    let ns = NetNs::new("full");
    ns.output_rules(&["udp dport 9999 log prefix \"FULL \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let small = Tmpfs::mount(&dir.path().join("small"), "16k");
    let out = dir.path().join("small/out.json");
    let spool = dir.path().join("spool");
    let d = RunArgs::new(dir.path())
        .group(5)
        .output_to(format!("json={}", out.display()))
        .start(&ns);
    send_udp(&ns, 9999, 0..300);
    wait_for(
        "the write failure to be reported",
        Duration::from_secs(20),
        || d.stderr_text().contains("cannot write to"),
    );
    let partial = std::fs::read(&out).unwrap();
    assert!(partial.len() <= 16 * 1024);
    // Nothing beyond what was written is acknowledged: the spool still holds the rest.
    let ro = fwlog_spool::ReadOnlySpool::open(&spool).unwrap();
    let pending = ro
        .records()
        .filter(|r| r.as_ref().is_ok_and(|r| !r.acked))
        .count();
    assert!(pending > 0, "records are still pending in the spool");

    small.resize("4m");
    wait_for(
        "all 300 lines after space returned",
        Duration::from_secs(30),
        || lines(&out).len() >= 300,
    );
    assert_eq!(d.stop(), 0);
    let js = json_lines(&out);
    let pk = packets(&js);
    assert_eq!(pk.len(), 300, "every packet exactly once");
    let seqs: Vec<u64> = pk.iter().map(|o| o["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap, no double"
    );
}

#[test]
fn sighup_after_rename_loses_and_doubles_nothing() {
    require_root!();
    let ns = NetNs::new("hup");
    ns.output_rules(&["udp dport 9999 log prefix \"HUP \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let rotated = dir.path().join("out.json.1");
    let d = RunArgs::new(dir.path())
        .group(5)
        .output_to(format!("json={}", out.display()))
        .start(&ns);
    send_udp(&ns, 9999, 0..100);
    wait_for("100 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 100
    });
    std::fs::rename(&out, &rotated).unwrap();
    send_udp(&ns, 9999, 100..150); // between rename and SIGHUP: still the old file
    std::thread::sleep(Duration::from_millis(300));
    d.signal(libc::SIGHUP);
    wait_for("the new file", Duration::from_secs(10), || out.exists());
    send_udp(&ns, 9999, 150..200);
    wait_for("200 lines in all", Duration::from_secs(20), || {
        lines(&out).len() + lines(&rotated).len() >= 200
    });
    assert_eq!(d.stop(), 0);
    let mut all = json_lines(&rotated);
    let new = json_lines(&out);
    assert!(!new.is_empty(), "lines after SIGHUP go to the new file");
    all.extend(new);
    let seqs: Vec<u64> = packets(&all)
        .iter()
        .map(|o| o["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 200);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

#[test]
fn startup_errors_are_one_line_with_distinct_exit_statuses() {
    require_root!();
    let ns = NetNs::new("errs");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let sp = spool.to_str().unwrap();
    let out = dir.path().join("o.log");
    let o = out.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut d = Daemon::spawn(&ns, dir.path(), args);
        let code = d.wait(Duration::from_secs(20));
        let err = d.stderr_text();
        (code, err)
    };
    let one_line = |e: &str| {
        let l: Vec<_> = e.lines().collect();
        assert_eq!(l.len(), 1, "one line: {e:?}");
        assert!(
            l[0].starts_with("fwlog: ") || l[0].starts_with("error: "),
            "{e:?}"
        );
    };

    // Bad flags: usage error.
    let (code, err) = run(&["--spool", sp]);
    assert_eq!(code, 64, "{err}");
    let (code, err) = run(&["--group", "5", "--fsync", "sometimes", "--spool", sp]);
    assert_eq!(code, 64, "{err}");

    // Output that cannot be opened.
    let (code, err) = run(&[
        "--group",
        "5",
        "--no-dns",
        "--spool",
        sp,
        "--output",
        "/nonexistent/dir/x.log",
    ]);
    assert_eq!(code, 73, "{err}");
    one_line(&err);
    assert!(err.contains("/nonexistent/dir/x.log"), "{err}");

    // A running fwlog holds the spool and group 5.
    let first = Daemon::start(
        &ns,
        dir.path(),
        &["--group", "5", "--no-dns", "--spool", sp, "--output", o],
    );
    let (code, err) = run(&["--group", "5", "--no-dns", "--spool", sp, "--output", o]);
    assert_eq!(code, 75, "{err}");
    one_line(&err);
    assert!(err.contains("lock"), "{err}");
    let other = dir.path().join("spool2");
    let (code, err) = run(&[
        "--group",
        "5",
        "--no-dns",
        "--spool",
        other.to_str().unwrap(),
        "--output",
        o,
    ]);
    assert_eq!(code, 1, "{err}");
    one_line(&err);
    assert!(err.contains("group 5 is already bound"), "{err}");
    assert_eq!(first.stop(), 0);

    // No CAP_NET_ADMIN: run as nobody with no capabilities.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    Command::new("chmod")
        .arg("777")
        .arg(&open)
        .status()
        .unwrap();
    let err_path = dir.path().join("noperm.err");
    let st = ns
        .command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(support::fwlog_bin())
        .args(["run", "--group", "7", "--no-dns", "--spool"])
        .arg(open.join("spool"))
        .arg("--output")
        .arg(open.join("o.log"))
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(st.code(), Some(77), "{err}");
    one_line(&err);
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
}

#[test]
fn user_flag_drops_to_nobody_with_no_capabilities_and_keeps_logging() {
    require_root!();
    let ns = NetNs::new("user");
    ns.output_rules(&["udp dport 9999 log prefix \"USR \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    // nobody must be able to reach the spool and the output below the test directory.
    Command::new("chmod")
        .arg("755")
        .arg(dir.path())
        .status()
        .unwrap();
    let out = dir.path().join("out.json");
    let spool = dir.path().join("spool");
    let d = RunArgs::new(dir.path())
        .group(5)
        .with(&["--user", "nobody"])
        // Small segments: new segment files get created (and old ones deleted) as nobody.
        .with(&["--segment-size", "8KiB"])
        .output_to(format!("json={}", out.display()))
        .start(&ns);
    send_udp(&ns, 9999, 0..200);
    wait_for("200 lines", Duration::from_secs(20), || {
        lines(&out).len() >= 200
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k} in {status}"))[k.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), vec!["65534"; 4], "runs as nobody");
    for k in ["CapEff:", "CapPrm:", "CapAmb:"] {
        assert_eq!(field(k), vec!["0000000000000000"], "{k}");
    }
    assert_eq!(field("NoNewPrivs:"), vec!["1"]);
    // Files it creates are nobody's, and private.
    for e in std::fs::read_dir(&spool).unwrap().flatten() {
        use std::os::unix::fs::MetadataExt;
        let m = e.metadata().unwrap();
        if e.file_name().to_string_lossy().ends_with(".seg") {
            assert_eq!(m.uid(), 65534, "{:?}", e.path());
            assert_eq!(m.mode() & 0o077, 0, "segment {:?} is private", e.path());
        }
    }
    assert_eq!(d.stop(), 0);
    assert_eq!(packets(&json_lines(&out)).len(), 200);
}

/// SIGHUP and SIGUSR1 during start-up (logrotate or `systemctl reload` right after a start)
/// must not kill fwlog: their default action would, until its handlers are installed.
#[test]
fn sighup_and_sigusr1_during_start_up_are_harmless() {
    require_root!();
    let ns = NetNs::new("hupstart");
    ns.output_rules(&["udp dport 9999 log prefix \"HUPSTART \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let out = dir.path().join("out.log");
    let mut d = RunArgs::new(dir.path())
        .group(5)
        .output_to(out.to_str().unwrap())
        .spawn(&ns);
    // From the moment the spool is open (fwlog's own code is running) until it says it logs,
    // signal it as fast as possible.
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !spool.join("LOCK").exists() {
        assert!(std::time::Instant::now() < end, "no spool lock after 20 s");
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut sent = 0;
    while !d.stderr_text().contains("fwlog: logging NFLOG group") {
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "fwlog died after {sent} signals during start-up: {}",
            d.stderr_text()
        );
        d.signal(if sent % 2 == 0 {
            libc::SIGHUP
        } else {
            libc::SIGUSR1
        });
        sent += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    d.signal(libc::SIGHUP);
    send_udp(&ns, 9999, 0..3);
    wait_for("3 packets", Duration::from_secs(20), || {
        lines(&out)
            .iter()
            .filter(|l| l.contains("HUPSTART"))
            .count()
            >= 3
    });
    assert_eq!(d.stop(), 0);
    eprintln!("{sent} signals during start-up");
}

/// The nice value of each of `pid`'s threads named `comm`.
fn thread_nice(pid: u32, comm: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let Ok(name) = std::fs::read_to_string(t.join("comm")) else {
            continue;
        };
        if name.trim() != comm {
            continue;
        }
        let stat = std::fs::read_to_string(t.join("stat")).unwrap();
        // Fields after the command's closing parenthesis start at the state (field 3); the
        // nice value is field 19.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        out.push(rest[16].parse().unwrap());
    }
    out
}

#[test]
fn intake_runs_above_ordinary_processes_and_printing_below() {
    require_root!();
    let ns = NetNs::new("nices");
    ns.output_rules(&["udp dport 9999 log prefix \"NICES \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let d = RunArgs::new(dir.path())
        .group(5)
        .output_to(out.to_str().unwrap())
        .start(&ns);
    send_udp(&ns, 9999, 0..1);
    wait_for("a packet", Duration::from_secs(20), || {
        lines(&out).iter().any(|l| l.contains("NICES"))
    });
    let pid = d.child.id();
    // The committer thread is started by the first job sent to it: live, the span's sync, at
    // most 100 ms after the line was written (the line itself is written on the loop's thread).
    wait_for("the committer thread", Duration::from_secs(20), || {
        !thread_nice(pid, "fwlog-output").is_empty()
    });
    // fwlog inherits this process's nice value (`ip netns exec` changes nothing).
    // SAFETY: plain system call.
    let start = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // Root may raise intake by 10, to -10 at most (never lower it).
    let intake = if start > -10 {
        (start - 10).max(-10)
    } else {
        start
    };
    let printing = (start + 10).min(19);
    assert_eq!(thread_nice(pid, "fwlog-intake"), vec![intake]);
    assert_eq!(
        thread_nice(pid, "fwlog"),
        vec![printing],
        "the processing thread"
    );
    assert_eq!(
        thread_nice(pid, "fwlog-output"),
        vec![printing],
        "its committer"
    );
    assert_eq!(d.stop(), 0);
}
