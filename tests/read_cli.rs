//! `fwlog read` as a user runs it: the README's sample, bad and missing files, bad flags, help.

use std::process::Command;

fn fwlog(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fwlog"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_readme_sample_prints_in_every_format() {
    // As the README's first command, without DNS (tests never ask the machine's resolver).
    let (code, out, err) = fwlog(&["read", "--no-dns", "tests/data/sample.pcap"]);
    assert_eq!(code, 0, "{err}");
    let blocks = out.split("\n\n").filter(|b| b.starts_with("PKT:")).count();
    assert!(blocks >= 20, "{out}");
    assert!(out.contains("prefix \"fw-in \"") && out.contains("prefix \"fw-out \""));
    assert!(out.contains("ICMP: type 3 (destination-unreachable), code 3 (port-unreachable)"));
    assert!(
        out.contains("ICMP6: type 128 (echo-request)")
            && out.contains("UDP:")
            && out.contains("TCP:")
    );
    let (code, kern, _) = fwlog(&[
        "read",
        "--no-dns",
        "--format",
        "kernel",
        "tests/data/sample.pcap",
    ]);
    assert_eq!(code, 0);
    assert_eq!(kern.lines().count(), blocks);
    assert!(
        kern.lines()
            .all(|l| l.contains(" kernel: fw-") && l.ends_with(' ')),
        "{kern}"
    );
    let (code, json, _) = fwlog(&[
        "read",
        "--no-dns",
        "--format",
        "json",
        "tests/data/sample.pcap",
    ]);
    assert_eq!(code, 0);
    for l in json.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["group"], 9);
    }
}

#[test]
fn bad_inputs_get_one_line_naming_the_file_and_the_rest_still_prints() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").unwrap();
    let cut = dir.path().join("cut.pcap");
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sample.pcap"
    ))
    .unwrap();
    std::fs::write(&cut, &sample[..sample.len() - 7]).unwrap();
    let missing = dir.path().join("missing.pcap");

    let (code, out, err) = fwlog(&["read", "--no-dns", junk.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (65, ""));
    assert_eq!(
        err.trim(),
        format!("fwlog: {}: not a pcap or pcapng file", junk.display())
    );

    let (code, _, err) = fwlog(&["read", "--no-dns", missing.to_str().unwrap()]);
    assert_eq!(code, 66, "{err}");
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.contains("missing.pcap") && err.contains("No such file"),
        "{err}"
    );

    // A cut file prints what it holds, then says where it stopped.
    let (code, out, err) = fwlog(&[
        "read",
        "--no-dns",
        "-f",
        "kernel",
        cut.to_str().unwrap(),
        "tests/data/sample.pcap",
    ]);
    assert_eq!(code, 65, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cut.pcap: truncated after"), "{err}");
    let full = fwlog(&["read", "--no-dns", "-f", "kernel", "tests/data/sample.pcap"]).1;
    assert_eq!(
        out.lines().count(),
        2 * full.lines().count() - 1,
        "the cut file's whole records and all of the good one"
    );
}

#[test]
fn bad_flags_are_usage_errors_and_help_describes_the_flags() {
    let (code, _, err) = fwlog(&["read", "--format", "xml", "x.pcap"]);
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = fwlog(&["read", "--log-flags", "tcp-sequence,bogus", "x.pcap"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("bogus"), "{err}");
    let (code, _, _) = fwlog(&["read"]);
    assert_eq!(code, 64);
    let (code, help, _) = fwlog(&["read", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--format",
        "--log-flags",
        "--no-syslog-header",
        "--output",
        "--no-dns",
        "--dns-server",
        "--ifnames",
    ] {
        assert!(help.contains(flag), "{flag} in read --help");
    }
    let (code, help, _) = fwlog(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["run", "read", "replay"] {
        assert!(help.contains(cmd), "{cmd} in --help");
    }
    let (code, v, _) = fwlog(&["--version"]);
    assert_eq!((code, v.trim()), (0, "fwlog 0.9.0"));
}
