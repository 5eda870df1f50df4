//! Streaming decoder for the DATA command's message text (RFC 5321 §4.1.1.4,
//! §4.5.2), hardened against SMTP smuggling (CVE-2023-51764 and relatives).
//!
//! The only end of data is `<CRLF>.<CRLF>`. The text starts right after the
//! server's 354 reply as if preceded by CRLF (§4.1.1.4), so a first line of `.`
//! ends it too. A bare LF (not after CR) or bare CR (not before LF) anywhere
//! taints the message: we keep reading, never treat `<LF>.<LF>`, `<CR>.<CR>`,
//! `<LF>.<CRLF>` and so on as the end, and report [`DataOutcome::BareLineEnding`]
//! so the session refuses the message with `550 5.5.2`. Since a smuggled second
//! message can only hide behind such a non-standard terminator, and we neither
//! end the data there nor accept the tainted message, smuggling is impossible.
//!
//! BDAT (RFC 3030) needs no end-of-data detection: its chunks are
//! length-delimited, so the session reads exactly `size` octets and stores them
//! as they are (no dot-unstuffing). Their line endings are still checked, with
//! [`LineEndingCheck`]: the stored message may leave again over DATA, where a
//! bare CR in `<CR>.<CR>` or `<CRLF>.<CR>` could end the data at a lenient next
//! hop (outbound smuggling). We do not offer BINARYMIME, so a BDAT body, like a
//! DATA body, must be CRLF text.
//!
//! A NUL octet is refused the same way, in DATA and BDAT alike: RFC 5321
//! §4.1.1.4 and RFC 5322 §2.3 allow no NUL in message text, and a next hop that
//! drops NULs before looking for the end of data would see `<CRLF>.<CRLF>` in
//! `<CRLF><NUL>.<CRLF>` (smtpsmug's `nullbefore`/`nullafter`).

/// Result of one [`DataDecoder::feed`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// Input bytes used. When `done`, the bytes after these belong to the next
    /// (pipelined) command.
    pub consumed: usize,
    /// The terminating `<CRLF>.<CRLF>` has been read.
    pub done: bool,
}

/// What to do with the message once the data is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOutcome {
    /// Clean message within the size limit (or data not finished yet).
    Ok,
    /// A bare CR or LF was seen: refuse with `550 5.5.2` (reported before
    /// `TooLarge` because it may be an attack).
    BareLineEnding,
    /// A NUL octet was seen: refuse with `550 5.6.0` (before `TooLarge` too).
    Nul,
    /// More than `max_size` octets: refuse with `552 5.3.4` (RFC 1870 §6.2).
    TooLarge,
}

/// Where we are in the line structure. Only a `.` at a line start and a CR
/// after it are held back (not yet written to `out`), so no buffer is needed
/// across feeds: the state alone says what is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Just after CRLF (or at the very start).
    LineStart,
    /// `CRLF .` seen; the dot is held back.
    Dot,
    /// `CRLF . CR` seen; the dot and the CR are held back.
    DotCr,
    /// Inside a line.
    Text,
    /// Inside a line, just after a CR (already written to `out`).
    Cr,
    /// `CRLF . CRLF` seen.
    Done,
}

/// Decodes DATA text incrementally; see the module docs.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    max_size: u64,
    size: u64,
    bare: bool,
    nul: bool,
}

impl DataDecoder {
    /// A decoder that stops storing after `max_size` message octets.
    pub fn new(max_size: u64) -> Self {
        DataDecoder {
            state: State::LineStart,
            max_size,
            size: 0,
            bare: false,
            nul: false,
        }
    }

