//! Remote syslog: Debian's rsyslogd, started by the test inside the test's namespace, receives
//! fwlog's lines over UDP (kernel format, tagged `kernel:` as fail2ban and psad expect) and TCP
//! (fwlog format, tagged `fwlog:`).

mod support;

use std::process::{Child, Stdio};
use std::time::Duration;

use support::daemon::{send_udp, wait_for, Daemon};
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
    ns.nft("table inet t {\n chain o {\n  type filter hook output priority 0;\n  udp dport 9999 log prefix \"RSYS \" group 5\n }\n}\n");
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

    let d = Daemon::start(
        &ns,
        dir.path(),
        &[
            "--group",
            "5",
            "--no-dns",
            "--spool",
            dir.path().join("spool").to_str().unwrap(),
            "--output",
            "kernel=udp://127.0.0.1:5514",
            "--output",
            "fwlog=tcp://127.0.0.1:5514",
        ],
    );
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
