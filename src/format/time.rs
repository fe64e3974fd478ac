//! Local-time rendering of packet timestamps: syslog's `Mmm dd HH:MM:SS`, fwlog's
//! `YYYY-MM-DD HH:MM:SS.uuuuuu` and RFC 3339 with microseconds and offset.
//!
//! Local time is the process's time zone (TZ / /etc/localtime) at the packet's instant, so a
//! replayed packet shows the time it was logged, not the time it was printed. A timestamp
//! outside chrono's range falls back to the epoch rather than failing (the record is still
//! printed; its time source says where the value came from).
//!
//! Cost: the offset is looked up once per quarter hour of packet time, the date once per local
//! day, the `YYYY-MM-DD HH:MM:SS` text once per second (the fwlog format's once per minute,
//! then its seconds' two digits per second), the fraction per packet. So a change of
//! the time zone itself (TZ, /etc/localtime) shows from the next quarter hour on.

use std::cell::Cell;

use chrono::{DateTime, Datelike, Local, Offset, TimeZone, Timelike};

use super::write::{dec, dec_pad, eight_digits, put, s, DIGITS2};
use crate::packet::Timestamp;

/// The local calendar fields of one second.
#[derive(Clone, Copy)]
struct Civil {
    sec: i64,
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    offset: i32,
}

/// A UTC offset and the seconds `[from, to)` it is known to hold for.
#[derive(Clone, Copy)]
struct Span {
    from: i64,
    to: i64,
    offset: i32,
}

/// One second as every format shows it: `YYYY-MM-DD HH:MM:SS` (`text`, when the year has four
/// digits; other years take the general path) and its fields.
#[derive(Clone, Copy)]
struct Second {
    civil: Civil,
    text: Option<[u8; 19]>,
}

// Per thread: the last second rendered, and the span of the last offset looked up. At 100k
// packets/s nearly every packet shares its second with the one before, and a time zone
// changes its offset a few times a year: so a packet costs a compare, a new second some
// arithmetic, and only a new quarter hour asks the time zone (chrono's `Local`).
thread_local! {
    static LAST: Cell<Option<Second>> = const { Cell::new(None) };
    static SPAN: Cell<Option<Span>> = const { Cell::new(None) };
    /// The fwlog format's per-packet path: the last second's text alone, a small copy, and
    /// whether every second of its UTC minute has its local offset, a whole number of minutes
    /// (the text of another second of that minute then differs in its last two digits only).
    static TEXT: Cell<Option<(i64, [u8; 19], bool)>> = const { Cell::new(None) };
}

/// Seconds for which the arithmetic below is used: years 1 to 9999 (UTC). Outside, chrono
/// converts each second itself (and falls back to the epoch where it cannot).
const FAST: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// Offsets are asked for per quarter hour, aligned: every time zone change there has been
/// falls on a quarter hour, and one the span's two ends do not agree on is handled per second.
const QUARTER: i64 = 900;

fn convert(sec: i64) -> Civil {
    let d: DateTime<Local> = Local
        .timestamp_opt(sec, 0)
        .earliest()
        .or_else(|| Local.timestamp_opt(0, 0).earliest())
        .unwrap_or_else(|| DateTime::<Local>::from(DateTime::UNIX_EPOCH));
    Civil {
        sec,
        year: d.year(),
        month: d.month(),
        day: d.day(),
        hour: d.hour(),
        minute: d.minute(),
        second: d.second(),
        offset: d.offset().local_minus_utc(),
    }
}

/// The local UTC offset at `sec` (in [`FAST`]).
fn offset_at(sec: i64) -> i32 {
    DateTime::from_timestamp(sec, 0).map_or(0, |d| {
        Local
            .offset_from_utc_datetime(&d.naive_utc())
            .fix()
            .local_minus_utc()
    })
}

