//! Running the pipeline over a producer thread: shared by `fwlog read` and `fwlog replay`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::cli::{DnsArgs, FormatArgs};
use crate::exit;
use crate::pipeline::counters::Counters;
use crate::pipeline::outputs::Outputs;
use crate::pipeline::process::{Processor, BROKEN_PIPE};
use crate::pipeline::source::{channel, Producer};
use crate::sink::OutputSpec;

/// The outputs given, or standard output when none is.
pub fn outputs_or_stdout(given: &[OutputSpec]) -> Vec<OutputSpec> {
    if given.is_empty() {
        vec![OutputSpec {
            format: None,
            target: crate::sink::Target::Stdout,
        }]
    } else {
        given.to_vec()
    }
}

/// Print what `produce` hands over (on its own thread) to `specs`, resolving names unless
/// `--no-dns`. Returns the exit status: the worse of the producer's and the pipeline's.
pub fn run(
    specs: &[OutputSpec],
    fmt: &FormatArgs,
    dns: &DnsArgs,
    produce: impl FnOnce(Producer) -> i32 + Send + 'static,
) -> i32 {
    let geo = match crate::geo::Geo::open(&super::geo_config(fmt)) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return exit::NO_INPUT;
        }
    };
    let outputs = match Outputs::open(specs, fmt.format, &super::format_options(fmt), false) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return exit::OUTPUT;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fwlog: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let resolver = if dns.no_dns {
        None
    } else {
        let cfg = match crate::daemon::dns_config(dns) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fwlog: {e}");
                return exit::USAGE;
            }
        };
        let explicit = !cfg.servers.is_empty();
        match crate::dns::Resolver::new(cfg, rt.handle().clone()) {
            Ok(r) => Some(r),
            // Reading a file should not fail for want of DNS: say so and print numbers.
            Err(e) if !explicit => {
                eprintln!("fwlog: {e}; printing addresses without names");
                None
            }
            Err(e) => {
                eprintln!("fwlog: {e}");
                return exit::USAGE;
            }
        }
    };
    let wake = Arc::new(Notify::new());
    let (source, producer) = channel(1024, Arc::clone(&wake));
    let producer = match std::thread::Builder::new()
        .name("fwlog-reader".into())
        .spawn(move || produce(producer))
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("fwlog: cannot start the reader thread: {e}");
            return exit::FAILURE;
        }
    };
    let processor = Processor {
        source,
        outputs,
        dns_timeout: if resolver.is_some() {
            dns.dns_timeout
        } else {
            Duration::ZERO
        },
        resolver,
        geo,
        window_cap: 4096,
        counters: Arc::new(Counters::default()),
        data_wake: wake,
        stop: Arc::new(AtomicBool::new(false)),
        stop_grace: Duration::from_millis(200),
        retry_outputs: false,
        service: None,
    };
    let result = rt.block_on(processor.run());
    // The pipeline is gone: the producer's next send fails and it returns.
    let produced = producer.join().unwrap_or(exit::FAILURE);
    let piped = match result {
        Ok(()) => exit::OK,
        Err(e) if e == BROKEN_PIPE => return exit::OK,
        Err(e) => {
            eprintln!("fwlog: {e}");
            if e.starts_with("cannot write") {
                exit::OUTPUT
            } else {
                exit::FAILURE
            }
        }
    };
    produced.max(piped)
}
