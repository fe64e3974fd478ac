//! The one pipeline builder: the runtime, the resolver and the [`Processor`], the same way for
//! `fwlog run`, `fwlog read` and `fwlog replay`.
//!
//! The daemon starts the engine after `--user` (the runtime's threads and hickory's sockets
//! belong to the unprivileged user), so building is two steps: [`Engine::start`], then
//! [`Engine::processor`] once the source exists.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;

use super::outputs::Outputs;
use super::process::{Control, Processor};
use super::source::Source;
use crate::config::{DnsSettings, LoopConfig};
use crate::counters::Counters;
use crate::dns::{DnsConfigError, Resolver};
use crate::sdnotify::service::Service;
use crate::signals::Signals;

/// Why the pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The resolver's configuration is unusable (no name server, a bad address).
    #[error(transparent)]
    Dns(#[from] DnsConfigError),
    #[error("cannot install signal handler: {0}")]
    Signals(#[source] std::io::Error),
}

/// What the intake side and the processing loop share.
#[derive(Clone, Default)]
pub struct Shared {
    pub counters: Arc<Counters>,
    /// Poked by the source after each commit.
    pub wake: Arc<Notify>,
    /// Set to stop: intake stops; the loop finishes what is ready and returns.
    pub stop: Arc<AtomicBool>,
}

/// The runtime and the resolver on it.
pub struct Engine {
    pub rt: Runtime,
    pub resolver: Option<Resolver>,
    /// How long a packet waits for its names: `--dns-timeout`, or zero without a resolver.
    pub dns_timeout: Duration,
}

/// How a resolver that cannot start is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsStart {
    /// An error (the daemon: a log without the names asked for is the wrong log).
    Required,
    /// When no server was named, warn and print addresses (reading a file should not fail for
    /// want of DNS); an explicit `--dns-server` that fails is still an error.
    BestEffort,
}

impl Engine {
    pub fn start(dns: &DnsSettings, mode: DnsStart) -> Result<Engine, BuildError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(BuildError::Runtime)?;
        let resolver = match &dns.resolver {
            None => None,
            Some(cfg) => {
                let explicit = !cfg.servers.is_empty();
                match Resolver::new(cfg.clone(), rt.handle().clone()) {
                    Ok(r) => Some(r),
                    Err(e) if mode == DnsStart::BestEffort && !explicit => {
                        eprintln!("fwlog: {e}; printing addresses without names");
                        None
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let dns_timeout = if resolver.is_some() {
            dns.packet_timeout
        } else {
            Duration::ZERO
        };
        Ok(Engine {
            rt,
            resolver,
            dns_timeout,
        })
    }

    /// Install the signal handlers (see [`crate::signals`]) and return the requests they
    /// become, for [`Engine::processor`].
    pub fn signals(&self) -> Result<UnboundedReceiver<Control>, BuildError> {
        let _in_runtime = self.rt.enter();
        Ok(Signals::install().map_err(BuildError::Signals)?.forward())
    }

    /// The processing loop over `source`, writing to `outputs`, taking requests from `control`.
    pub fn processor<S: Source>(
        &self,
        source: S,
        outputs: Outputs,
        bounds: LoopConfig,
        shared: &Shared,
        control: UnboundedReceiver<Control>,
        service: Option<Service>,
    ) -> Processor<S> {
        Processor {
            source,
            outputs,
            resolver: self.resolver.clone(),
            geo: None,
            dns_timeout: self.dns_timeout,
            window_cap: bounds.window.max(1),
            counters: Arc::clone(&shared.counters),
            data_wake: Arc::clone(&shared.wake),
            stop: Arc::clone(&shared.stop),
            control,
            stop_grace: bounds.stop_grace,
            retry_outputs: bounds.retry_outputs,
            live_span: bounds.live_span,
            inline_slow: super::process::INLINE_SLOW,
            service,
        }
    }
}
