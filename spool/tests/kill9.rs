//! kill -9 test on the real filesystem (harness = false: this binary is both parent and child).
//!
//! The child opens the spool (tiny segments, so rollovers are constant), appends batches of
//! deterministic payloads, commits, and prints `D <seq>` once `Commit::durable` covers `seq` (in
//! the rounds run with `FsyncPolicy::Never`: once `Commit::written` does, which is what that
//! policy promises to survive kill -9; in the rounds whose child syncs on the spool's own thread,
//! `Commit::durable` is what that thread had synced when the commit returned); a
//! reader thread checks every record and acknowledges as it goes, printing `A <seq>` once an ack
//! returned. The parent kills the child with SIGKILL at random moments (some within the first few
//! milliseconds, i.e. during open and recovery), then checks, first read-only and then with a
//! writable open (which recovers), that every record reported durable and not acknowledged is
//! there with the right payload, in order, and that nothing acknowledged comes back. While a child
//! holds the spool, the parent's own open attempt must fail with `Error::Locked`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fwlog_spool::{FsyncPolicy, Options, ReadOnlySpool, Spool};

const CHILD_ENV: &str = "FWLOG_SPOOL_KILL9_CHILD";
/// Set (to anything) to make the child use `FsyncPolicy::Never`.
const NOSYNC_ENV: &str = "FWLOG_SPOOL_KILL9_NOSYNC";
/// Set to make the child sync on the spool's own thread (`Options::background_sync`), as
/// `fwlog run` does: commits return before their sync, so `D` lags behind the appends.
const BGSYNC_ENV: &str = "FWLOG_SPOOL_KILL9_BGSYNC";
/// Set to make the child's reader lag, so a backlog of many segments builds up.
const SLOW_ENV: &str = "FWLOG_SPOOL_KILL9_SLOW_READER";
const ROUNDS: usize = 200;
/// At least this many rounds always run; beyond it, stop once the time budget is spent (slow
/// disks: every round costs several fsyncs).
const MIN_ROUNDS: usize = 100;
const BUDGET: Duration = Duration::from_secs(50);

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The payload of sequence number `seq` (the same in every run, so reused numbers still match).
fn payload(seq: u64) -> Vec<u8> {
    let len = 60 + (mix(seq) % 1900) as usize;
    let mut v = Vec::with_capacity(len);
    let mut s = mix(seq ^ 0xabcdef);
    while v.len() < len {
        s = mix(s);
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v
}

fn options() -> Options {
    Options {
        segment_bytes: 8192,
        ..Options::default()
    }
}

fn say(line: String) {
    let out = std::io::stdout();
    let mut l = out.lock();
    // Whole lines only; the parent ignores a final line without a newline.
    let _ = l.write_all(format!("{line}\n").as_bytes());
    let _ = l.flush();
}

fn child(dir: &Path) {
    let nosync = std::env::var_os(NOSYNC_ENV).is_some();
    let slow = std::env::var_os(SLOW_ENV).is_some();
    let opts = Options {
        fsync: if nosync {
            FsyncPolicy::Never
        } else {
            FsyncPolicy::EveryCommit
        },
        background_sync: std::env::var_os(BGSYNC_ENV).is_some(),
        ..options()
    };
    let (mut w, mut r, rep) = match Spool::open(dir, opts) {
        Ok(x) => x,
        Err(e) => {
            say(format!("ERR open: {e}"));
            std::process::exit(2);
        }
    };
    say(format!("OPEN {}", rep.next_seq));
    std::thread::spawn(move || loop {
        let mut last = 0;
        loop {
            match r.next() {
                Ok(Some(rec)) => {
                    if rec.data != payload(rec.seq) {
                        say(format!("ERR payload {}", rec.seq));
                        std::process::exit(3);
                    }
                    last = rec.seq;
                    if rec.seq % 7 == 0 {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    say(format!("ERR read: {e}"));
                    std::process::exit(3);
                }
            }
        }
        if last > 0 {
            match r.ack(last) {
                Ok(()) => say(format!("A {last}")),
                Err(e) => {
                    say(format!("ERR ack: {e}"));
                    std::process::exit(3);
                }
            }
        }
        if slow {
            std::thread::sleep(Duration::from_millis(30));
        }
        r.wait(Duration::from_millis(50));
    });
    let mut n = w.next_seq();
    loop {
        let batch = 1 + mix(n) % 48;
        for _ in 0..batch {
            let seq = w.append(&payload(n)).unwrap_or_else(|e| {
                say(format!("ERR append: {e}"));
                std::process::exit(2)
            });
            assert_eq!(seq, n);
            n += 1;
        }
        match w.commit() {
            // Under `Never`, the documented promise for kill -9 is `written`; check exactly that.
            Ok(c) => say(format!("D {}", if nosync { c.written } else { c.durable })),
            Err(e) => {
                say(format!("ERR commit: {e}"));
                std::process::exit(2);
            }
        }
        if w.stats().pending_records > 3000 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

struct Seen {
    durable: u64,
    acked: u64,
    opened: bool,
}

/// When to kill: `delay` after spawning, or `delay` after the child reported a completed open.
#[derive(Clone, Copy)]
enum When {
    AfterSpawn(Duration),
    AfterOpen(Duration),
}

/// How a child runs: its fsync policy, where it syncs, and whether its reader lags.
#[derive(Clone, Copy)]
struct Mode {
    nosync: bool,
    bgsync: bool,
    slow: bool,
}

fn run_child(dir: &Path, when: When, mode: Mode) -> Seen {
    let Mode {
        nosync,
        bgsync,
        slow,
    } = mode;
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    if nosync {
        cmd.env(NOSYNC_ENV, "1");
    }
    if bgsync {
        cmd.env(BGSYNC_ENV, "1");
    }
    if slow {
        cmd.env(SLOW_ENV, "1");
    }
    let mut c = cmd
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let out = c.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut r = BufReader::new(out);
        let mut buf = String::new();
        while r.read_line(&mut buf).unwrap_or(0) > 0 {
            if buf.ends_with('\n') {
                if buf.starts_with("OPEN ") {
                    let _ = tx.send(());
                }
                lines.push(buf.trim_end().to_string());
            }
            buf.clear();
        }
        lines
    });
    match when {
        When::AfterSpawn(d) => std::thread::sleep(d),
        When::AfterOpen(d) => {
            // If the child dies before opening, the channel closes and we go on to check.
            if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
                // A second process must be refused while the child holds the spool.
                match Spool::open(dir, options()) {
                    Err(fwlog_spool::Error::Locked { .. }) => {}
                    Err(e) => panic!("second opener got {e} instead of Locked"),
                    Ok(_) => panic!("second process opened a spool that is in use"),
                }
            }
            std::thread::sleep(d);
        }
    }
    let _ = c.kill(); // SIGKILL
    let status = c.wait().expect("wait");
    let lines = reader.join().expect("reader thread");
    let mut s = Seen {
        durable: 0,
        acked: 0,
        opened: false,
    };
    for l in &lines {
        if let Some(e) = l.strip_prefix("ERR") {
            panic!("child failed:{e}");
        } else if let Some(v) = l.strip_prefix("D ") {
            s.durable = s.durable.max(v.parse().expect("D line"));
        } else if let Some(v) = l.strip_prefix("A ") {
            s.acked = s.acked.max(v.parse().expect("A line"));
        } else if l.starts_with("OPEN ") {
            s.opened = true;
        }
    }
    assert!(
        status.code().is_none(),
        "child exited by itself ({status}) instead of being killed"
    );
    s
}

fn verify(dir: &Path, durable: u64, acked: u64, writable: bool) -> (u64, u64) {
    // A child killed before it created the directory (the first round, on a loaded machine)
    // made nothing durable; there is nothing to read.
    if !dir.exists() {
        assert_eq!(
            (durable, acked),
            (0, 0),
            "records reported but no spool directory"
        );
        return (0, 0);
    }
    // Read-only first: the torn tail, if any, is still there.
    let ro = ReadOnlySpool::open(dir).expect("read-only open");
    let ledger = ro.acked();
    assert!(ledger >= acked, "ledger {ledger} < reported ack {acked}");
    let mut prev = 0;
    let mut count = 0;
    let must_from = ledger.max(acked) + 1;
    let mut next_required = must_from;
    for r in ro.records() {
        let r = r.expect("replay");
        assert!(r.seq > prev, "order {} after {prev}", r.seq);
        assert_eq!(r.data, payload(r.seq), "payload of {}", r.seq);
        assert_eq!(r.acked, r.seq <= ledger);
        if r.seq >= must_from && next_required <= durable {
            assert_eq!(
                r.seq, next_required,
                "durable record {next_required} missing"
            );
            next_required += 1;
        }
        prev = r.seq;
        count += 1;
    }
    assert!(
        next_required > durable,
        "durable record {next_required} missing (durable up to {durable}, last on disk {prev})"
    );
    if writable {
        let (w, mut r, rep) = Spool::open(dir, options()).expect("writable open");
        assert_eq!(rep.acked_seq, ledger);
        assert!(rep.quarantined.is_empty(), "{:?}", rep.quarantined);
        let mut expect = must_from;
        while let Some(rec) = r.next().expect("next") {
            assert!(rec.seq > ledger);
            assert_eq!(rec.data, payload(rec.seq));
            if expect <= durable {
                assert_eq!(rec.seq, expect, "durable record {expect} not delivered");
                expect += 1;
            }
        }
        assert!(expect > durable, "durable record {expect} not delivered");
        drop((w, r));
    }
    (count, ledger)
}

fn parent() {
    let base = std::env::temp_dir().join(format!("fwlog-spool-kill9-{}", std::process::id()));
    let dir: PathBuf = base.join("spool");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("create test dir");
    let t0 = Instant::now();
    let mut rng = mix(std::process::id() as u64 ^ t0.elapsed().as_nanos() as u64) | 1;
    let (mut durable, mut acked) = (0u64, 0u64);
    let mut early_kills = 0;
    let mut max_records = 0;
    let mut rounds = 0;
    let mut nosync_rounds = 0;
    let mut bgsync_rounds = 0;
    for round in 0..ROUNDS {
        if round >= MIN_ROUNDS && t0.elapsed() > BUDGET {
            break;
        }
        rounds += 1;
        rng = mix(rng);
        let t = Instant::now();
        // A quarter of the kills land in the first few ms after spawning (start-up, open,
        // recovery), a quarter anywhere in the first 150 ms, half while appending after open.
        let when = match rng % 4 {
            0 => When::AfterSpawn(Duration::from_micros((rng >> 8) % 3000)),
            1 => When::AfterSpawn(Duration::from_millis((rng >> 8) % 150)),
            _ => When::AfterOpen(Duration::from_millis((rng >> 8) % 80)),
        };
        // A third of the rounds run the child without fdatasync: kill -9 must still lose nothing
        // it reported as written.
        let nosync = (rng >> 20).is_multiple_of(3);
        nosync_rounds += usize::from(nosync);
        // Half of the others sync on the spool's own thread, as the daemon does.
        let bgsync = !nosync && (rng >> 40).is_multiple_of(2);
        bgsync_rounds += usize::from(bgsync);
        // A third of the rounds let the backlog grow (many segments to recover and read).
        let slow = (rng >> 30).is_multiple_of(3);
        let mode = Mode {
            nosync,
            bgsync,
            slow,
        };
        let s = run_child(&dir, when, mode);
        if !s.opened {
            early_kills += 1;
        }
        durable = durable.max(s.durable);
        acked = acked.max(s.acked);
        let t_child = t.elapsed();
        let (n, ledger) = verify(&dir, durable, acked, round % 2 == 1);
        if std::env::var_os("FWLOG_SPOOL_KILL9_VERBOSE").is_some() {
            eprintln!(
                "round {round}: child {t_child:?}, verify {:?}",
                t.elapsed() - t_child
            );
        }
        acked = acked.max(ledger);
        max_records = max_records.max(n);
    }
    let _ = std::fs::remove_dir_all(&base);
    println!(
        "kill9: {rounds} kills ({early_kills} before open completed, {nosync_rounds} with \
         FsyncPolicy::Never, {bgsync_rounds} syncing on the spool's thread), durable up to {durable}, \
         acked up to {acked}, max backlog {max_records} records, {:.1} s: ok",
        t0.elapsed().as_secs_f64()
    );
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    // Behave like a libtest binary towards `cargo test` arguments: run unless a filter or a
    // `--skip` excludes "kill9"; `--list` lists it.
    let mut filters = Vec::new();
    let mut skip = false;
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => list = true,
            "--skip" => skip |= args.next().is_some_and(|v| "kill9".contains(v.as_str())),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" | "--shuffle-seed" => {
                args.next();
            }
            _ if a.starts_with('-') => {}
            _ => filters.push(a),
        }
    }
    if list {
        println!("kill9: test");
        return;
    }
    if skip || (!filters.is_empty() && !filters.iter().any(|f| "kill9".contains(f.as_str()))) {
        return;
    }
    parent();
}
