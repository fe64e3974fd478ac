//! TCP options (in progress).
