//! Standard output as an output (`-o -`): written so that a reader that stops reading cannot
//! hold the processing loop.
//!
//! What fd 1 is decides how it is written:
//! - a pipe, FIFO or character device other than a terminal (`fwlog run -o - | consumer`,
//!   `>/dev/null`): written non-blocking, like a FIFO output (see [`super::file`]), so a stalled
//!   reader makes a write return [`io::ErrorKind::WouldBlock`] and the loop waits and retries
//!   while it still answers TERM, HUP and USR1. O_NONBLOCK belongs to the open file
//!   description, which fd 1 shares with the processes that started fwlog (a shell, systemd,
//!   and fd 2 when stderr is the same pipe): setting it there would make their writes fail with
//!   EAGAIN. So fwlog opens the pipe or device again through `/proc/self/fd/1`, a description
//!   of its own, write-only (never a reader of its own pipe, so a reader that goes away still
//!   gives EPIPE).
//! - a socket (systemd's `StandardOutput=journal` is a stream socket): `send` with
//!   MSG_DONTWAIT, non-blocking per call, the socket's flags untouched;
//! - a regular file or a terminal, or anything when `/proc` is not mounted: written as before,
//!   blocking, through Rust's stdout.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

pub(super) enum Stdout {
    /// A regular file or a terminal: Rust's (blocking) stdout.
    Blocking,
    /// A stream socket (this fd), written with `send(MSG_DONTWAIT)`.
    Socket(RawFd),
    /// The pipe or device opened again, non-blocking.
    Stream(File),
}

impl Stdout {
    /// Look at fd 1 and pick how to write it (once, when the output opens).
    pub(super) fn open() -> Stdout {
        Stdout::of(io::stdout().as_raw_fd())
    }

    /// How to write `fd` as standard output is written: [`Stdout::Blocking`] means through
    /// Rust's stdout, so only fd 1 gets it from production code.
    fn of(fd: RawFd) -> Stdout {
        // SAFETY: isatty has no memory-safety preconditions.
        if unsafe { libc::isatty(fd) } == 1 {
            return Stdout::Blocking;
        }
        // SAFETY: an all-zero stat is a valid value; fstat writes into it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid, writable stat for the call.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Stdout::Blocking;
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFSOCK => return Stdout::Socket(fd),
            libc::S_IFIFO | libc::S_IFCHR => {}
            _ => return Stdout::Blocking,
        }
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(format!("/proc/self/fd/{fd}"))
            .map_or(Stdout::Blocking, Stdout::Stream)
    }

    /// The descriptor written non-blocking (None: Rust's blocking stdout).
    pub(super) fn raw_fd(&self) -> Option<RawFd> {
        match self {
            Stdout::Blocking => None,
            Stdout::Socket(fd) => Some(*fd),
            Stdout::Stream(f) => Some(f.as_raw_fd()),
        }
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stdout::Blocking => io::stdout().lock().write(buf),
            Stdout::Stream(f) => f.write(buf),
            Stdout::Socket(fd) => {
                // SAFETY: `buf` is valid for its length for the call; `fd` is fd 1, which
                // fwlog never closes (a closed one fails with EBADF, no harm).
                let n = unsafe {
                    libc::send(
                        *fd,
                        buf.as_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }
        }
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self {
            Stdout::Blocking => io::stdout().lock().flush(),
            Stdout::Stream(_) | Stdout::Socket(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both were just created and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn nonblock(fd: RawFd) -> bool {
        // SAFETY: F_GETFL has no memory-safety preconditions.
        unsafe { libc::fcntl(fd, libc::F_GETFL) & libc::O_NONBLOCK != 0 }
    }

    #[test]
    fn a_pipe_nobody_reads_gives_would_block_and_the_shared_fd_stays_blocking() {
        let (_r, w) = pipe();
        let mut out = Stdout::of(w.as_raw_fd());
        assert!(matches!(out, Stdout::Stream(_)));
        let chunk = [b'x'; 4096];
        let mut written = 0;
        let err = loop {
            match out.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(written < 64 << 20, "a pipe holds far less");
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(written >= 4096, "{written}");
        assert!(
            !nonblock(w.as_raw_fd()),
            "the inherited description is untouched"
        );
    }

    #[test]
    fn a_closed_reader_is_a_broken_pipe_not_a_stall() {
        let (r, w) = pipe();
        let mut out = Stdout::of(w.as_raw_fd());
        drop(r);
        let e = out.write(b"line\n").expect_err("no reader");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_socket_is_sent_to_without_blocking_and_a_file_stays_blocking() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut out = Stdout::of(a.as_raw_fd());
        assert!(matches!(out, Stdout::Socket(_)));
        let e = loop {
            if let Err(e) = out.write(&[0u8; 65536]) {
                break e;
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(!nonblock(a.as_raw_fd()));
        let f = tempfile::tempfile().unwrap();
        assert!(matches!(Stdout::of(f.as_raw_fd()), Stdout::Blocking));
        let null = File::options().write(true).open("/dev/null").unwrap();
        assert!(matches!(Stdout::of(null.as_raw_fd()), Stdout::Stream(_)));
    }
}