    /// Decodes as much of `input` as belongs to the message, appending the
    /// unstuffed text (CRLF line endings kept, the final CRLF included, the
    /// terminating `.CRLF` not) to `out`. Input may be split anywhere.
    /// After `done`, further calls consume nothing.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Text => {
                    // Fast path: copy everything up to the next CR or LF at once.
                    let rest = &input[i..];
                    let run = rest
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n')
                        .unwrap_or(rest.len());
                    self.nul |= rest[..run].contains(&0);
                    self.emit(&rest[..run], out);
                    i += run;
                    if let Some(&b) = input.get(i) {
                        i += 1;
                        self.byte_in_text(b, out);
                    }
                }
                State::Cr => {
                    let b = input[i];
                    i += 1;
                    if b == b'\n' {
                        self.emit(b"\n", out);
                        self.state = State::LineStart;
                    } else {
                        // The CR before this byte was bare.
                        self.bare = true;
                        self.byte_in_text(b, out);
                    }
                }
                State::LineStart => {
                    let b = input[i];
                    i += 1;
                    if b == b'.' {
                        self.state = State::Dot;
                    } else {
                        self.byte_in_text(b, out);
                    }
                }
                State::Dot => {
                    let b = input[i];
                    i += 1;
                    if b == b'\r' {
                        self.state = State::DotCr;
                    } else {
                        // A leading dot with more on the line is transparency
                        // stuffing: drop it (§4.5.2). A `.` followed by a bare
                        // LF is not an end: the LF taints the message.
                        self.byte_in_text(b, out);
                    }
                }
                State::DotCr => {
                    let b = input[i];
                    i += 1;
                    if b == b'\n' {
                        self.state = State::Done;
                    } else {
                        // `.<CR>x`: the dot was stuffing, the CR is bare.
                        self.bare = true;
                        self.emit(b"\r", out);
                        self.byte_in_text(b, out);
                    }
                }
            }
        }
        Feed {
            consumed: i,
            done: self.state == State::Done,
        }
    }

    /// Handles one byte in the middle of a line (or a line start that is not a
    /// dot). Note that after a bare LF we stay in `Text`: a dot after it is
    /// ordinary text, never the start of a terminator.
    fn byte_in_text(&mut self, b: u8, out: &mut Vec<u8>) {
        self.nul |= b == 0;
        self.emit(&[b], out);
        self.state = match b {
            b'\r' => State::Cr,
            b'\n' => {
                self.bare = true;
                State::Text
            }
            _ => State::Text,
        };
    }

    /// Counts message bytes and stores them up to the size limit, so memory
    /// stays bounded whatever the client sends.
    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let room = self.max_size.saturating_sub(self.size);
        let keep = usize::try_from(room).map_or(bytes.len(), |r| r.min(bytes.len()));
        out.extend_from_slice(&bytes[..keep]);
        self.size = self.size.saturating_add(bytes.len() as u64);
    }

    /// True once the terminator has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Message octets seen so far (after unstuffing), including any beyond
    /// `max_size` that were not stored.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The verdict; final once [`Feed::done`] was returned.
    pub fn outcome(&self) -> DataOutcome {
        if self.bare {
            DataOutcome::BareLineEnding
        } else if self.nul {
            DataOutcome::Nul
        } else if self.size > self.max_size {
            DataOutcome::TooLarge
        } else {
            DataOutcome::Ok
        }
    }
}

/// Finds a bare CR or LF in a message sent in pieces (BDAT chunks), where a
/// CRLF may be split across two pieces. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineEndingCheck {
    /// The last byte fed was a CR; whether it is bare depends on the next one.
    pending_cr: bool,
    bare: bool,
    nul: bool,
}

