//! Streaming the original into the report: reading its header block with a cap, and
//! normalizing lines (CRLF, at most 998 octets) while copying, in constant memory.

use std::io::{self, BufRead, Write};

/// RFC 5322 §2.1.1: at most 998 octets before CRLF.
const MAX_LINE: usize = 998;

/// The start of the original as read: `raw` is every byte consumed from the reader
/// (the header block, the empty line after it if it was reached, nothing more);
/// `raw[..header_len]` is the header block, cut at a field boundary if it was longer
/// than the cap.
pub(crate) struct Head {
    pub raw: Vec<u8>,
    pub header_len: usize,
}

/// Reads from `r` up to and including the empty line that ends the header block, or
/// `cap` bytes, or to the end, whichever comes first. Nothing after is consumed.
pub(crate) fn read_head<R: BufRead>(r: &mut R, cap: usize) -> io::Result<Head> {
    let mut raw = Vec::with_capacity(8 * 1024);
    let mut line_start = 0usize;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            // End of input without an empty line: the whole thing is headers.
            return Ok(Head {
                header_len: raw.len(),
                raw,
            });
        }
        let mut used = 0;
        let mut done: Option<usize> = None;
        for &b in buf {
            if raw.len() >= cap {
                done = Some(cut_at_field(&raw));
                break;
            }
            raw.push(b);
            used += 1;
            if b == b'\n' {
                let line = &raw[line_start..raw.len() - 1];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    done = Some(line_start);
                    break;
                }
                line_start = raw.len();
            }
        }
        r.consume(used);
        if let Some(header_len) = done {
            return Ok(Head { raw, header_len });
        }
    }
}

/// Where to cut a header block that is over the cap: before the last field that did
/// not fit (a line start not followed by white space), else at the last line end,
/// else (one huge line) at the cap.
fn cut_at_field(raw: &[u8]) -> usize {
    let mut last_line = None;
    for i in (0..raw.len()).rev() {
        if raw[i] == b'\n' {
            let next = raw.get(i + 1).copied();
            if last_line.is_none() {
                last_line = Some(i + 1);
            }
            if matches!(next, Some(b) if b != b' ' && b != b'\t') {
                return i + 1;
            }
        }
    }
    last_line.unwrap_or(raw.len())
}

/// Copies message bytes with every line ending as CRLF (bare LF and bare CR become
/// CRLF) and no line longer than 998 octets: a longer header line is folded
/// (CRLF SP), a longer body line is broken (CRLF). Breaks never split a UTF-8
/// sequence.
pub(crate) struct Normalizer {
    line_len: usize,
    pending_cr: bool,
    in_header: bool,
    chunk: Vec<u8>,
}

impl Normalizer {
    pub fn new() -> Self {
        Normalizer {
            line_len: 0,
            pending_cr: false,
            in_header: true,
            chunk: Vec::with_capacity(16 * 1024),
        }
    }

    pub fn feed<W: Write>(&mut self, data: &[u8], out: &mut W) -> io::Result<()> {
        for &b in data {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.end_line();
                    self.pending_cr = true;
                }
                b'\n' => self.end_line(),
                _ => {
                    let continuation = (0x80..0xC0).contains(&b);
                    if self.line_len >= MAX_LINE || (self.line_len >= MAX_LINE - 3 && !continuation)
                    {
                        self.chunk.extend_from_slice(b"\r\n");
                        if self.in_header {
                            self.chunk.push(b' ');
                            self.line_len = 1;
                        } else {
                            self.line_len = 0;
                        }
                    }
                    self.chunk.push(b);
                    self.line_len += 1;
                }
            }
            if self.chunk.len() >= 16 * 1024 {
                out.write_all(&self.chunk)?;
                self.chunk.clear();
            }
        }
        out.write_all(&self.chunk)?;
        self.chunk.clear();
        Ok(())
    }

    fn end_line(&mut self) {
        if self.in_header && self.line_len == 0 {
            self.in_header = false;
        }
        self.chunk.extend_from_slice(b"\r\n");
        self.line_len = 0;
    }

    /// Ends the last line with CRLF if it has no line end.
    pub fn finish<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        if self.line_len > 0 {
            out.write_all(b"\r\n")?;
            self.line_len = 0;
        }
        Ok(())
    }
}

/// Counts what goes through, and notes any 8-bit octet.
pub(crate) struct CountingWriter<W> {
    inner: W,
    count: u64,
    eight_bit: bool,
}

impl<W: Write> CountingWriter<W> {
    pub fn new(inner: W) -> Self {
        CountingWriter {
            inner,
            count: 0,
            eight_bit: false,
        }
    }

    pub fn into_parts(self) -> (W, u64, bool) {
        (self.inner, self.count, self.eight_bit)
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        if !self.eight_bit && !buf[..n].is_ascii() {
            self.eight_bit = true;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
