//! TCP options in words for the fwlog and json formats: `mss 1460,sackOK,ts 1 0,nop,wscale 7`.
//!
//! The kind/length framing (RFC 9293 section 3.2) is walked here so that options etherparse does
//! not know (MPTCP, TCP-AO, fast open, AccECN, experimental) are still named and stepped over;
//! each complete option is then decoded by etherparse's `TcpOptionsIterator`. A length byte
//! below 2 or running past the option space ends the walk with a `bad-length` note.

use etherparse::{TcpOptionElement, TcpOptionsIterator};

use super::write::{dec, s};

fn kind_name(k: u8) -> Option<&'static str> {
    Some(match k {
        19 => "md5",
        27 => "quick-start",
        28 => "user-timeout",
        29 => "tcp-ao",
        30 => "mptcp",
        34 => "fastopen",
        172 => "accecn0",
        174 => "accecn1",
        253 | 254 => "exp",
        _ => return None,
    })
}

/// Append the options in words, comma-separated.
pub fn describe(out: &mut Vec<u8>, opts: &[u8]) {
    let mut i = 0;
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b',');
        }
        first = false;
    };
    while i < opts.len() {
        let kind = opts[i];
        match kind {
            0 => {
                sep(out);
                s(out, "eol");
                return;
            }
            1 => {
                sep(out);
                s(out, "nop");
                i += 1;
                continue;
            }
            _ => {}
        }
        let len = opts.get(i + 1).copied().unwrap_or(0) as usize;
        if len < 2 || i + len > opts.len() {
            sep(out);
            s(out, "bad-length kind ");
            dec(out, kind as u64);
            return;
        }
        let one = &opts[i..i + len];
        sep(out);
        match TcpOptionsIterator::from_slice(one).next() {
            Some(Ok(TcpOptionElement::MaximumSegmentSize(m))) => {
                s(out, "mss ");
                dec(out, m as u64);
            }
            Some(Ok(TcpOptionElement::WindowScale(w))) => {
                s(out, "wscale ");
                dec(out, w as u64);
            }
            Some(Ok(TcpOptionElement::SelectiveAcknowledgementPermitted)) => s(out, "sackOK"),
            Some(Ok(TcpOptionElement::SelectiveAcknowledgement(a, rest))) => {
                s(out, "sack");
                for (l, r) in std::iter::once(a).chain(rest.into_iter().flatten()) {
                    s(out, " ");
                    dec(out, l as u64);
                    s(out, "-");
                    dec(out, r as u64);
                }
            }
            Some(Ok(TcpOptionElement::Timestamp(v, e))) => {
                s(out, "ts ");
                dec(out, v as u64);
                s(out, " ");
                dec(out, e as u64);
            }
            _ => {
                match kind_name(kind) {
                    Some(n) => s(out, n),
                    None => {
                        s(out, "kind ");
                        dec(out, kind as u64);
                    }
                }
                s(out, " len ");
                dec(out, len as u64);
            }
        }
        i += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> String {
        let mut v = Vec::new();
        describe(&mut v, b);
        String::from_utf8(v).expect("ascii")
    }

    #[test]
    fn linux_syn_options_and_oddities() {
        assert_eq!(
            d(&[2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]),
            "mss 1460,sackOK,ts 1 0,nop,wscale 7"
        );
        assert_eq!(d(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]), "sack 1-2");
        assert_eq!(d(&[30, 4, 0, 0, 0]), "mptcp len 4,eol");
        assert_eq!(d(&[2, 3, 1, 1]), "kind 2 len 3,nop");
        assert_eq!(d(&[8, 40]), "bad-length kind 8");
        assert_eq!(d(&[99]), "bad-length kind 99");
        assert_eq!(d(&[]), "");
    }
}
