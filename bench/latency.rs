//! End-of-DATA → 250 latency, measured by a client that costs the machine
//! little: CONCURRENCY sessions on one thread (tokio's current-thread runtime),
//! one SMTP session per message, each timing from writing the final
//! `.<CRLF>` to reading the whole reply. `bench/relay.py` uses it when built
//! (`cargo build --release --example latency`), else `bench/latency.py`, whose
//! interpreter adds its own per-reply cost at 50 sessions.
//!
//!   latency PORT COUNT CONCURRENCY SIZE [FROM] [TO]   -> prints JSON
//!   {"n": ..., "p50_ms": ..., "p99_ms": ..., "failed": ..., "client": "rust"}

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Reader = BufReader<tokio::net::tcp::OwnedReadHalf>;

/// Reads one reply (all its lines); returns the code.
async fn reply(r: &mut Reader, line: &mut String) -> std::io::Result<u16> {
    loop {
        line.clear();
        if r.read_line(line).await? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let code = line.get(..3).and_then(|c| c.parse().ok());
        match (code, line.as_bytes().get(3)) {
            (Some(_), Some(b'-')) => continue,
            (Some(code), _) => return Ok(code),
            (None, _) => return Err(std::io::Error::other(format!("bad reply {line:?}"))),
        }
    }
}

async fn session(port: u16, body: &[u8], from: &str, to: &str) -> std::io::Result<Duration> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    if reply(&mut r, &mut line).await? != 220 {
        return Err(std::io::Error::other("greeting"));
    }
    let steps = [
        ("EHLO latency.test".to_string(), 250),
        (format!("MAIL FROM:<{from}>"), 250),
        (format!("RCPT TO:<{to}>"), 250),
        ("DATA".to_string(), 354),
    ];
    for (cmd, want) in steps {
        w.write_all(format!("{cmd}\r\n").as_bytes()).await?;
        let code = reply(&mut r, &mut line).await?;
        if code != want {
            return Err(std::io::Error::other(format!("{cmd}: {code}")));
        }
    }
    w.write_all(body).await?;
    let t0 = Instant::now();
    w.write_all(b".\r\n").await?;
    let code = reply(&mut r, &mut line).await?;
    let dt = t0.elapsed();
    let _ = w.write_all(b"QUIT\r\n").await;
    if code != 250 {
        return Err(std::io::Error::other(format!("end of data: {code}")));
    }
    Ok(dt)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> std::io::Result<usize> {
        args.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| {
            std::io::Error::other("usage: latency PORT COUNT CONCURRENCY SIZE [FROM] [TO]")
        })
    };
    let (port, count, conc, size) = (num(0)? as u16, num(1)?, num(2)?, num(3)?);
    let from = args
        .get(4)
        .cloned()
        .unwrap_or_else(|| "from@example.com".into());
    let to = args
        .get(5)
        .cloned()
        .unwrap_or_else(|| "to@remote.test".into());
    let mut body = format!("From: {from}\r\nTo: {to}\r\nSubject: latency\r\n\r\n").into_bytes();
    for _ in 0..(size / 78).max(1) {
        body.extend_from_slice(&[b'x'; 76]);
        body.extend_from_slice(b"\r\n");
    }
    let body = Rc::new(body);
    let left = Rc::new(Cell::new(count));
    let times = Rc::new(RefCell::new(Vec::with_capacity(count)));
    let failed = Rc::new(Cell::new(0usize));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let workers: Vec<_> = (0..conc)
            .map(|_| {
                let (body, left, times, failed) =
                    (body.clone(), left.clone(), times.clone(), failed.clone());
                let (from, to) = (from.clone(), to.clone());
                tokio::task::spawn_local(async move {
                    while left.get() > 0 {
                        left.set(left.get() - 1);
                        let run = session(port, &body, &from, &to);
                        match tokio::time::timeout(Duration::from_secs(60), run).await {
                            Ok(Ok(dt)) => times.borrow_mut().push(dt),
                            _ => failed.set(failed.get() + 1),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.await;
        }
    });
    let mut times = times.borrow().clone();
    times.sort();
    let pct = |p: f64| -> String {
        if times.is_empty() {
            return "null".into();
        }
        let i = ((p * times.len() as f64) as usize).min(times.len() - 1);
        format!("{:.2}", times[i].as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"n\": {}, \"p50_ms\": {}, \"p99_ms\": {}, \"failed\": {}, \"client\": \"rust\"}}",
        times.len(),
        pct(0.50),
        pct(0.99),
        failed.get()
    );
    Ok(())
}