fn span(sec: i64) -> Span {
    if let Some(s) = SPAN.get().filter(|s| (s.from..s.to).contains(&sec)) {
        return s;
    }
    let from = sec.div_euclid(QUARTER) * QUARTER;
    let (a, b) = (offset_at(from), offset_at(from + QUARTER - 1));
    let s = if a == b {
        Span {
            from,
            to: from + QUARTER,
            offset: a,
        }
    } else {
        Span {
            from: sec,
            to: sec + 1,
            offset: offset_at(sec),
        }
    };
    SPAN.set(Some(s));
    s
}

/// Year, month, day of a day count since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`, exact for every day in [`FAST`]).
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

/// `last` is the second rendered before, whose date is kept when `sec` falls on the same local
/// day (a replay or a burst walks the seconds of a day in order).
fn civil_fast(sec: i64, last: Option<Civil>) -> Civil {
    let offset = span(sec).offset;
    let local = sec + i64::from(offset);
    let days = local.div_euclid(86_400);
    let (year, month, day) = match last {
        Some(l)
            if FAST.contains(&l.sec)
                && (l.sec + i64::from(l.offset)).div_euclid(86_400) == days =>
        {
            (l.year, l.month, l.day)
        }
        _ => civil_from_days(days),
    };
    let t = local.rem_euclid(86_400) as u32;
    Civil {
        sec,
        year,
        month,
        day,
        hour: t / 3600,
        minute: t / 60 % 60,
        second: t % 60,
        offset,
    }
}

fn second(sec: i64) -> Second {
    let last = LAST.get();
    if let Some(v) = last.filter(|v| v.civil.sec == sec) {
        return v;
    }
    let civil = if FAST.contains(&sec) {
        civil_fast(sec, last.map(|l| l.civil))
    } else {
        convert(sec)
    };
    let text = (0..=9999).contains(&civil.year).then(|| {
        // `YYYY-MM-DD HH:MM:SS`, each field zero-padded (the year has four digits here; every
        // field is below 100, `% 100` only keeps the table read in bounds).
        let mut a = *b"0000-00-00 00:00:00";
        let two = |a: &mut [u8; 19], at: usize, v: u32| {
            let i = (v % 100) as usize * 2;
            a[at..at + 2].copy_from_slice(&DIGITS2[i..i + 2]);
        };
        let y = civil.year as u32;
        two(&mut a, 0, y / 100);
        two(&mut a, 2, y % 100);
        two(&mut a, 5, civil.month);
        two(&mut a, 8, civil.day);
        two(&mut a, 11, civil.hour);
        two(&mut a, 14, civil.minute);
        two(&mut a, 17, civil.second);
        a
    });
    let v = Second { civil, text };
    LAST.set(Some(v));
    v
}

/// Whether every second of `sec`'s UTC minute has the same local offset, a whole number of
/// minutes: then a second's local `:SS` is its UTC one. True inside a quarter hour whose offset
/// [`span`] found constant (minutes divide quarter hours, and [`FAST`] starts and ends on a
/// minute); false for a span of one second (an offset change inside the quarter hour) and for
/// offsets with seconds (local mean time before standard time).
fn minute_shares_offset(sec: i64) -> bool {
    if !FAST.contains(&sec) {
        return false;
    }
    let sp = span(sec);
    let m0 = sec - sec.rem_euclid(60);
    sp.offset % 60 == 0 && sp.from <= m0 && m0 + 60 <= sp.to
}

fn civil(sec: i64) -> Civil {
    second(sec).civil
}

fn micros(t: &Timestamp) -> u64 {
    (t.nsec.min(999_999_999) / 1000) as u64
}

