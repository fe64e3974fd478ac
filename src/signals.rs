//! The one owner of the signals fwlog acts on. They become [`Control`] requests to the
//! processing loop, so the loop itself knows nothing about signals (and a test can send it the
//! same requests).
//!
//! | signal | request |
//! |---|---|
//! | SIGHUP | [`Control::Reopen`] |
//! | SIGUSR1 | [`Control::Counters`] |
//! | SIGTERM, SIGINT | [`Control::Stop`] |

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// A request to the processing loop (`pipeline::process`), from the signals or a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Reopen every output (SIGHUP: logrotate, `systemctl reload`).
    Reopen,
    /// Print the counters to stderr (SIGUSR1).
    Counters,
    /// Finish what is ready and return (SIGTERM, SIGINT).
    Stop,
}

/// Installed handlers, not yet forwarding.
pub struct Signals {
    hup: Signal,
    usr1: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Install the handlers. Must run inside a tokio runtime context; from here on the signals
    /// no longer have their default action (ending the process).
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Spawn (on the current runtime) the task that forwards signals as requests; it ends when
    /// the receiver is dropped.
    pub fn forward(self) -> UnboundedReceiver<Control> {
        let (tx, rx) = unbounded_channel();
        tokio::spawn(self.run(tx));
        rx
    }

    async fn run(mut self, tx: UnboundedSender<Control>) {
        loop {
            let c = tokio::select! {
                _ = self.hup.recv() => Control::Reopen,
                _ = self.usr1.recv() => Control::Counters,
                _ = self.term.recv() => Control::Stop,
                _ = self.int.recv() => Control::Stop,
                _ = tx.closed() => return,
            };
            if tx.send(c).is_err() {
                return;
            }
        }
    }
}
