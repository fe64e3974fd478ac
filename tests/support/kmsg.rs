//! Reading the kernel's own LOG lines from /dev/kmsg: the oracle for `--format kernel`.
//!
//! The LOG target (nft `log` without `group`) in a non-initial namespace prints only with
//! `net.netfilter.nf_log_all_netns=1`. Each read() of /dev/kmsg returns one record,
//! `prio,seq,usec,flags;TEXT\n` followed by optional ` KEY=value` continuation lines.
//! The kernel escapes unprintable bytes in TEXT as `\xNN`.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

pub struct Kmsg {
    file: File,
}

/// Make the kernel log packets from every namespace (global sysctl; harmless to leave on).
pub fn enable_log_all_netns() {
    std::fs::write("/proc/sys/net/netfilter/nf_log_all_netns", "1")
        .expect("set net.netfilter.nf_log_all_netns=1 (is nf_log_syslog loaded?)");
}

impl Kmsg {
    /// Open /dev/kmsg positioned after everything logged so far.
    pub fn open_at_end() -> Kmsg {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("open /dev/kmsg");
        file.seek(SeekFrom::End(0)).expect("seek /dev/kmsg");
        Kmsg { file }
    }

    /// Collect the text of records whose text starts with `prefix`, until `count` have been
    /// seen or `timeout` passes. Returns them in kernel order.
    pub fn collect(&mut self, prefix: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while out.len() < count && Instant::now() < deadline {
            match self.file.read(&mut buf) {
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let Some((_, text)) = rec.split_once(';') else {
                        continue;
                    };
                    let text = text.split('\n').next().unwrap_or("");
                    if text.starts_with(prefix) {
                        out.push(text.to_string());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                // EPIPE: the ring buffer overwrote records we had not read yet.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) => panic!("read /dev/kmsg: {e}"),
            }
        }
        out
    }
}

/// Undo the kernel's `\xNN` escaping of unprintable bytes in /dev/kmsg text.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b.get(i + 1) == Some(&b'x') {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
