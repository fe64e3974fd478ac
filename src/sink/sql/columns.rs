//! Every column of a packet row ([`Row`]) in one list: its name, what kind of value it holds,
//! and the value of a given row. Engines that build their SQL from this list (MariaDB) get a
//! column added here without further change; a test holds the list equal to the SQLite and
//! PostgreSQL schemas, so a column added to a [`Row`] and to those schemas but not here fails
//! it.
//!
//! Invariants:
//! - [`PACKET`] is in the order of the SQLite and PostgreSQL column lists; [`values`] yields
//!   exactly one value per entry, in that order.
//! - Addresses are the 16-byte form of [`addr16`] (IPv4 mapped into IPv6), which sorts and
//!   range-queries in address order.
//! - Text values are already escaped (printable ASCII only, see [`row`](super::row)).

use super::row::{addr16, Row};

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A timestamp (seconds, nanoseconds), UTC.
    Time,
    /// A short ASCII word compared byte for byte (keys and enumerations), at most this long.
    Word(u16),
    /// Escaped text of any length.
    Text,
    /// An unsigned integer of this many bits.
    Uint(u8),
    /// A floating-point number.
    Real,
    /// True or false.
    Bool,
    /// A 16-byte address.
    Addr,
    /// Bytes of any length.
    Bytes,
}

/// One column.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub not_null: bool,
}

const fn col(name: &'static str, kind: Kind, not_null: bool) -> Column {
    Column {
        name,
        kind,
        not_null,
    }
}

/// The `packets` table's columns.
pub const PACKET: &[Column] = &[
    col("time", Kind::Time, true),
    col("time_source", Kind::Word(16), true),
    col("host", Kind::Word(255), true),
    col("stream", Kind::Word(32), true),
    col("seq", Kind::Uint(64), true),
    col("seq_global", Kind::Uint(32), false),
    col("nflog_group", Kind::Uint(16), true),
    col("family", Kind::Uint(8), true),
    col("prefix", Kind::Text, false),
    col("hook", Kind::Uint(8), false),
    col("mark", Kind::Uint(32), true),
    col("in_if", Kind::Text, false),
    col("out_if", Kind::Text, false),
    col("src", Kind::Addr, false),
    col("dst", Kind::Addr, false),
    col("src_name", Kind::Text, false),
    col("dst_name", Kind::Text, false),
    col("proto", Kind::Uint(8), false),
    col("sport", Kind::Uint(16), false),
    col("dport", Kind::Uint(16), false),
    col("tcp_flags", Kind::Uint(8), false),
    col("icmp_type", Kind::Uint(8), false),
    col("icmp_code", Kind::Uint(8), false),
    col("length", Kind::Uint(32), false),
    col("ttl", Kind::Uint(8), false),
    col("uid", Kind::Uint(32), false),
    col("gid", Kind::Uint(32), false),
    col("replayed", Kind::Bool, true),
    col("partial", Kind::Bool, true),
    col("payload", Kind::Bytes, false),
];

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Val<'a> {
    Null,
    Time((i64, u32)),
    Text(&'a str),
    Uint(u64),
    Real(f64),
    Bool(bool),
    Addr([u8; 16]),
    Bytes(&'a [u8]),
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Val<'static>) -> Val<'static> {
    v.map_or(Val::Null, f)
}

fn text(v: &Option<String>) -> Val<'_> {
    v.as_deref().map_or(Val::Null, Val::Text)
}

/// Hand `f` the values of row `r` (with its `host` and `stream`), one per [`PACKET`] entry,
/// in order.
pub fn values<'a>(r: &'a Row, host: &'a str, stream: &'a str, mut f: impl FnMut(Val<'a>)) {
    let u = |v: u64| Val::Uint(v);
    f(Val::Time(r.time));
    f(Val::Text(r.time_source));
    f(Val::Text(host));
    f(Val::Text(stream));
    f(u(r.seq));
    f(opt(r.seq_global, |v| u(v.into())));
    f(u(r.nflog_group.into()));
    f(u(r.family.into()));
    f(text(&r.prefix));
    f(opt(r.hook, |v| u(v.into())));
    f(u(r.mark.into()));
    f(text(&r.in_if));
    f(text(&r.out_if));
    f(opt(r.src, |a| Val::Addr(addr16(a))));
    f(opt(r.dst, |a| Val::Addr(addr16(a))));
    f(text(&r.src_name));
    f(text(&r.dst_name));
    f(opt(r.proto, |v| u(v.into())));
    f(opt(r.sport, |v| u(v.into())));
    f(opt(r.dport, |v| u(v.into())));
    f(opt(r.tcp_flags, |v| u(v.into())));
    f(opt(r.icmp_type, |v| u(v.into())));
    f(opt(r.icmp_code, |v| u(v.into())));
    f(opt(r.length, |v| u(v.into())));
    f(opt(r.ttl, |v| u(v.into())));
    f(opt(r.uid, |v| u(v.into())));
    f(opt(r.gid, |v| u(v.into())));
    f(Val::Bool(r.replayed));
    f(Val::Bool(r.partial));
    f(r.payload.as_deref().map_or(Val::Null, Val::Bytes));
}

/// The column names, comma-separated, in order.
pub fn names() -> String {
    PACKET.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squash(s: &str) -> String {
        s.split(',').map(str::trim).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn the_list_is_the_postgresql_and_sqlite_column_list() {
        assert_eq!(squash(&names()), squash(super::super::pg_rows::COLUMNS));
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        super::super::sqlite_schema::ensure(&mut c, "mem").unwrap();
        let mut st = c
            .prepare("SELECT name FROM pragma_table_info('packets')")
            .unwrap();
        let sqlite: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(sqlite.join(","), squash(&names()));
    }

    #[test]
    fn a_row_has_one_value_per_column() {
        let r = Row {
            seq: 9,
            time: (1, 2),
            time_source: "kernel",
            seq_global: Some(3),
            nflog_group: 5,
            family: 2,
            prefix: Some("p".into()),
            hook: None,
            mark: 0,
            in_if: None,
            out_if: None,
            src: Some("10.0.0.1".parse().unwrap()),
            dst: None,
            src_name: None,
            dst_name: None,
            proto: Some(6),
            sport: Some(1),
            dport: Some(80),
            tcp_flags: None,
            icmp_type: None,
            icmp_code: None,
            length: Some(40),
            ttl: Some(64),
            uid: None,
            gid: None,
            replayed: false,
            partial: true,
            payload: None,
        };
        let mut v = Vec::new();
        values(&r, "h", "s", |x| v.push(x));
        assert_eq!(v.len(), PACKET.len());
        assert_eq!(v[2], Val::Text("h"));
        assert_eq!(v[4], Val::Uint(9));
        assert_eq!(v[13], Val::Addr(addr16("10.0.0.1".parse().unwrap())));
        assert_eq!(v[19], Val::Uint(80));
        assert_eq!(v[28], Val::Bool(true));
    }
}
