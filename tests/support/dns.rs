//! Test fixtures for the reverse-DNS tests: a real authoritative server (Debian's `nsd`) on
//! loopback with query counting through `nsd-control`, and a hand-made UDP responder for answers
//! no real server would send. Both listen only on 127.0.0.1 ports the test picked; nothing here
//! ever talks to the machine's resolver.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A free loopback port for both UDP and TCP (nsd listens on both).
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

/// A running `nsd -d`, stopped (SIGTERM, then waited for) on drop.
pub struct Nsd {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    control: PathBuf,
    conf: PathBuf,
}

/// Zones as (origin, zone file text).
pub type Zones<'a> = &'a [(&'a str, &'a str)];

impl Nsd {
    /// Start nsd serving `zones`, or `None` (with a printed reason) when nsd is not installed.
    pub fn start(zones: Zones<'_>) -> Option<Nsd> {
        let (Some(nsd), Some(_)) = (which("nsd"), which("nsd-control")) else {
            eprintln!("SKIP: nsd / nsd-control not installed (apt-get install nsd)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let port = free_port();
        let control = d.join("nsd.ctl");
        let mut conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  username: \"\"\n  chroot: \"\"\n  \
             zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  \
             xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
             logfile: \"{d}/nsd.log\"\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n  \
             server-count: 1\n  verbosity: 1\nremote-control:\n  control-enable: yes\n  \
             control-interface: {ctl}\n",
            d = d.display(),
            ctl = control.display()
        );
        for (i, (origin, text)) in zones.iter().enumerate() {
            let file = format!("z{i}.zone");
            std::fs::write(d.join(&file), text).expect("write zone");
            conf.push_str(&format!(
                "zone:\n  name: \"{origin}\"\n  zonefile: \"{file}\"\n"
            ));
        }
        let conf_path = d.join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("write nsd.conf");
        let child = Command::new(nsd)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nsd");
        let n = Nsd {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            control,
            conf: conf_path,
        };
        n.wait_ready();
        Some(n)
    }

    fn wait_ready(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if self.try_queries().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("nsd.log")).unwrap_or_default();
        panic!("nsd did not come up in 10 s; log:\n{log}");
    }

    fn try_queries(&self) -> Option<u64> {
        let out = Command::new(which("nsd-control")?)
            .arg("-c")
            .arg(&self.conf)
            .arg("stats_noreset")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("num.queries="))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Queries the server has received so far (its own statistics, via nsd-control).
    pub fn queries(&self) -> u64 {
        self.try_queries().expect("nsd-control stats_noreset")
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        // SIGTERM lets nsd stop its server child too (SIGKILL would orphan it).
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain kill(2) on the pid of the child this struct spawned and still owns.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let _ = self.child.wait();
    }
}

/// A question as the hand-made responder sees it.
pub struct Question {
    /// Raw labels of the query name, most specific first.
    pub labels: Vec<Vec<u8>>,
    pub qtype: u16,
}

/// What the responder sends back for one question.
pub enum Reply {
    /// NOERROR with these PTR names (each a list of raw labels), TTL 300.
    Ptr(Vec<Vec<Vec<u8>>>),
    /// NXDOMAIN, no SOA.
    NxDomain,
    /// Send nothing.
    Silence,
    /// Send the given bytes after the DNS header and question (for malformed rdata).
    RawAnswer { ancount: u16, bytes: Vec<u8> },
}

/// A UDP responder on 127.0.0.1 answering with hand-made DNS messages; stops on drop.
pub struct Responder {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

fn parse_question(buf: &[u8]) -> Option<(Question, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*buf.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(buf.get(i..i + len)?.to_vec());
        i += len;
    }
    let qtype = u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?]);
    Some((Question { labels, qtype }, i + 4))
}

/// Wire form of a name given as raw labels (no compression, no validation: the point is to
/// send what a hostile server would).
pub fn encode_name(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in labels {
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
    out
}

fn build_reply(query: &[u8], qend: usize, reply: &Reply) -> Option<Vec<u8>> {
    let (rcode, ancount, answers) = match reply {
        Reply::Silence => return None,
        Reply::NxDomain => (3u16, 0u16, Vec::new()),
        Reply::RawAnswer { ancount, bytes } => (0, *ancount, bytes.clone()),
        Reply::Ptr(names) => {
            let mut a = Vec::new();
            for n in names {
                let rdata = encode_name(n);
                a.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1]);
                a.extend_from_slice(&300u32.to_be_bytes());
                a.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                a.extend_from_slice(&rdata);
            }
            (0, names.len() as u16, a)
        }
    };
    let rd = u16::from_be_bytes([query[2], query[3]]) & 0x0100;
    let flags: u16 = 0x8400 | rd | rcode;
    let mut out = Vec::with_capacity(qend + answers.len());
    out.extend_from_slice(&query[0..2]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ancount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..qend]);
    out.extend_from_slice(&answers);
    Some(out)
}

