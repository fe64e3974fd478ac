//! Local-time rendering of packet timestamps: syslog's `Mmm dd HH:MM:SS`, fwlog's
//! `YYYY-MM-DD HH:MM:SS.uuuuuu` and RFC 3339 with microseconds and offset.
//!
//! Local time is the process's time zone (TZ / /etc/localtime) at the packet's instant, so a
//! replayed packet shows the time it was logged, not the time it was printed. A timestamp
//! outside chrono's range falls back to the epoch rather than failing (the record is still
//! printed; its time source says where the value came from).

use std::cell::Cell;

use chrono::{DateTime, Datelike, Local, TimeZone, Timelike};

use super::write::{dec, dec_pad, s};
use crate::packet::Timestamp;

/// The local calendar fields of one second. Converting to local time costs a time-zone lookup;
/// at 100k packets/s nearly every packet shares its second with the previous one, so the last
/// conversion is cached per thread, keyed by the second (the fields of a second never change;
/// a TZ change takes effect at the next new second).
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

thread_local! {
    static LAST: Cell<Option<Civil>> = const { Cell::new(None) };
}

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

fn civil(sec: i64) -> Civil {
    LAST.with(|c| match c.get() {
        Some(v) if v.sec == sec => v,
        _ => {
            let v = convert(sec);
            c.set(Some(v));
            v
        }
    })
}

fn micros(t: &Timestamp) -> u64 {
    (t.nsec.min(999_999_999) / 1000) as u64
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

/// `YYYY-MM-DD HH:MM:SS.uuuuuu` (fwlog 0.8's `received` field).
pub fn fwlog(out: &mut Vec<u8>, t: &Timestamp) {
    let d = civil(t.sec);
    ymd(out, &d);
    s(out, " ");
    hms(out, &d);
    s(out, ".");
    dec_pad(out, micros(t), 6);
}

/// RFC 3339 local time with microseconds and the UTC offset: `2026-11-24T08:15:02.123456+01:00`.
pub fn rfc3339(out: &mut Vec<u8>, t: &Timestamp) {
    let d = civil(t.sec);
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
