//! Running the pipeline over a producer thread: shared by `fwlog read` and `fwlog replay`.

use std::sync::Arc;

use crate::config::{DnsSettings, FormatConfig, LoopConfig, OutputsConfig};
use crate::exit;
use crate::pipeline::build::{BuildError, DnsStart, Engine, Shared};
use crate::pipeline::outputs::{sql_config, Outputs};
use crate::pipeline::process::ProcessError;
use crate::pipeline::source::{channel, Producer};
use crate::sink::sql::stream::StreamError;
use crate::sink::sql::StreamId;

/// The exit status for a pipeline that could not be built.
pub fn build_status(e: &BuildError) -> i32 {
    match e {
        BuildError::Runtime(_) | BuildError::Signals(_) => exit::FAILURE,
        BuildError::Dns(_) => exit::USAGE,
    }
}

/// Print what `produce` hands over (on its own thread) to `outputs`, resolving names unless
/// `--no-dns`. Returns the exit status: the worse of the producer's and the pipeline's.
pub fn run(
    outputs: &OutputsConfig,
    fmt: &FormatConfig,
    dns: &DnsSettings,
    stream: impl FnOnce() -> Result<StreamId, StreamError>,
    produce: impl FnOnce(Producer) -> i32 + Send + 'static,
) -> i32 {
    let geo = match crate::geo::Geo::open(&fmt.geo) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return exit::NO_INPUT;
        }
    };
    let db = match sql_config(outputs, stream) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return exit::OUTPUT;
        }
    };
    let outputs = match Outputs::open(
        &outputs.specs,
        fmt.kind,
        &fmt.options,
        outputs.sync_files,
        db.as_ref(),
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return exit::OUTPUT;
        }
    };
    let engine = match Engine::start(dns, DnsStart::BestEffort) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return build_status(&e);
        }
    };
    let control = match engine.signals() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fwlog: {e}");
            return build_status(&e);
        }
    };
    let shared = Shared::default();
    let (source, producer) = channel(1024, Arc::clone(&shared.wake));
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
    let mut processor =
        engine.processor(source, outputs, LoopConfig::batch(), &shared, control, None);
    processor.geo = geo;
    let result = engine.rt.block_on(processor.run());
    // The pipeline is gone: the producer's next send fails and it returns.
    let produced = producer.join().unwrap_or(exit::FAILURE);
    let piped = match result {
        Ok(()) => exit::OK,
        Err(ProcessError::OutputClosed) => return exit::OK,
        Err(e @ ProcessError::Output { .. }) => {
            eprintln!("fwlog: {e}");
            exit::OUTPUT
        }
        Err(e @ ProcessError::Source(_)) => {
            eprintln!("fwlog: {e}");
            exit::FAILURE
        }
    };
    produced.max(piped)
}
