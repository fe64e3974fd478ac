//! Exit statuses (sysexits.h values, so scripts and systemd can tell failures apart).
//! Documented in man/fwlog.8, EXIT STATUS.

/// Everything worked.
pub const OK: i32 = 0;
/// A runtime failure not covered below.
pub const FAILURE: i32 = 1;
/// Bad flags or arguments (EX_USAGE).
pub const USAGE: i32 = 64;
/// An input file is not a capture or is damaged (EX_DATAERR).
pub const DATA: i32 = 65;
/// An input file does not exist or cannot be opened (EX_NOINPUT).
pub const NO_INPUT: i32 = 66;
/// An output cannot be opened or written (EX_CANTCREAT).
pub const OUTPUT: i32 = 73;
/// The spool directory is unusable or locked by another fwlog (EX_TEMPFAIL).
pub const SPOOL: i32 = 75;
/// Missing permission or capability (EX_NOPERM).
pub const NO_PERM: i32 = 77;
