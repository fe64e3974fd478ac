//! One file per subcommand: argument handling and wiring, no packet logic of their own.

pub mod completions;
pub mod pipeline;
pub mod read;
pub mod replay;
pub mod report;

use crate::cli::FormatArgs;
use crate::format::FormatOptions;

/// The formatter options that the command line selects.
pub fn format_options(args: &FormatArgs) -> FormatOptions {
    FormatOptions {
        flags: args.log_flags,
        syslog_framing: !args.no_syslog_header,
        hostname: crate::ifname::short_hostname(),
        geo: !geo_config(args).is_empty(),
        no_geo_tag: args.no_geo_tag,
    }
}

/// The GeoIP/ASN databases the command line names.
pub fn geo_config(args: &FormatArgs) -> crate::geo::GeoConfig {
    crate::geo::GeoConfig {
        geoip: args.geoip.clone(),
        asn: args.asn.clone(),
    }
}
