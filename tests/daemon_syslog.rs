//! Remote syslog: Debian's rsyslogd, started by the test inside the test's namespace, receives
//! fwlog's lines over UDP (kernel format, tagged `kernel:` as fail2ban and psad expect) and TCP
//! (fwlog format, tagged `fwlog:`).

mod support;

use std::process::{Child, Stdio};
use std::time::Duration;

use support::daemon::{send_udp, wait_for, RunArgs};
use support::netns::NetNs;

struct Rsyslog(Child);

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rsyslog_on_loopback_receives_kernel_and_fwlog_lines() {
    require_root!();
    support::require_tool("rsyslogd");
    let ns = NetNs::new("rsys");
    ns.output_rules(&["udp dport 9999 log prefix \"RSYS \" group 5"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("received.log");
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{work}\")\n\
             module(load=\"imudp\")\nmodule(load=\"imtcp\")\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"5514\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"5514\")\n\
             *.* action(type=\"omfile\" file=\"{log}\")\n",
            work = dir.path().display(),
            log = log.display()
        ),
    )
    .unwrap();
    let child = ns
        .command("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    let _rsyslog = Rsyslog(child);
    wait_for("rsyslogd to listen", Duration::from_secs(20), || {
        ns.enter(|| std::net::TcpStream::connect("127.0.0.1:5514").is_ok())
    });

    let d = RunArgs::new(dir.path())
        .group(5)
        .output_to("kernel=udp://127.0.0.1:5514")
        .output_to("fwlog=tcp://127.0.0.1:5514")
        .start(&ns);
    send_udp(&ns, 9999, 0..20);
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        "20 kernel lines at rsyslog",
        Duration::from_secs(20),
        || text().matches(" kernel: RSYS IN= OUT=lo ").count() >= 20,
    );
    wait_for("fwlog blocks at rsyslog", Duration::from_secs(20), || {
        text().lines().filter(|l| l.contains(" fwlog: PKT")).count() >= 20
    });
    assert_eq!(d.stop(), 0);
    let t = text();
    for l in t.lines().filter(|l| l.contains(" kernel: RSYS")) {
        assert!(l.contains("PROTO=UDP") && l.contains("DPT=9999"), "{l}");
    }
}

/// A `tcp://` collector that vanishes behind a firewall dropping SYNs: fwlog's reconnect gives up
/// after 5 s, reports it and retries, instead of blocking its printing loop for the kernel's
/// SYN retries (about two minutes), and it still stops promptly on SIGTERM.
#[test]
fn a_tcp_output_behind_a_dropping_firewall_times_out_and_is_retried() {
    require_root!();
    let ns = NetNs::new("tcpdrop");
    ns.output_rules(&["udp dport 9999 log prefix \"DROP \" group 5"]);
    let listener = ns.enter(|| std::net::TcpListener::bind("127.0.0.1:5514").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let d = RunArgs::new(dir.path())
        .group(5)
        .output_to("tcp://127.0.0.1:5514")
        .start(&ns);
    let (conn, _) = listener.accept().unwrap();
    // The collector goes away; new connections are silently dropped from now on.
    ns.nft("table inet f {\n chain i {\n  type filter hook input priority 0;\n  tcp dport 5514 tcp flags syn drop\n }\n}\n");
    drop(conn);
    drop(listener);
    // The write fails (the connection is gone) and the reconnects begin. Each is cut off after
    // 5 s, so the printing loop comes round to answer SIGUSR1 and counts another output error;
    // a blocking connect would hold it for the kernel's SYN retries (about two minutes).
    send_udp(&ns, 9999, 0..1);
    wait_for("the write to fail", Duration::from_secs(20), || {
        d.stderr_text().contains("cannot write to tcp://")
    });
    let errors = |text: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.split("output-errors=").nth(1))
            .filter_map(|v| v.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let end = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let seen = errors(&d.stderr_text());
        if seen.len() >= 2 && seen.last() > seen.first() {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the printing loop did not come round while reconnecting; fwlog said:\n{}",
            d.stderr_text()
        );
        d.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_secs(2));
    }
    // A reconnect may be under way (at most its 5 s limit); a failing output is not retried
    // while stopping, so fwlog exits well within the helper's 20 s.
    assert_eq!(d.stop(), 0);
}
