//! The kernel format's IPv6 extension headers (`OPT ( ... )` with `log flags ip-options`).

use super::*;

/// Print the extension headers; `Flow::Stop` when the line ends with them (a fragment that is
/// cut short, ESP, a header after a fragment).
pub(super) fn ext_headers(v6: &Ipv6<'_>, opt: bool, out: &mut Vec<u8>) -> Flow {
    for e in v6.ext_headers() {
        if opt {
            s(out, "OPT ( ");
        }
        match e.kind {
            ipv6::FRAGMENT => {
                s(out, "FRAG:");
                match e.fragment {
                    None => {
                        s(out, "TRUNCATED ");
                        return Flow::Stop;
                    }
                    Some(f) => {
                        dec(out, f.offset as u64);
                        s(out, " ");
                        if f.more {
                            s(out, "INCOMPLETE ");
                        }
                        s(out, "ID:");
                        hex_pad(out, f.id as u64, 8, false);
                        s(out, " ");
                    }
                }
            }
            ipv6::AH | ipv6::ESP => {
                let esp = e.kind == ipv6::ESP;
                if opt {
                    s(out, if esp { "ESP " } else { "AH " });
                    if e.after_fragment {
                        s(out, ")");
                        return Flow::Stop;
                    }
                    match e.spi {
                        None => {
                            s(out, "INCOMPLETE [");
                            dec(out, e.kernel_remaining as u64);
                            s(out, " bytes] )");
                            return Flow::Stop;
                        }
                        Some(x) if esp => {
                            s(out, "SPI=0x");
                            hex(out, x as u64);
                            s(out, " )");
                        }
                        Some(x) => spi(out, x),
                    }
                }
                // Nothing after ESP is readable: the rest is encrypted.
                if esp {
                    return Flow::Stop;
                }
            }
            _ => {
                // hop-by-hop, routing, destination options
                if e.after_fragment {
                    if opt {
                        s(out, ")");
                    }
                    return Flow::Stop;
                }
            }
        }
        if opt {
            s(out, ") ");
        }
    }
    Flow::Go
}
