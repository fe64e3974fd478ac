//! `pcap:PATH[?OPTIONS]` and `pcap-raw:PATH[?OPTIONS]`: what a pcap output is, checked before
//! anything is opened.
//!
//! OPTIONS is `&`-separated `KEY=VALUE`: `max-size=SIZE` (e.g. 100MiB), `max-age=DURATION`
//! (e.g. 1h), `keep=N` (only with one of the other two). Unknown keys, repeated keys, zero
//! values and an empty PATH are errors.

use std::path::PathBuf;
use std::time::Duration;

/// What a record of the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcapLink {
    /// LINKTYPE_NFLOG: the spool record as is, as `fwlog replay --pcap` writes it.
    Nflog,
    /// LINKTYPE_RAW: the packet from its IP header on (IPv4 and IPv6 packets only).
    Raw,
}

impl PcapLink {
    pub fn scheme(self) -> &'static str {
        match self {
            PcapLink::Nflog => "pcap",
            PcapLink::Raw => "pcap-raw",
        }
    }
}

/// One pcap output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapSpec {
    pub link: PcapLink,
    /// The file; with rotation, the pattern: `DIR/STEM.EXT` becomes `DIR/STEM-START.EXT`.
    pub path: PathBuf,
    /// Start a new file before one would grow past this many bytes.
    pub max_size: Option<u64>,
    /// Start a new file once the current one is this old.
    pub max_age: Option<Duration>,
    /// Delete the oldest rotated files beyond this many (the current one included).
    pub keep: Option<usize>,
    /// The text the user wrote, for messages.
    pub text: String,
}

impl PcapSpec {
    /// Parse what follows `pcap:` or `pcap-raw:`.
    pub fn parse(link: PcapLink, rest: &str) -> Result<PcapSpec, String> {
        let text = format!("{}:{rest}", link.scheme());
        let bad = |why: String| format!("{text}: {why}");
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() || path.ends_with('/') {
            return Err(bad(
                "expected a file name, as in pcap:/var/log/fwlog.pcap".into()
            ));
        }
        let mut spec = PcapSpec {
            link,
            path: path.into(),
            max_size: None,
            max_age: None,
            keep: None,
            text: text.clone(),
        };
        for item in query.into_iter().flat_map(|q| q.split('&')) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("{item:?}: expected KEY=VALUE")))?;
            match k {
                "max-size" if spec.max_size.is_none() => {
                    let n =
                        parse_size::parse_size(v).map_err(|e| bad(format!("max-size={v}: {e}")))?;
                    // A file must hold its header and at least a small record.
                    if n < 1024 {
                        return Err(bad(format!("max-size={v}: at least 1KiB")));
                    }
                    spec.max_size = Some(n);
                }
                "max-age" if spec.max_age.is_none() => {
                    let d = humantime::parse_duration(v)
                        .map_err(|e| bad(format!("max-age={v}: {e} (examples: 1h, 10m)")))?;
                    if d < Duration::from_secs(1) {
                        return Err(bad(format!("max-age={v}: at least 1s")));
                    }
                    spec.max_age = Some(d);
                }
                "keep" if spec.keep.is_none() => {
                    let n: usize = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        bad(format!("keep={v}: expected a count of files, 1 or more"))
                    })?;
                    spec.keep = Some(n);
                }
                "max-size" | "max-age" | "keep" => return Err(bad(format!("{k} given twice"))),
                _ => {
                    return Err(bad(format!(
                        "unknown option {k:?} (known: max-size, max-age, keep)"
                    )))
                }
            }
        }
        if spec.keep.is_some() && !spec.rotates() {
            return Err(bad("keep= needs max-size= or max-age=".into()));
        }
        Ok(spec)
    }

    /// True when files rotate (names then carry their start time).
    pub fn rotates(&self) -> bool {
        self.max_size.is_some() || self.max_age.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let s = PcapSpec::parse(
            PcapLink::Nflog,
            "/var/log/fw.pcap?max-size=100MiB&max-age=1h&keep=24",
        )
        .unwrap();
        assert_eq!(s.path, PathBuf::from("/var/log/fw.pcap"));
        assert_eq!(s.max_size, Some(100 << 20));
        assert_eq!(s.max_age, Some(Duration::from_secs(3600)));
        assert_eq!(s.keep, Some(24));
        assert!(s.rotates());
        let s = PcapSpec::parse(PcapLink::Raw, "x.pcap").unwrap();
        assert!(!s.rotates());
        for bad in [
            "",
            "?max-size=1MiB",
            "dir/",
            "x?keep=3",
            "x?max-size=10",
            "x?max-size=lots",
            "x?max-age=0s",
            "x?max-size=1MiB&keep=0",
            "x?max-size=1MiB&max-size=2MiB",
            "x?colour=blue",
            "x?max-size",
        ] {
            let e = PcapSpec::parse(PcapLink::Nflog, bad).expect_err(bad);
            assert!(e.starts_with("pcap:") && !e.contains('\n'), "{e}");
        }
    }
}