impl Responder {
    /// Answer each question with `answer(question)`, after `delay`.
    pub fn start<F>(delay: Duration, answer: F) -> Responder
    where
        F: Fn(&Question) -> Reply + Send + 'static,
    {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind responder");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let queries = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut delayed: Vec<(Instant, Vec<u8>, SocketAddr)> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let now = Instant::now();
                delayed.retain(|(due, msg, to)| {
                    if *due <= now {
                        let _ = sock.send_to(msg, to);
                        false
                    } else {
                        true
                    }
                });
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                q.fetch_add(1, Ordering::Relaxed);
                let Some((question, qend)) = parse_question(&buf[..n]) else {
                    continue;
                };
                if let Some(msg) = build_reply(&buf[..n], qend, &answer(&question)) {
                    delayed.push((Instant::now() + delay, msg, from));
                }
            }
        });
        Responder {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    /// A server that receives and never answers.
    pub fn black_hole() -> Responder {
        Responder::start(Duration::ZERO, |_| Reply::Silence)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Undo `\DDD` escapes of a `SafeName` text into raw bytes per label (for round-trip checks).
pub fn unescape_labels(text: &str) -> Vec<Vec<u8>> {
    let b = text.as_bytes();
    let mut labels = vec![Vec::new()];
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let v: u16 = std::str::from_utf8(&b[i + 1..i + 4])
                    .unwrap()
                    .parse()
                    .unwrap();
                labels.last_mut().unwrap().push(u8::try_from(v).unwrap());
                i += 4;
            }
            b'.' => {
                labels.push(Vec::new());
                i += 1;
            }
            c => {
                labels.last_mut().unwrap().push(c);
                i += 1;
            }
        }
    }
    labels
}

/// Assert the SafeName text invariants: allow-list plus well-formed `\DDD` only.
pub fn assert_safe_text(text: &str) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let d = b
                .get(i + 1..i + 4)
                .unwrap_or_else(|| panic!("short escape in {text:?}"));
            assert!(d.iter().all(u8::is_ascii_digit), "bad escape in {text:?}");
            let v: u16 = std::str::from_utf8(d).unwrap().parse().unwrap();
            assert!(v <= 255, "escape out of range in {text:?}");
            i += 4;
        } else {
            assert!(
                c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.',
                "byte {c:#04x} outside the allow-list in {text:?}"
            );
            i += 1;
        }
    }
}

fn l(s: &[u8]) -> Vec<u8> {
    s.to_vec()
}

/// Case number (last octet of 192.0.2.N) -> the PTR name served, as raw labels.
pub fn hostile_cases() -> Vec<Vec<Vec<u8>>> {
    let all_low: Vec<u8> = (0u8..=127).collect();
    let all_high: Vec<u8> = (128u8..=255).collect();
    vec![
        vec![
            l(b"evil\nDec 1 00:00:00 host sshd: Accepted"),
            l(b"example"),
        ],
        vec![l(b"cr\rhere"), l(b"example")],
        vec![l(b"\x1b[31mred\x1b]0;title\x07"), l(b"example")],
        vec![l(b"nul\0byte"), l(b"example")],
        vec![l(b"has spaces in it"), l(b"example")],
        vec![l(b"paren(s)"), l(b"x"), l(b"example")],
        vec![l(b"caf\xc3\xa9\xff\xfe"), l(b"example")],
        // Punycode labels: hickory's to_utf8() would decode these; we never do.
        vec![l(b"xn--a\nfake-gva"), l(b"example")],
        vec![l(b"xn--a\x1bfake-gva"), l(b"xn--ls8h"), l(b"example")],
        vec![l(b"1"), l(b"2"), l(b"3"), l(b"4")],
        vec![
            l(b"10"),
            l(b"0"),
            l(b"0"),
            l(b"1"),
            l(b"evil"),
            l(b"example"),
        ],
        vec![l(b"back\\slash\\010"), l(b"example")],
        vec![l(b"dot.inside"), l(b"example")],
        vec![l(b"tab\tdel\x7f"), l(b"example")],
        vec![l(b"quote\"'`$;|&<>"), l(b"example")],
        vec![
            all_low[..43].to_vec(),
            all_low[43..86].to_vec(),
            all_low[86..].to_vec(),
        ],
        vec![
            all_high[..63].to_vec(),
            all_high[63..126].to_vec(),
            all_high[126..].to_vec(),
        ],
        // Valid on the wire (< 255 bytes) but far over the cap once escaped.
        vec![
            vec![0x1b; 63],
            vec![b'\n'; 63],
            vec![0xff; 63],
            vec![b' '; 60],
        ],
        // 253 plain characters: the longest name that needs no escaping fits exactly.
        vec![
            vec![b'a'; 63],
            vec![b'b'; 63],
            vec![b'c'; 63],
            vec![b'd'; 61],
        ],
    ]
}
