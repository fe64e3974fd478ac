//! The `--metrics` HTTP endpoint: just enough HTTP/1.1 to answer a Prometheus scrape.
//!
//! Written by hand rather than with an HTTP server crate because it serves one read-only
//! document and must stay small and bounded: the whole protocol here is one request head
//! read, one response written, the connection closed.
//!
//! Limits (so a hostile or broken client cannot stall the daemon or grow its memory):
//! - at most [`MAX_CONNECTIONS`] connections are served at once; beyond that a new
//!   connection is closed at once (the scraper retries at its next interval);
//! - a request head larger than [`MAX_HEAD`] bytes is answered 431 and closed, without
//!   reading more;
//! - the request head must arrive within [`READ_TIMEOUT`] and the response be taken within
//!   [`WRITE_TIMEOUT`], or the connection is closed;
//! - everything runs on the endpoint's own thread and runtime, never on intake's thread or
//!   the processing loop's runtime.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{render, MetricsSource};

pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_HEAD: usize = 8 * 1024;
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bind `addr` now (so a taken port is an error at start-up) and serve on a thread of its own.
pub fn spawn(addr: SocketAddr, src: MetricsSource) -> io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("--metrics {addr}: {e}")))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("fwlog-metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(l) => serve(l, src).await,
                    Err(e) => eprintln!("fwlog: --metrics {local}: {e}"),
                }
            })
        })?;
    Ok(local)
}

async fn serve(listener: TcpListener, src: MetricsSource) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let src = src.clone();
        tokio::spawn(async move {
            let _ = answer(stream, &src).await;
            drop(permit);
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    Bad,
}

fn parse(head: &[u8]) -> Ask {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ask::Bad;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Ask::Bad;
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return Ask::BadMethod,
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if path == b"/metrics" {
        Ask::Metrics { head_only }
    } else {
        Ask::NotFound
    }
}

/// Read until the end of the request head; None when it is too large.
async fn read_head(s: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Ok(None);
        }
        let got = s.read(&mut buf[n..]).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n += got;
        let h = &buf[..n];
        if h.windows(4).any(|w| w == b"\r\n\r\n") || h.windows(2).any(|w| w == b"\n\n") {
            buf.truncate(n);
            return Ok(Some(buf));
        }
    }
}

async fn answer(mut s: TcpStream, src: &MetricsSource) -> io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut s)).await {
        Ok(Ok(h)) => h,
        // Timed out, closed or failed before a whole head: nothing to answer.
        Ok(Err(_)) | Err(_) => return Ok(()),
    };
    let (status, body, head_only) = match head.as_deref().map(parse) {
        None => ("431 Request Header Fields Too Large", String::new(), false),
        Some(Ask::Metrics { head_only }) => ("200 OK", render(src), head_only),
        Some(Ask::NotFound) => ("404 Not Found", "not found; try /metrics\n".into(), false),
        Some(Ask::BadMethod) => ("405 Method Not Allowed", String::new(), false),
        Some(Ask::Bad) => ("400 Bad Request", String::new(), false),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        if status.starts_with("200") {
            // What prometheus-client writes: OpenMetrics text (ends in `# EOF`).
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        },
        body.len()
    );
    if status.starts_with("405") {
        resp.push_str("Allow: GET, HEAD\r\n");
    }
    resp.push_str("\r\n");
    if !head_only {
        resp.push_str(&body);
    }
    let write = async {
        s.write_all(resp.as_bytes()).await?;
        s.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ask::Metrics { head_only: false }
        );
        assert_eq!(
            parse(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Ask::Metrics { head_only: true }
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Ask::NotFound);
        assert_eq!(
            parse(b"GET /metrics/../etc HTTP/1.1\r\n\r\n"),
            Ask::NotFound
        );
        assert_eq!(parse(b"POST /metrics HTTP/1.1\r\n\r\n"), Ask::BadMethod);
        assert_eq!(parse(b"GET /metrics\r\n\r\n"), Ask::Bad);
        assert_eq!(parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\n\n"), Ask::Bad);
        assert_eq!(parse(b"GET /metrics SPDY/3\r\n\r\n"), Ask::Bad);
    }
}
