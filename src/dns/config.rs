//! [`DnsConfig`]: what the resolver is told, and how it becomes a hickory resolver.
//!
//! Name servers come from `--dns-server` (repeatable) or, when none is given, from
//! `/etc/resolv.conf` (only its `nameserver` lines are used: PTR names are absolute, so search
//! domains and ndots do not apply, and timeouts/attempts come from fwlog's own flags). There is
//! never a built-in fallback server: no server is a configuration error that suggests `--no-dns`.
//!
//! hickory's own answer cache is disabled (fwlog's address-keyed cache sits in front) and
//! `/etc/hosts` is never consulted: a reverse answer comes from DNS or not at all, so a log does
//! not change meaning with the local hosts file (and hickory 0.26 does not answer PTR from it
//! anyway). Forward confirmation (`--verify-names`) therefore also asks DNS only.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

/// Everything the reverse-DNS module is configured with. Flag names are those the CLI exposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// `--dns-server IP[:PORT]` (repeatable, port 53 by default). Empty: read `resolv_conf`.
    pub servers: Vec<SocketAddr>,
    /// Where to read name servers from when `servers` is empty. Default `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// `--dns-query-timeout`: how long one try of one query waits. Default 500 ms.
    pub query_timeout: Duration,
    /// `--dns-attempts`: retries after the first try (hickory's meaning). Default 1.
    pub attempts: usize,
    /// `--dns-cache-size`: addresses kept in the cache (names and negative answers). Default 65536.
    pub cache_entries: usize,
    /// `--dns-min-ttl`: shortest time an answer is kept, whatever its TTL. Default 60 s.
    pub min_ttl: Duration,
    /// `--dns-max-ttl`: longest time a positive answer is kept. Default 3600 s.
    pub max_ttl: Duration,
    /// Longest time a negative answer (NXDOMAIN, no PTR) is kept; also used when the server sends
    /// no SOA to say how long. Default 300 s.
    pub negative_ttl: Duration,
    /// How long an address whose lookup failed (timeout, SERVFAIL, malformed answer) prints
    /// without a name before it is tried again. Keeps a dead server from costing every packet its
    /// full deadline. Zero: never remembered. Default 10 s.
    pub error_ttl: Duration,
    /// Lookups talking to servers at once. Default 64.
    pub max_in_flight: usize,
    /// Lookups started but not finished (in flight plus queued). When full a new address is not
    /// looked up: its packet prints without a name and `dropped` counts it. Default 4096.
    pub max_pending: usize,
    /// `--verify-names`: forward-confirm each name (A/AAAA must hold the address). Default off.
    pub verify_names: bool,
}

/// Default per-packet deadline for `--dns-timeout` (the pipeline owns it, not the resolver).
pub const DEFAULT_PACKET_TIMEOUT: Duration = Duration::from_secs(2);

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            query_timeout: Duration::from_millis(500),
            attempts: 1,
            cache_entries: 65536,
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(300),
            error_ttl: Duration::from_secs(10),
            max_in_flight: 64,
            max_pending: 4096,
            verify_names: false,
        }
    }
}

/// A configuration problem, as one line fit for stderr.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DnsConfigError(pub String);

/// Parse one `--dns-server` value: `IP`, `IP:PORT`, or `[IPv6]:PORT`.
pub fn parse_server(s: &str) -> Result<SocketAddr, DnsConfigError> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            DnsConfigError(format!(
                "--dns-server {s:?}: expected IP, IP:PORT or [IPv6]:PORT"
            ))
        })
}

impl DnsConfig {
    /// Check values that would make the resolver useless or unbounded.
    pub fn validate(&self) -> Result<(), DnsConfigError> {
        let bad = |m: &str| Err(DnsConfigError(m.to_string()));
        if self.query_timeout.is_zero() {
            return bad("--dns-query-timeout must be more than 0");
        }
        if self.cache_entries == 0 {
            return bad("--dns-cache-size must be at least 1");
        }
        if self.min_ttl > self.max_ttl {
            return bad("--dns-min-ttl must not exceed --dns-max-ttl");
        }
        if self.max_in_flight == 0 || self.max_pending < self.max_in_flight {
            return bad("DNS limits: need 1 <= max_in_flight <= max_pending");
        }
        Ok(())
    }

