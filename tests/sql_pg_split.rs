//! A large batch into PostgreSQL goes in as two halves at once, each through a connection of
//! its own, and is acknowledged only after both committed. A batch of which part is already
//! stored (one half's transaction committed and the other's did not, or fwlog died between the
//! two commits) goes in again with every row once; a row the server refuses in either half
//! becomes a loss and the rest is stored. Against a real server the test starts.

mod support;

use std::path::Path;

use fwlog::nflog::attr::{encode_packet, LossRecord};
use fwlog::packet::{family, Packet, TimeSource, Timestamp};
use support::netns::NetNs;
use support::pg::{self, Pg};

const PACKETS: u64 = 5000;
/// The loss event comes after this many packets.
const LOSS_AT: u64 = 1500;
const DROPPED: u64 = 3;

/// A spool of [`PACKETS`] packets (spool records 0.., one loss event among them).
fn spool(path: &Path) {
    let base = 1_700_000_000;
    let (mut w, _r, _) = fwlog_spool::Spool::open(path, fwlog_spool::Options::default()).unwrap();
    for i in 0..PACKETS {
        if i == LOSS_AT {
            let mut rec = Vec::new();
            LossRecord {
                group: Some(5),
                cause: 0,
                count: Some(DROPPED),
                seq_global: Some((9000, 9002)),
                spool_seq: None,
            }
            .encode(base + i as i64 / 100, 0, &mut rec);
            w.append(&rec).unwrap();
        }
        let s = (i as u32).to_be_bytes();
        let mut payload = vec![0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0];
        payload.extend_from_slice(&[10, s[1], s[2], s[3], 192, 0, 2, 250]);
        payload.extend_from_slice(&[0x04, 0xd2, 0, 53, 0, 12, 0, 0]);
        payload.extend_from_slice(b"test");
        let mut p = Packet::new(
            &payload,
            Timestamp {
                sec: base + i as i64 / 100,
                nsec: 0,
                source: TimeSource::Kernel,
            },
        );
        p.family = family::INET;
        p.group = 5;
        p.seq_global = Some(i as u32);
        p.prefix = Some(b"SPLIT ");
        let mut rec = Vec::new();
        encode_packet(&p, &mut rec);
        w.append(&rec).unwrap();
    }
    w.commit().unwrap();
    w.close().unwrap();
    fwlog::sink::sql::stream::open_or_create(path).unwrap();
}

fn replay(ns: &NetNs, url: &str, spool: &Path, host: &str) -> String {
    let o = ns
        .command(support::fwlog_bin())
        .args([
            "replay",
            "--no-dns",
            "--host-name",
            host,
            "-o",
            url,
            "--spool",
        ])
        .arg(spool)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

/// Every packet of `host` exactly once, and the loss event's row.
fn complete(pg: &Pg, host: &str, refused: u64) {
    let w = format!("FROM packets WHERE host = '{host}'");
    assert_eq!(pg.count(&format!("SELECT count(*) {w}")), PACKETS - refused);
    assert_eq!(
        pg.count(&format!("SELECT count(DISTINCT seq) {w}")),
        PACKETS - refused
    );
    assert_eq!(
        pg.count(&format!("SELECT count(DISTINCT seq_global) {w}")),
        PACKETS - refused
    );
    assert_eq!(
        pg.count(&format!(
            "SELECT coalesce(sum(count), 0) FROM losses WHERE host = '{host}'"
        )),
        DROPPED + refused
    );
}

#[test]
fn a_batch_goes_in_as_two_halves_and_a_half_already_stored_is_not_stored_twice() {
    require_root!();
    let ns = NetNs::new("pgsplit");
    let pg = Pg::init(&ns, 55450);
    pg.start();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("spool");
    spool(&cap);
    let url = pg.url(pg::PASSWORD);
    let err = replay(&ns, &url, &cap, "fw1");
    complete(&pg, "fw1", 0);
    // Two halves, two transactions: rows per transaction in spool order show each large
    // batch as two halves of (nearly) the same size.
    let sizes: Vec<u64> = pg
        .query(
            "SELECT string_agg(n::text, ' ' ORDER BY s) FROM \
             (SELECT count(*) AS n, min(seq) AS s FROM packets GROUP BY xmin) t",
        )
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        sizes.iter().all(|&n| n < PACKETS / 2)
            && sizes
                .windows(2)
                .any(|w| w[0] >= 256 && w[0].abs_diff(w[1]) <= 1),
        "rows per transaction: {sizes:?}; {err}"
    );

    // As if the second half of batches had committed and the first had not, and the other way
    // round: the replay stores what is missing, once.
    pg.query(
        "DELETE FROM packets WHERE seq BETWEEN 300 AND 900 OR seq BETWEEN 2500 AND 3900 \
         OR seq >= 4990",
    );
    replay(&ns, &url, &cap, "fw1");
    complete(&pg, "fw1", 0);
    // Nothing missing: a replay adds nothing.
    replay(&ns, &url, &cap, "fw1");
    complete(&pg, "fw1", 0);

    // One row refused in each half of the first batch: both are losses, the rest is stored.
    pg.query(
        "CREATE FUNCTION no_two() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.seq IN (10, 1800) THEN RAISE EXCEPTION 'site rule: not %', NEW.seq; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER no_two BEFORE INSERT ON packets FOR EACH ROW EXECUTE FUNCTION no_two()",
    );
    let err = replay(&ns, &url, &cap, "fw2");
    assert!(err.contains("refused 2 row(s)"), "{err}");
    complete(&pg, "fw2", 2);
    assert_eq!(
        pg.query(
            "SELECT string_agg(seq || ' ' || reason, ',' ORDER BY seq) FROM losses \
             WHERE host = 'fw2' AND reason LIKE 'refused%'"
        ),
        "10 refused: site rule: not 10,1800 refused: site rule: not 1800"
    );
}