/// `.uuuuuu`: the fraction, six digits (the last six of eight, all computed at once).
fn fraction(buf: &mut [u8], t: &Timestamp) {
    // Below 10^6: `micros` caps the nanoseconds.
    let d = eight_digits(micros(t) as u32).to_le_bytes();
    buf[0] = b'.';
    buf[1..7].copy_from_slice(&d[2..8]);
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd HH:MM:SS` with the day padded by a space (RFC 3164, as rsyslog writes it).
pub fn syslog(out: &mut Vec<u8>, t: &Timestamp) {
    let d = civil(t.sec);
    s(out, MONTHS[(d.month as usize + 11) % 12]);
    s(out, " ");
    if d.day < 10 {
        s(out, " ");
    }
    dec(out, d.day as u64);
    s(out, " ");
    hms(out, &d);
}

fn hms(out: &mut Vec<u8>, d: &Civil) {
    dec_pad(out, d.hour as u64, 2);
    s(out, ":");
    dec_pad(out, d.minute as u64, 2);
    s(out, ":");
    dec_pad(out, d.second as u64, 2);
}

fn ymd(out: &mut Vec<u8>, d: &Civil) {
    if d.year < 0 {
        s(out, "-");
    }
    dec_pad(out, d.year.unsigned_abs() as u64, 4);
    s(out, "-");
    dec_pad(out, d.month as u64, 2);
    s(out, "-");
    dec_pad(out, d.day as u64, 2);
}

/// `key` (a literal of up to 16 bytes, `, received `), then `YYYY-MM-DD HH:MM:SS.uuuuuu` (fwlog
/// 0.8's `received` field): one append when the year has four digits.
pub fn fwlog<const K: usize>(out: &mut Vec<u8>, key: &[u8; K], t: &Timestamp) {
    let text = match TEXT.get() {
        Some((s, text, _)) if s == t.sec => Some(text),
        // A replay or a burst walks the seconds of a minute: only the seconds change.
        Some((s, mut text, true)) if s.div_euclid(60) == t.sec.div_euclid(60) => {
            let i = t.sec.rem_euclid(60) as usize * 2;
            text[17..19].copy_from_slice(&DIGITS2[i..i + 2]);
            TEXT.set(Some((t.sec, text, true)));
            Some(text)
        }
        _ => {
            let text = second(t.sec).text;
            if let Some(x) = text {
                TEXT.set(Some((t.sec, x, minute_shares_offset(t.sec))));
            }
            text
        }
    };
    if let Some(text) = text.filter(|_| K <= 16) {
        let mut buf = [0u8; 48];
        buf[..K].copy_from_slice(key);
        buf[K..K + 19].copy_from_slice(&text);
        fraction(&mut buf[K + 19..K + 26], t);
        put(out, &buf, K + 26);
        return;
    }
    out.extend_from_slice(key);
    let d = civil(t.sec);
    ymd(out, &d);
    s(out, " ");
    hms(out, &d);
    s(out, ".");
    dec_pad(out, micros(t), 6);
}

/// RFC 3339 local time with microseconds and the UTC offset: `2026-11-24T08:15:02.123456+01:00`.
pub fn rfc3339(out: &mut Vec<u8>, t: &Timestamp) {
    let sec = second(t.sec);
    let d = sec.civil;
    if let Some(text) = sec.text {
        let mut buf = [0u8; 32];
        buf[..19].copy_from_slice(&text);
        buf[10] = b'T';
        fraction(&mut buf[19..26], t);
        let off = d.offset;
        buf[26] = if off < 0 { b'-' } else { b'+' };
        let a = off.unsigned_abs();
        let (h, m) = (a / 3600, a % 3600 / 60);
        if h < 100 {
            buf[27] = b'0' + (h / 10) as u8;
            buf[28] = b'0' + (h % 10) as u8;
            buf[29] = b':';
            buf[30] = b'0' + (m / 10) as u8;
            buf[31] = b'0' + (m % 10) as u8;
            out.extend_from_slice(&buf);
            return;
        }
    }
    ymd(out, &d);
    s(out, "T");
    hms(out, &d);
    s(out, ".");
    dec_pad(out, micros(t), 6);
    let off = d.offset;
    s(out, if off < 0 { "-" } else { "+" });
    let a = off.unsigned_abs();
    dec_pad(out, (a / 3600) as u64, 2);
    s(out, ":");
    dec_pad(out, (a % 3600 / 60) as u64, 2);
}