    /// The name servers to use: `servers`, else the `nameserver` lines of `resolv_conf`.
    pub fn name_servers(&self) -> Result<Vec<SocketAddr>, DnsConfigError> {
        if !self.servers.is_empty() {
            return Ok(self.servers.clone());
        }
        let path = self.resolv_conf.display();
        let data = std::fs::read(&self.resolv_conf).map_err(|e| {
            DnsConfigError(format!(
                "no DNS server configured (cannot read {path}: {e}); use --dns-server IP or --no-dns"
            ))
        })?;
        let (parsed, _errors) = resolv_conf::Config::parse_with_errors(&data);
        let servers: Vec<SocketAddr> = parsed
            .nameservers
            .iter()
            .map(|ns| SocketAddr::new(IpAddr::from(ns), 53))
            .collect();
        if servers.is_empty() {
            return Err(DnsConfigError(format!(
                "no DNS server configured ({path} has no nameserver); use --dns-server IP or --no-dns"
            )));
        }
        Ok(servers)
    }

    /// Build the hickory resolver these settings describe. Must run inside a tokio runtime.
    pub(crate) fn build_hickory(&self) -> Result<TokioResolver, DnsConfigError> {
        self.validate()?;
        let servers = self
            .name_servers()?
            .into_iter()
            .map(|sa| {
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                for c in &mut ns.connections {
                    c.port = sa.port();
                }
                ns
            })
            .collect();
        let mut opts = ResolverOpts::default();
        opts.timeout = self.query_timeout;
        opts.attempts = self.attempts;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        // Our own semaphore bounds concurrency; never let hickory refuse with "busy" below it.
        opts.max_active_requests = opts.max_active_requests.max(self.max_in_flight);
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| DnsConfigError(format!("cannot set up the DNS resolver: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_forms() {
        assert_eq!(
            parse_server("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(
            parse_server("[::1]:54").unwrap(),
            "[::1]:54".parse().unwrap()
        );
        assert!(parse_server("dns.example").is_err());
    }

    #[test]
    fn no_nameserver_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "search example\noptions ndots:2\n").unwrap();
        let cfg = DnsConfig {
            resolv_conf: path.clone(),
            ..DnsConfig::default()
        };
        let e = cfg.name_servers().unwrap_err().to_string();
        assert!(
            e.contains("has no nameserver") && e.contains("--no-dns"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let missing = DnsConfig {
            resolv_conf: dir.path().join("absent"),
            ..DnsConfig::default()
        };
        assert!(missing
            .name_servers()
            .unwrap_err()
            .to_string()
            .contains("--no-dns"));
    }

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.53\nnameserver 2001:db8::53\n").unwrap();
        let cfg = DnsConfig {
            resolv_conf: path,
            ..DnsConfig::default()
        };
        assert_eq!(
            cfg.name_servers().unwrap(),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let base = DnsConfig {
            servers: vec!["127.0.0.1:5300".parse().unwrap()],
            ..DnsConfig::default()
        };
        assert!(base.validate().is_ok());
        let cases = [
            DnsConfig {
                query_timeout: Duration::ZERO,
                ..base.clone()
            },
            DnsConfig {
                cache_entries: 0,
                ..base.clone()
            },
            DnsConfig {
                min_ttl: Duration::from_secs(10),
                max_ttl: Duration::from_secs(5),
                ..base.clone()
            },
            DnsConfig {
                max_in_flight: 0,
                ..base.clone()
            },
            DnsConfig {
                max_in_flight: 10,
                max_pending: 5,
                ..base.clone()
            },
        ];
        for c in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(!e.is_empty() && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn explicit_servers_win() {
        let cfg = DnsConfig {
            servers: vec!["127.0.0.1:5300".parse().unwrap()],
            resolv_conf: "/nonexistent".into(),
            ..DnsConfig::default()
        };
        assert_eq!(cfg.name_servers().unwrap().len(), 1);
    }
}
