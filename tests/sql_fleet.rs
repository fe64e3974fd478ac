//! Central collection: three hosts (network namespaces, each with its own nft rule, `fwlog
//! run`, spool and `--host-name`) write to one PostgreSQL server in a fourth namespace,
//! joined to each by a veth pair. During a flood the server is cut off from one host for 20 s
//! (an nft drop in that host's namespace) and later crashes and restarts. Afterwards, per
//! host: rows + counted losses = the host's nft rule counter, no (host, stream, seq) twice,
//! every seq_global the host's kernel handed out is one row or inside a loss's range, and the
//! spool holds nothing unacknowledged.
//!
//! The second test runs the same fleet over TLS (`sslmode=verify-full` against a CA the test
//! makes; the server takes TLS connections only) as a role that may only INSERT and SELECT,
//! on a schema its owner made first, granted with the SQL fwlog-sql(5) shows.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::netns::NetNs;
use support::pg_fleet::{PgServer, PASSWORD};

const HOSTS: u8 = 3;
/// Packets per host per 10 ms tick of the flood (about 1000 packets/s per host).
const PER_TICK: u32 = 10;
const FLOOD: Duration = Duration::from_secs(40);
/// When, from the flood's start, host 1 is cut off, for how long, and when the server crashes.
const CUT_AT: Duration = Duration::from_secs(4);
const CUT_FOR: Duration = Duration::from_secs(20);
const RESTART_AT: Duration = Duration::from_secs(30);

struct Host {
    ns: NetNs,
    name: String,
    /// The server's address as this host sees it.
    server: String,
    dir: tempfile::TempDir,
}

/// The database namespace with the server, and three hosts joined to it.
fn fleet(tag: &str, port: u16) -> (NetNs, PgServer, Vec<Host>) {
    let db = NetNs::new(tag);
    let pg = PgServer::init(&db, port);
    let hosts = (1..=HOSTS)
        .map(|n| {
            let (ns, _) = db.veth(n);
            ns.nft(
                "table inet t {\n chain o {\n  type filter hook output priority 0;\n  \
                 udp dport 9999 counter log prefix \"FLEET \" group 5\n }\n}\n",
            );
            Host {
                ns,
                name: format!("h{n}"),
                server: format!("10.200.{n}.1"),
                dir: tempfile::tempdir().expect("tempdir"),
            }
        })
        .collect();
    (db, pg, hosts)
}

fn nft_counter(ns: &NetNs) -> u64 {
    let o = ns
        .command("nft")
        .args(["list", "table", "inet", "t"])
        .output()
        .expect("nft");
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.split("counter packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {s}"))
}

/// Rows plus counted losses stored for `host`.
fn stored(pg: &PgServer, host: &str) -> u64 {
    pg.count(&format!(
        "SELECT (SELECT count(*) FROM packets WHERE host = '{host}') + \
         (SELECT coalesce(sum(count), 0) FROM losses WHERE host = '{host}')"
    ))
}

/// Drop everything between host `h` and the server, both ways, or let it through again.
fn cut(h: &Host, on: bool) {
    if on {
        h.ns.nft(&format!(
            "table inet cut {{\n chain o {{\n  type filter hook output priority 0;\n  \
             ip daddr {0} drop\n }}\n chain i {{\n  type filter hook input priority 0;\n  \
             ip saddr {0} drop\n }}\n}}\n",
            h.server
        ));
    } else {
        h.ns.nft("delete table inet cut\n");
    }
}

/// The flood and the faults; returns host 1's stored count when its cut began (after the
/// batch in flight settled) and when it was about to end, and the others' progress then.
fn flood_with_faults(pg: &PgServer, hosts: &[Host]) -> (u64, u64, u64) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for h in hosts {
            let stop = &stop;
            s.spawn(move || {
                h.ns.enter(|| {
                    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..PER_TICK {
                            let _ = sock.send_to(format!("pkt-{n}").as_bytes(), "127.0.0.1:9999");
                            n += 1;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            });
        }
        let t0 = Instant::now();
        let at = |d: Duration| std::thread::sleep(d.saturating_sub(t0.elapsed()));
        at(CUT_AT);
        cut(&hosts[0], true);
        // A batch already sent may still be answered for a moment; none after that.
        at(CUT_AT + Duration::from_secs(6));
        let h1_before = stored(pg, &hosts[0].name);
        let others_before = stored(pg, &hosts[1].name);
        at(CUT_AT + CUT_FOR - Duration::from_secs(1));
        let h1_after = stored(pg, &hosts[0].name);
        let others_progress = stored(pg, &hosts[1].name) - others_before;
        at(CUT_AT + CUT_FOR);
        cut(&hosts[0], false);
        assert_eq!(
            h1_before, h1_after,
            "host 1 stored nothing while it was cut off"
        );
        at(RESTART_AT);
        pg.stop_immediate();
        std::thread::sleep(Duration::from_secs(1));
        pg.start();
        at(FLOOD);
        stop.store(true, Ordering::Relaxed);
        (h1_before, h1_after, others_progress)
    })
}

