//! Asynchronous, cached, bounded reverse DNS (issue 5).
