//! Output formats: fwlog, kernel, json (issue 2).