/// Run the fleet: every host's `fwlog run` writes to `url(host)`; then check every host.
fn run_fleet(pg: &PgServer, hosts: &[Host], url: impl Fn(&Host) -> String) {
    let started = Instant::now();
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|h| {
            let spool = h.dir.path().join("spool");
            let url = url(h);
            let args = [
                "--group",
                "5",
                "--no-dns",
                "--spool",
                spool.to_str().expect("utf-8 path"),
                "--host-name",
                &h.name,
                "--output",
                &url,
            ];
            Daemon::start(&h.ns, h.dir.path(), &args)
        })
        .collect();
    let (h1_cut, _, others_progress) = flood_with_faults(pg, hosts);
    assert!(
        others_progress > 0,
        "the other hosts kept storing while host 1 was cut off"
    );
    let counters: Vec<u64> = hosts.iter().map(|h| nft_counter(&h.ns)).collect();
    let end = Instant::now() + Duration::from_secs(150);
    loop {
        let now: Vec<u64> = hosts.iter().map(|h| stored(pg, &h.name)).collect();
        if now.iter().zip(&counters).all(|(s, c)| s >= c) {
            break;
        }
        if Instant::now() > end {
            let errs: Vec<String> = daemons.iter().map(Daemon::stderr_text).collect();
            panic!(
                "not every host's packets stored: stored {now:?}, nft counters {counters:?}\n\
                 {errs:#?}\nserver log:\n{}",
                std::fs::read_to_string(pg.data.join("log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let settled = started.elapsed();
    for (h, d) in hosts.iter().zip(daemons) {
        let err = d.stderr_text();
        assert_eq!(d.stop(), 0, "{}: {err}", h.name);
        assert!(
            err.contains("works again"),
            "{}: a failed write is followed by a recovery: {err}",
            h.name
        );
        assert!(
            !err.contains(PASSWORD),
            "the password is never shown: {err}"
        );
    }
    for (h, &counter) in hosts.iter().zip(&counters) {
        check_host(pg, h, counter);
    }
    eprintln!(
        "fleet: {} hosts, nft counters {counters:?}, all stored {:.1} s after start; host 1 had \
         {h1_cut} rows when cut off",
        hosts.len(),
        settled.as_secs_f64()
    );
}

/// Per host: rows + lost = the nft counter, no key twice, seq_global covered, spool empty.
fn check_host(pg: &PgServer, h: &Host, counter: u64) {
    let name = &h.name;
    let rows = pg.count(&format!(
        "SELECT count(*) FROM packets WHERE host = '{name}'"
    ));
    let lost = pg.count(&format!(
        "SELECT coalesce(sum(count), 0) FROM losses WHERE host = '{name}'"
    ));
    eprintln!("fleet: {name}: nft counted {counter}, {rows} rows, {lost} lost");
    assert_eq!(
        rows + lost,
        counter,
        "{name}: rows + lost = the nft counter"
    );
    assert_eq!(
        pg.count(&format!(
            "SELECT count(DISTINCT stream) FROM packets WHERE host = '{name}'"
        )),
        1,
        "{name}: one spool, one stream"
    );
    assert_eq!(
        pg.count(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM packets WHERE host = '{name}' \
             GROUP BY stream, seq HAVING count(*) > 1) d"
        )),
        0,
        "{name}: a (host, stream, seq) twice"
    );
    assert_eq!(
        pg.count(&format!(
            "SELECT count(DISTINCT seq_global) FROM packets WHERE host = '{name}'"
        )),
        rows,
        "{name}: a packet stored twice"
    );
    let missing = pg.count(&format!(
        "SELECT count(*) FROM generate_series( \
           (SELECT min(seq_global) FROM packets WHERE host = '{name}'), \
           (SELECT max(seq_global) FROM packets WHERE host = '{name}')) g \
         WHERE NOT EXISTS (SELECT 1 FROM packets WHERE host = '{name}' AND seq_global = g) \
         AND NOT EXISTS (SELECT 1 FROM losses WHERE host = '{name}' \
           AND g BETWEEN seq_global_first AND seq_global_last)"
    ));
    assert_eq!(
        missing, 0,
        "{name}: seq_global values neither a row nor a loss"
    );
    let left = fwlog_spool::ReadOnlySpool::open(h.dir.path().join("spool"))
        .expect("spool")
        .records()
        .filter(|r| r.as_ref().is_ok_and(|r| !r.acked))
        .count();
    assert_eq!(left, 0, "{name}: unacknowledged records left in the spool");
}

#[test]
fn three_hosts_one_server_a_cut_and_a_restart_every_packet_once_per_host() {
    require_root!();
    let (_db, pg, hosts) = fleet("fleet", 55450);
    pg.start();
    run_fleet(&pg, &hosts, |h| pg.url("fwtest", PASSWORD, &h.server, ""));
    assert_eq!(
        pg.count("SELECT count(DISTINCT host) FROM packets"),
        u64::from(HOSTS)
    );
}

/// The grants fwlog-sql(5) shows for a role that may only INSERT and SELECT (troff's `\-`
/// undone).
fn documented_grants() -> String {
    let man = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/fwlog-sql.5"))
        .expect("man/fwlog-sql.5");
    let from = man
        .find("GRANT SELECT ON schema_version TO fwlog_writer;")
        .expect("the grants in fwlog-sql(5)");
    let sql = &man[from..];
    sql[..sql.find(".EE").expect("end of the example")].replace("\\-", "-")
}

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample.pcap");

/// `fwlog read SAMPLE -o URL` on host `h`: exit code and stderr.
fn read_into(h: &Host, url: &str) -> (i32, String) {
    let o =
        h.ns.command(support::fwlog_bin())
            .args([
                "read",
                "--no-dns",
                "--host-name",
                "owner",
                "-o",
                url,
                SAMPLE,
            ])
            .output()
            .expect("fwlog read");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_fleet_over_tls_verify_full_as_an_insert_and_select_only_role() {
    require_root!();
    let (_db, mut pg, hosts) = fleet("fleettls", 55451);
    let san = (1..=HOSTS)
        .map(|n| format!("IP:10.200.{n}.1"))
        .collect::<Vec<_>>()
        .join(",");
    let certs = pg.enable_tls(&san);
    pg.start();
    let tls = |ca: &str| {
        format!(
            "?sslmode=verify-full&sslrootcert={}",
            certs.join(ca).display()
        )
    };
    // The owner makes the schema (its first batch creates it) and grants what fwlog-sql(5)
    // says a writer needs.
    let owner = pg.url("fwtest", PASSWORD, &hosts[0].server, &tls("ca.pem"));
    let (code, err) = read_into(&hosts[0], &owner);
    assert_eq!(code, 0, "{err}");
    let sample_rows = pg.count("SELECT count(*) FROM packets");
    assert!(sample_rows > 0);
    pg.query("CREATE ROLE fwlog_writer LOGIN PASSWORD 'w-pass'");
    pg.query(&documented_grants());
    assert_eq!(
        pg.query(
            "SELECT has_table_privilege('fwlog_writer', 'packets', 'DELETE') OR \
             has_table_privilege('fwlog_writer', 'packets', 'UPDATE') OR \
             has_database_privilege('fwlog_writer', 'postgres', 'CREATE')"
        ),
        "f",
        "the writer may only insert and select"
    );
    // A CA that did not sign the server's certificate: one clear line, nothing written.
    let wrong = pg.url(
        "fwlog_writer",
        "w-pass",
        &hosts[1].server,
        &tls("other-ca.pem"),
    );
    let (code, err) = read_into(&hosts[1], &wrong);
    assert_eq!(code, 73, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("certificate") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(
        !err.contains("w-pass"),
        "the password is never shown: {err}"
    );
    // Plain TCP is refused by the server, so every row below came over TLS.
    let plain = pg.url("fwlog_writer", "w-pass", &hosts[1].server, "");
    let (code, err) = read_into(&hosts[1], &plain);
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("no encryption"), "{err}");
    assert_eq!(pg.count("SELECT count(*) FROM packets"), sample_rows);
    run_fleet(&pg, &hosts, |h| {
        pg.url("fwlog_writer", "w-pass", &h.server, &tls("ca.pem"))
    });
    assert_eq!(
        pg.count("SELECT count(DISTINCT host) FROM packets WHERE host <> 'owner'"),
        u64::from(HOSTS)
    );
}
