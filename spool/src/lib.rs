//! fwlog's spool: a crash-safe, segmented, append-only FIFO of checksummed records.
//!
//! (Being built under issue 3; see `../shared/notes/spool.md` for the requirements.)