impl LineEndingCheck {
    /// Checks the next piece of the message.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut prev_cr = self.pending_cr;
        for &b in bytes {
            // An LF must follow a CR, and a CR must be followed by an LF: either
            // rule broken (LF without CR, CR without LF) is a bare line ending.
            if (b == b'\n') != prev_cr {
                self.bare = true;
            }
            prev_cr = b == b'\r';
            self.nul |= b == 0;
        }
        self.pending_cr = prev_cr;
    }

    /// A bare CR or LF has been seen (a CR at the very end of what was fed is
    /// not counted yet: the next piece may start with its LF).
    pub fn bare_seen(&self) -> bool {
        self.bare
    }

    /// A NUL octet has been seen (see the module docs).
    pub fn nul_seen(&self) -> bool {
        self.nul
    }

    /// The verdict once the message is complete: a CR at the end is bare too.
    pub fn bare_at_end(&self) -> bool {
        self.bare || self.pending_cr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` in one feed.
    fn decode(input: &[u8]) -> (Vec<u8>, Feed, DataOutcome) {
        let mut d = DataDecoder::new(1 << 20);
        let mut out = Vec::new();
        let f = d.feed(input, &mut out);
        (out, f, d.outcome())
    }

    /// Decodes `input` in chunks of the given sizes (cycled), checking the
    /// result matches a single feed.
    fn decode_chunked(
        input: &[u8],
        max: u64,
        sizes: &mut dyn FnMut() -> usize,
    ) -> (Vec<u8>, usize, bool, DataOutcome, u64) {
        let mut d = DataDecoder::new(max);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let n = sizes().clamp(1, input.len() - pos);
            let f = d.feed(&input[pos..pos + n], &mut out);
            pos += f.consumed;
            if f.done {
                assert!(f.consumed <= n);
                return (out, pos, true, d.outcome(), d.size());
            }
            assert_eq!(f.consumed, n, "must consume everything until done");
        }
        (out, pos, false, d.outcome(), d.size())
    }

    fn single(input: &[u8], max: u64) -> (Vec<u8>, usize, bool, DataOutcome, u64) {
        let mut d = DataDecoder::new(max);
        let mut out = Vec::new();
        let f = d.feed(input, &mut out);
        (out, f.consumed, f.done, d.outcome(), d.size())
    }

    /// A small deterministic xorshift, so the tests need no extra crates.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Up to `max_len - 1` random bytes drawn from `alphabet`.
    fn random_text(next: &mut impl FnMut() -> u64, alphabet: &[u8], max_len: u64) -> Vec<u8> {
        let len = next() % max_len;
        (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect()
    }

    /// Fake ends of data seen in SMTP smuggling (SEC Consult's inbound and
    /// outbound lists, smtpsmug), and a lone bare LF and CR.
    const FAKE_ENDS: &[&[u8]] = &[
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\n.\r",
        b"\r.\n",
        b"\r\n.\r\r\n",
        b"\r\r\n.\r\r\n",
        b"\n",
        b"\r",
    ];

    const CASES: &[&[u8]] = &[
        b".\r\n",
        b"\r\n.\r\n",
        b"Subject: x\r\n\r\nbody\r\n.\r\n",
        b"Subject: x\r\n\r\n..leading dot\r\n...\r\n.\r\nMAIL FROM:<>\r\n",
        b"a\n.\nb\r\n.\r\n",
        b"a\r.\rb\r\n.\r\nRSET\r\n",
        b"a\n.\r\nMAIL FROM:<evil@x>\r\n.\r\nQUIT\r\n",
        b"a\r\n.\nb\r\n.\r\n",
        b"a\r.\r\nb\r\n.\r\n",
        b"a\r\n.\rb\r\n.\r\n",
        b".\n\r\n.\r\n",
        b"x\r\r\n.\r\n",
        b"x\r\n\n.\r\n",
        b"x\r\n.x\r\n.\r\n",
        b"x\r\n..\r\n.\r\n",
        b"no terminator yet\r\n.",
        b"no terminator yet\r\n.\r",
        b"ends in cr\r",
        b"",
    ];

    #[test]
    fn empty_message() {
        let (out, f, o) = decode(b".\r\nQUIT\r\n");
        assert_eq!(out, b"");
        assert_eq!(
            f,
            Feed {
                consumed: 3,
                done: true
            }
        );
        assert_eq!(o, DataOutcome::Ok);
        let (out, f, _) = decode(b"\r\n.\r\n");
        assert_eq!(out, b"\r\n");
        assert!(f.done);
    }

    #[test]
    fn plain_message_and_pipelining() {
        let input = b"Subject: hi\r\n\r\nHello\r\n.\r\nQUIT\r\n";
        let (out, f, o) = decode(input);
        assert_eq!(out, b"Subject: hi\r\n\r\nHello\r\n");
        assert_eq!(&input[f.consumed..], b"QUIT\r\n");
        assert!(f.done);
        assert_eq!(o, DataOutcome::Ok);
    }

    #[test]
    fn dot_unstuffing() {
        let (out, f, o) = decode(b"..\r\n..x\r\n...\r\nx.\r\n.\r\n");
        assert_eq!(out, b".\r\n.x\r\n..\r\nx.\r\n");
        assert!(f.done);
        assert_eq!(o, DataOutcome::Ok);
        // Only at line start: a dot mid-line is left alone.
        let (out, _, _) = decode(b"a.b\r\n.\r\n");
        assert_eq!(out, b"a.b\r\n");
    }

    #[test]
    fn smuggling_terminators_are_not_the_end() {
        for &fake in FAKE_ENDS {
            let mut input = b"Subject: a\r\n\r\nbody".to_vec();
            input.extend_from_slice(fake);
            input.extend_from_slice(
                b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n",
            );
            let (out, f, o) = decode(&input);
            assert!(f.done, "{fake:?}");
            assert_eq!(&input[f.consumed..], b"QUIT\r\n", "{fake:?}");
            assert_eq!(o, DataOutcome::BareLineEnding, "{fake:?}");
            assert!(out.ends_with(b"smuggled\r\n"));
        }
    }

    #[test]
    fn nul_taints_data_and_bdat() {
        // smtpsmug's nullbefore / nullafter, a NUL mid-line, one at line start.
        for input in [
            &b"a\r\n\x00.\r\nMAIL FROM:<s@x>\r\n.\r\n"[..],
            b"a\r\n.\x00\r\nMAIL FROM:<s@x>\r\n.\r\n",
            b"ab\x00c\r\n.\r\n",
            b"\x00\r\n.\r\n",
        ] {
            let (_, f, o) = decode(input);
            assert!(f.done, "{input:?}");
            assert_eq!(o, DataOutcome::Nul, "{input:?}");
            let mut c = LineEndingCheck::default();
            c.feed(&input[..2]);
            c.feed(&input[2..]);
            assert!(c.nul_seen(), "{input:?}");
        }
        let (_, _, o) = decode(b"clean\r\n.\r\n");
        assert_eq!(o, DataOutcome::Ok);
        let mut c = LineEndingCheck::default();
        c.feed(b"clean\r\n");
        assert!(!c.nul_seen());
    }

    #[test]
    fn bare_endings_taint() {
        for input in [
            &b"a\nb\r\n.\r\n"[..],
            b"a\rb\r\n.\r\n",
            b"\n.\r\n.\r\n",
            b".\n\r\n.\r\n",
            b"x\r\r\n.\r\n",
            b"\r\n.\rx\r\n.\r\n",
        ] {
            let (_, f, o) = decode(input);
            assert!(f.done, "{input:?}");
            assert_eq!(f.consumed, input.len(), "{input:?}");
            assert_eq!(o, DataOutcome::BareLineEnding, "{input:?}");
        }
    }

    #[test]
    fn trailing_cr_at_feed_end() {
        let mut d = DataDecoder::new(100);
        let mut out = Vec::new();
        assert_eq!(
            d.feed(b"abc\r", &mut out),
            Feed {
                consumed: 4,
                done: false
            }
        );
        assert_eq!(
            d.feed(b"\n.", &mut out),
            Feed {
                consumed: 2,
                done: false
            }
        );
        assert_eq!(
            d.feed(b"\r", &mut out),
            Feed {
                consumed: 1,
                done: false
            }
        );
        assert_eq!(
            d.feed(b"\nNOOP", &mut out),
            Feed {
                consumed: 1,
                done: true
            }
        );
        assert_eq!(out, b"abc\r\n");
        assert_eq!(d.outcome(), DataOutcome::Ok);
        assert_eq!(d.size(), 5);
        // After done nothing more is consumed.
        assert_eq!(
            d.feed(b"NOOP\r\n", &mut out),
            Feed {
                consumed: 0,
                done: true
            }
        );
        assert!(d.is_done());

        // A trailing CR followed by something other than LF is bare.
        let mut d = DataDecoder::new(100);
        let mut out = Vec::new();
        d.feed(b"abc\r", &mut out);
        d.feed(b"x\r\n.\r\n", &mut out);
        assert_eq!(d.outcome(), DataOutcome::BareLineEnding);
    }

    #[test]
    fn too_large_keeps_reading_to_terminator() {
        let mut input = b"x".repeat(50);
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let (out, consumed, done, o, size) = single(&input, 10);
        assert!(done);
        assert_eq!(&input[consumed..], b"QUIT\r\n");
        assert_eq!(o, DataOutcome::TooLarge);
        assert_eq!(size, 52);
        assert!(out.len() <= 10);
        // Exactly at the limit is fine.
        let (out, _, done, o, size) = single(b"12345678\r\n.\r\n", 10);
        assert!(done);
        assert_eq!((o, size, out.len()), (DataOutcome::Ok, 10, 10));
        // Bare line ending wins over size.
        let (_, _, _, o, _) = single(b"xxxxxxxxxxxx\nx\r\n.\r\n", 5);
        assert_eq!(o, DataOutcome::BareLineEnding);
    }

    #[test]
    fn bounded_output_across_feeds() {
        let mut d = DataDecoder::new(1000);
        let mut out = Vec::new();
        let chunk = b"0123456789abcdef\r\n".repeat(100);
        let mut stored = 0;
        for _ in 0..10 {
            let f = d.feed(&chunk, &mut out);
            assert_eq!(f.consumed, chunk.len());
            stored += out.len();
            out.clear(); // as the session does after writing to disk
        }
        assert!(stored <= 1000);
        assert!(d.feed(b".\r\n", &mut out).done);
        assert_eq!(d.outcome(), DataOutcome::TooLarge);
        assert_eq!(d.size(), 18_000);
    }

    #[test]
    fn byte_by_byte_matches_single_feed() {
        for &case in CASES {
            let expected = single(case, 1 << 20);
            assert_eq!(
                decode_chunked(case, 1 << 20, &mut || 1),
                expected,
                "{case:?}"
            );
        }
    }

    #[test]
    fn random_chunks_match_single_feed() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        // Random messages over a small alphabet rich in CR, LF and dots.
        let mut inputs: Vec<Vec<u8>> = CASES.iter().map(|c| c.to_vec()).collect();
        for _ in 0..300 {
            inputs.push(random_text(&mut next, b"\r\n.ab", 40));
        }
        for input in &inputs {
            for max in [3, 1 << 20] {
                let expected = single(input, max);
                for _ in 0..10 {
                    let mut r = || (next() % 7) as usize + 1;
                    assert_eq!(decode_chunked(input, max, &mut r), expected, "{input:?}");
                }
            }
        }
    }

    /// A direct, whole-buffer model of the rules, to check the state machine:
    /// returns (unstuffed text, bytes consumed, tainted) or None if unfinished.
    fn model(input: &[u8]) -> Option<(Vec<u8>, usize, bool)> {
        // The text behaves as if preceded by CRLF; the end is the first CRLF.CRLF.
        let mut padded = b"\r\n".to_vec();
        padded.extend_from_slice(input);
        let end = padded.windows(5).position(|w| w == b"\r\n.\r\n")?;
        let body = &padded[2..end + 2]; // keeps the final CRLF
        let line_start = |p: usize| p == 0 || body[..p].ends_with(b"\r\n");
        let bare = (0..body.len()).any(|p| {
            (body[p] == b'\n' && (p == 0 || body[p - 1] != b'\r'))
                || (body[p] == b'\r' && body.get(p + 1) != Some(&b'\n'))
        });
        let out = (0..body.len())
            .filter(|&p| !(body[p] == b'.' && line_start(p)))
            .map(|p| body[p])
            .collect();
        Some((out, end + 3, bare))
    }

    /// Feeds `pieces` to a [`LineEndingCheck`]; (bare seen, bare at end).
    fn check(pieces: &[&[u8]]) -> (bool, bool) {
        let mut c = LineEndingCheck::default();
        for p in pieces {
            c.feed(p);
        }
        (c.bare_seen(), c.bare_at_end())
    }

    #[test]
    fn line_ending_check_clean_text() {
        assert_eq!(check(&[]), (false, false));
        assert_eq!(check(&[b""]), (false, false));
        assert_eq!(check(&[b"Subject: a\r\n\r\nbody\r\n"]), (false, false));
        // No final line end is fine for BDAT (not our concern here).
        assert_eq!(check(&[b"a\r\nb"]), (false, false));
        // A CRLF split across chunks, in every position.
        assert_eq!(check(&[b"a\r", b"\nb\r\n"]), (false, false));
        assert_eq!(check(&[b"a\r", b"", b"\n"]), (false, false));
        assert_eq!(check(&[b"\r", b"\n", b"\r", b"\n"]), (false, false));
        // Dots and a full terminator inside a BDAT body are just text.
        assert_eq!(
            check(&[b"x\r\n.\r\n..\r\nMAIL FROM:<a@b>\r\n"]),
            (false, false)
        );
    }

    #[test]
    fn line_ending_check_finds_bare_endings() {
        // Every smuggling sequence, whole and split after each of its bytes.
        for &fake in FAKE_ENDS {
            let mut msg = b"Subject: a\r\n\r\nbody".to_vec();
            msg.extend_from_slice(fake);
            msg.extend_from_slice(b"MAIL FROM:<evil@x>\r\n");
            for split in 0..=msg.len() {
                let (a, b) = msg.split_at(split);
                assert_eq!(check(&[a, b]), (true, true), "{fake:?} split at {split}");
            }
        }
        assert_eq!(check(&[b"\nstarts bare\r\n"]), (true, true));
        assert_eq!(check(&[b"a\r", b"b"]), (true, true));
        // A CR at the very end is only known to be bare at the end.
        assert_eq!(check(&[b"a\r\nb\r"]), (false, true));
        assert_eq!(check(&[b"a\r", b"\r\n"]), (true, true));
    }

    #[test]
    fn line_ending_check_agrees_with_the_data_decoder() {
        let mut next = xorshift(777);
        for _ in 0..2000 {
            let msg = random_text(&mut next, b"\r\n.a", 30);
            // The same text through DATA: stuffed, CRLF-terminated, then `.CRLF`.
            let bare = {
                let mut c = LineEndingCheck::default();
                let cut = (next() as usize) % (msg.len() + 1);
                c.feed(&msg[..cut]);
                c.feed(&msg[cut..]);
                c.bare_at_end()
            };
            let mut wire = Vec::new();
            let mut line_start = true;
            for &b in &msg {
                if line_start && b == b'.' {
                    wire.push(b'.');
                }
                wire.push(b);
                line_start = wire.ends_with(b"\r\n");
            }
            if !line_start {
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let (_, f, outcome) = decode(&wire);
            assert!(f.done && f.consumed == wire.len(), "{msg:?}");
            assert_eq!(outcome == DataOutcome::BareLineEnding, bare, "{msg:?}");
        }
    }

    #[test]
    fn matches_whole_buffer_model() {
        let mut next = xorshift(12345);
        for _ in 0..2000 {
            let input = random_text(&mut next, b"\r\n.a", 30);
            let (out, consumed, done, outcome, _) = single(&input, 1 << 20);
            match model(&input) {
                Some((text, end, bare)) => {
                    assert!(done, "{input:?}");
                    assert_eq!(consumed, end, "{input:?}");
                    assert_eq!(out, text, "{input:?}");
                    assert_eq!(outcome == DataOutcome::BareLineEnding, bare, "{input:?}");
                }
                None => {
                    assert!(!done, "{input:?}");
                    assert_eq!(consumed, input.len());
                }
            }
        }
    }
}
