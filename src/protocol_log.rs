//! Exchange-style protocol logs (PRODUCT §4): one CSV line per event in
//! `data/logs/protocol/<receive|send>/YYYYMMDD.log`. Fields: date-time,
//! connector-id, session-id, sequence-number, local-endpoint, remote-endpoint,
//! event (`+` connect, `-` disconnect, `>` sent, `<` received, `*` info), data.
//! AUTH payloads are replaced by `****` before they get here.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::mpsc;

/// A connector's protocol logging level (Exchange's ProtocolLoggingLevel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolLogging {
    None,
    Verbose,
}

impl ProtocolLogging {
    pub fn parse(s: &str) -> crate::directory::Result<ProtocolLogging> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(ProtocolLogging::None),
            "verbose" => Ok(ProtocolLogging::Verbose),
            other => Err(crate::directory::invalid(
                "protocol_logging",
                format!("unknown level `{other}`; use none or verbose"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolLogging::None => "none",
            ProtocolLogging::Verbose => "verbose",
        }
    }
}

/// Lines waiting for the writer. When a burst exceeds this, lines are dropped
/// (and counted) rather than slowing SMTP sessions down.
const QUEUE: usize = 65_536;

#[derive(Debug)]
struct Line {
    day: String,
    text: String,
}

/// A handle to one log directory's writer task; cheap to clone.
#[derive(Clone, Debug)]
pub struct ProtocolLog {
    tx: mpsc::Sender<Line>,
}

#[derive(Debug, Clone, Copy)]
pub enum Event {
    Connect,
    Disconnect,
    Sent,
    Received,
    Info,
}

impl Event {
    fn symbol(self) -> char {
        match self {
            Event::Connect => '+',
            Event::Disconnect => '-',
            Event::Sent => '>',
            Event::Received => '<',
            Event::Info => '*',
        }
    }
}

impl ProtocolLog {
    /// Starts the writer for `dir` (e.g. `data/logs/protocol/receive`).
    pub fn start(dir: PathBuf) -> ProtocolLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(dir, rx));
        ProtocolLog { tx }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &self,
        connector: &str,
        session: &str,
        seq: u32,
        local: &str,
        remote: &str,
        event: Event,
        data: &str,
    ) {
        let now = chrono::Utc::now();
        let text = format!(
            "{},{},{},{},{},{},{},{}\n",
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            csv(connector),
            session,
            seq,
            local,
            remote,
            event.symbol(),
            csv(data)
        );
        let _ = self.tx.try_send(Line {
            day: now.format("%Y%m%d").to_string(),
            text,
        });
    }
}

/// CSV quoting: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

async fn writer(dir: PathBuf, mut rx: mpsc::Receiver<Line>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let lines = std::mem::take(&mut batch);
        let dir = dir.clone();
        let result = tokio::task::spawn_blocking(move || append(&dir, &lines)).await;
        if let Ok(Err(e)) = result {
            tracing::warn!(error = %e, "cannot write the protocol log");
        }
    }
}

fn append(dir: &std::path::Path, lines: &[Line]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut current: Option<(String, std::io::BufWriter<std::fs::File>)> = None;
    for line in lines {
        if current.as_ref().is_none_or(|(d, _)| d != &line.day) {
            if let Some((_, mut w)) = current.take() {
                w.flush()?;
            }
            let path = dir.join(format!("{}.log", line.day));
            let fresh = !path.exists();
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let mut w = std::io::BufWriter::new(file);
            if fresh {
                w.write_all(
                    b"#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data\n",
                )?;
            }
            current = Some((line.day.clone(), w));
        }
        if let Some((_, w)) = current.as_mut() {
            w.write_all(line.text.as_bytes())?;
        }
    }
    if let Some((_, mut w)) = current {
        w.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_quotes() {
        assert_eq!(super::csv("EHLO x"), "EHLO x");
        assert_eq!(super::csv("a,b"), "\"a,b\"");
        assert_eq!(super::csv("say \"hi\", ok"), "\"say \"\"hi\"\", ok\"");
    }
}
