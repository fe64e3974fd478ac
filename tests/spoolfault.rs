//! Spool faults seen from the daemon and from replay: damaged records are reported as losses
//! with their spool sequence range (and only a real torn tail is cut), memory stays bounded by
//! bytes with huge records, planted entries are reported with escaped names. Packets are logged
//! by nft in a network namespace; what was logged is the rule's counter.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::{lines, send_udp, wait_for, Daemon, RunArgs};
use support::netns::NetNs;
use support::tmpfs::Tmpfs;

const RULES: &[&str] = &["udp dport 9999 counter log prefix \"SF \" group 5"];

fn fwlog(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(support::fwlog_bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A spool holding `n` packets, none printed (the output fails), left by kill -9.
fn spool_with_pending(ns: &NetNs, dir: &Path, n: u32) -> PathBuf {
    let spool = dir.join("spool");
    let out = dir.join("full.log");
    std::os::unix::fs::symlink("/dev/full", &out).unwrap();
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--segment-size",
        "4KiB",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    let d = Daemon::start(ns, dir, &args);
    send_udp(ns, 9999, 0..n);
    wait_for("the output failure", Duration::from_secs(20), || {
        d.stderr_text().contains("cannot write to")
    });
    std::thread::sleep(Duration::from_millis(300));
    d.kill9();
    spool
}

/// Every record of every segment: (file, offset, length on disk, seq).
fn records(spool: &Path) -> Vec<(PathBuf, usize, usize, u64)> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let mut v = Vec::new();
    for s in segs {
        let b = std::fs::read(&s).unwrap();
        let mut off = 32;
        while off + 20 <= b.len() {
            let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
            let seq = u64::from_le_bytes(b[off + 8..off + 16].try_into().unwrap());
            v.push((s.clone(), off, 20 + len, seq));
            off += 20 + len;
        }
    }
    v
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// (packets, spool ranges of corrupt losses) in a JSON output.
fn tally(objs: &[serde_json::Value]) -> (usize, Vec<(u64, u64)>) {
    let packets = objs.iter().filter(|o| o["event"] == "packet").count();
    let lost = objs
        .iter()
        .filter(|o| o["event"] == "loss" && o["cause"] == "corrupt")
        .map(|o| {
            let r = &o["spool_seq"];
            let (a, b) = (r["first"].as_u64().unwrap(), r["last"].as_u64().unwrap());
            assert_eq!(o["count"].as_u64(), Some(b - a + 1), "{o}");
            (a, b)
        })
        .collect();
    (packets, lost)
}

#[test]
fn damaged_records_are_reported_with_their_range_in_replay_and_run() {
    require_root!();
    let ns = NetNs::new("spoolfault");
    ns.output_rules(RULES);
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_with_pending(&ns, dir.path(), 50);
    assert_eq!(ns.counter(), 50);
    let recs = records(&spool);
    assert_eq!(recs.len(), 50, "every packet spooled");
    let first_file = &recs[0].0;
    let last_file = &recs[49].0;
    assert_ne!(first_file, last_file, "4 KiB segments: several files");
    // A flipped payload byte in the oldest segment.
    let (f, off, len, old_seq) = recs[3].clone();
    let mut b = std::fs::read(&f).unwrap();
    b[off + len - 5] ^= 0x20;
    std::fs::write(&f, &b).unwrap();
    // In the last segment: a flipped byte in one record, another record duplicated after it.
    let in_last: Vec<_> = recs.iter().filter(|r| &r.0 == last_file).collect();
    assert!(in_last.len() >= 5, "{}", in_last.len());
    let (_, hit_off, hit_len, hit_seq) = in_last[1].clone();
    let (_, dup_off, dup_len, _) = in_last[2].clone();
    let mut b = std::fs::read(last_file).unwrap();
    b[hit_off + 30] ^= 0x01;
    let dup = b[dup_off..dup_off + dup_len].to_vec();
    b.splice(dup_off + dup_len..dup_off + dup_len, dup);
    std::fs::write(last_file, &b).unwrap();
    let _ = hit_len;

    let expect = vec![(old_seq, old_seq), (hit_seq, hit_seq)];
    let (code, out, err) = fwlog(&[
        "replay",
        "--spool",
        spool.to_str().unwrap(),
        "--no-dns",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let (packets, lost) = tally(&json_lines(&out));
    assert_eq!(
        (packets, lost.clone()),
        (48, expect.clone()),
        "replay: {err}"
    );

    // The daemon prints the same: 48 packets and two losses; nothing is cut as a torn tail.
    let out = dir.path().join("out.json");
    let json = format!("json={}", out.display());
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--segment-size",
        "4KiB",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        &json,
    ];
    let d = Daemon::start(&ns, dir.path(), &args);
    wait_for("the backlog", Duration::from_secs(20), || {
        lines(&out).len() >= 50
    });
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    let objs: Vec<serde_json::Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (packets, lost) = tally(&objs);
    assert_eq!((packets, lost), (48, expect), "run: {err}");
    assert!(!err.contains("torn"), "nothing cut: {err}");
    // Judged against the rule: every logged packet printed or reported lost.
    assert_eq!(packets as u64 + 2, ns.counter());
}

#[test]
fn planted_entries_are_reported_escaped_and_do_not_stop_start_up() {
    require_root!();
    let ns = NetNs::new("spoolplant");
    ns.output_rules(RULES);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let fifo = spool.join("00000000000000000007.seg");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/etc/shadow", spool.join("00000000000000000003.seg")).unwrap();
    std::fs::write(spool.join("junk\x1b[2J\nfwlog: all fine"), b"x").unwrap();
    let out = dir.path().join("out.log");
    let d = RunArgs::new(dir.path())
        .group(5)
        .with(&["--format", "kernel"])
        .output_to(out.to_str().unwrap())
        .start(&ns);
    send_udp(&ns, 9999, 0..5);
    wait_for("the packets", Duration::from_secs(20), || {
        lines(&out).len() >= 5
    });
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    let line = err
        .lines()
        .find(|l| l.contains("foreign entries left alone"))
        .unwrap_or_else(|| panic!("foreign entries reported: {err}"));
    assert!(line.contains("00000000000000000007.seg") && line.contains("00000000000000000003.seg"));
    assert!(line.contains("junk\\x1b[2J\\x0afwlog: all fine"), "{line}");
    assert!(!err.contains('\x1b'), "no control byte on stderr");
    assert!(
        !err.lines().any(|l| l == "fwlog: all fine"),
        "no forged line"
    );
    assert_eq!(lines(&out).len() as u64, ns.counter());
}

/// Peak memory of a process (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn huge_records_do_not_fill_memory_beyond_the_window_bytes() {
    require_root!();
    let ns = NetNs::new("spoolbig");
    ns.output_rules(RULES);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // 24 records of 16 MiB with valid CRCs (a crafted spool): 384 MiB of record data.
    {
        let opts = fwlog_spool::Options {
            max_record_len: fwlog_spool::MAX_PAYLOAD_LEN,
            segment_bytes: 64 << 20,
            ..fwlog_spool::Options::default()
        };
        let (mut w, _r, _) = fwlog_spool::Spool::open(&spool, opts).unwrap();
        let mut rec = vec![0u8; fwlog_spool::MAX_PAYLOAD_LEN];
        rec[0] = 2; // AF_INET, garbage after: printed as a marked partial record
        for _ in 0..24 {
            w.append(&rec).unwrap();
            w.commit().unwrap();
        }
        w.close().unwrap();
    }
    let out = dir.path().join("out.log");
    let d = RunArgs::new(dir.path())
        .group(5)
        .with(&["--format", "kernel"])
        .output_to(out.to_str().unwrap())
        .start(&ns);
    let pid = d.child.id();
    let mut peak = 0;
    wait_for("the 24 records", Duration::from_secs(120), || {
        peak = peak.max(peak_kib(pid));
        lines(&out).len() >= 24
    });
    peak = peak.max(peak_kib(pid));
    assert_eq!(d.stop(), 0);
    eprintln!(
        "fwlog run peak RSS with 24 x 16 MiB records: {} MiB",
        peak / 1024
    );
    // The window holds at most 64 MiB of records plus the one that crossed the limit; all 24
    // at once would be 384 MiB.
    assert!(peak < 250 * 1024, "peak {} MiB", peak / 1024);
}

/// Fills the filesystem of `path` with one file until it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xAAu8; 4096];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..1]).is_ok() {}
}

/// `name=N` from the exit counters line.
fn counter(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(" spooled="))
        .unwrap_or_else(|| panic!("counters line in {stderr}"));
    let at = line.find(&format!(" {name}=")).expect(name) + name.len() + 2;
    line[at..]
        .split([' ', ';'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_full_spool_filesystem_counts_packets_as_lost_and_recovers() {
    require_root!();
    support::require_tool("mount");
    let ns = NetNs::new("spoolfull");
    ns.output_rules(RULES);
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(&dir.path().join("fs"), "1m");
    let spool = dir.path().join("fs/spool");
    let out = dir.path().join("out.json");
    let json = format!("json={}", out.display());
    let d = RunArgs::new(dir.path())
        .spool_at(&spool)
        .group(5)
        .with(&["--segment-size", "64KiB"])
        .output_to(&json)
        .start(&ns);
    send_udp(&ns, 9999, 0..100);
    wait_for("the first packets", Duration::from_secs(20), || {
        lines(&out).len() >= 100
    });
    let filler = dir.path().join("fs/filler");
    fill(&filler);
    send_udp(&ns, 9999, 100..400);
    wait_for("the refusals", Duration::from_secs(20), || {
        d.stderr_text().contains("full")
    });
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(&filler).unwrap();
    send_udp(&ns, 9999, 400..600);
    let mut printed = 0;
    let mut lost = 0;
    wait_for(
        "every packet printed or reported",
        Duration::from_secs(30),
        || {
            // A line being written may be read half: count whole ones.
            let objs: Vec<serde_json::Value> = lines(&out)
                .iter()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            printed = objs.iter().filter(|o| o["event"] == "packet").count() as u64;
            lost = objs
                .iter()
                .filter(|o| o["event"] == "loss" && o["cause"] == "spool-full")
                .map(|o| o["count"].as_u64().unwrap())
                .sum();
            printed + lost >= 600
        },
    );
    let err = d.stderr_text();
    let mut d = d;
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(20)), 0, "{err}");
    let err = d.stderr_text();
    assert_eq!(ns.counter(), 600);
    assert_eq!(printed + lost, 600, "{err}");
    assert!(lost > 0 && printed >= 300, "printed {printed} lost {lost}");
    assert_eq!(
        counter(&err, "spooled"),
        printed,
        "spooled = what reached the disk: {err}"
    );
    assert_eq!(counter(&err, "lost-spool-full"), lost, "{err}");
    assert!(err.contains("room again"), "{err}");
    // The next start reports nothing: every packet was accounted for.
    let d = RunArgs::new(dir.path())
        .spool_at(&spool)
        .group(5)
        .output_to(json)
        .start(&ns);
    send_udp(&ns, 9999, 600..610);
    wait_for("the new packets", Duration::from_secs(20), || {
        lines(&out).len() as u64 >= printed + 10
    });
    let err2 = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert!(!err2.contains("restart"), "no restart loss: {err2}");
}

/// CRC32C (Castagnoli), bitwise: the test writes a ledger by hand.
fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A ledger slot (magic, version, generation, acknowledged position, CRC32C).
fn ledger_slot(generation: u64, acked: u64) -> [u8; 32] {
    let mut slot = [0u8; 32];
    slot[0..4].copy_from_slice(b"FWLA");
    slot[4] = 1;
    slot[8..16].copy_from_slice(&generation.to_le_bytes());
    slot[16..24].copy_from_slice(&acked.to_le_bytes());
    let c = crc32c(&slot[0..24]);
    slot[24..28].copy_from_slice(&c.to_le_bytes());
    slot
}

#[test]
fn an_impossible_ledger_position_does_not_swallow_new_packets() {
    require_root!();
    let ns = NetNs::new("spoolledger");
    ns.output_rules(RULES);
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let out = dir.path().join("out.log");
    let args = [
        "--group",
        "5",
        "--no-dns",
        "--format",
        "kernel",
        "--spool",
        spool.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 0..5);
    wait_for("the first packets", Duration::from_secs(20), || {
        lines(&out).len() >= 5
    });
    assert_eq!(d.stop(), 0);
    let mut ledger = vec![0u8; 1024];
    ledger[0..32].copy_from_slice(&ledger_slot(1000, u64::MAX));
    ledger[512..544].copy_from_slice(&ledger_slot(1001, u64::MAX));
    std::fs::write(spool.join("ledger"), &ledger).unwrap();
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 5..10);
    wait_for("the new packets", Duration::from_secs(20), || {
        lines(&out).len() >= 10
    });
    let err = d.stderr_text();
    assert_eq!(d.stop(), 0);
    assert!(err.contains("impossible"), "{err}");
    assert_eq!(lines(&out).len() as u64, ns.counter());
    // And the next start finds a sane ledger: nothing printed twice.
    let d = Daemon::start(&ns, dir.path(), &args);
    send_udp(&ns, 9999, 10..11);
    wait_for("one more", Duration::from_secs(20), || {
        lines(&out).len() >= 11
    });
    assert_eq!(d.stop(), 0);
    assert_eq!(lines(&out).len(), 11);
}
