//! The DATA decoder must give the same answer however the input is split, never
//! consume past the terminator, never end on anything but CRLF.CRLF, and never
//! keep more than its limit.
#![no_main]

use bridgehead::smtp::data::{DataDecoder, DataOutcome};
use libfuzzer_sys::fuzz_target;

const MAX: u64 = 4096;

fn run(data: &[u8], chunk: usize) -> (Vec<u8>, usize, bool, DataOutcome) {
    let mut d = DataDecoder::new(MAX);
    let mut out = Vec::new();
    let mut used = 0;
    let mut done = false;
    for piece in data.chunks(chunk.max(1)) {
        let f = d.feed(piece, &mut out);
        assert!(f.consumed <= piece.len());
        used += f.consumed;
        if f.done {
            done = true;
            break;
        }
        assert_eq!(f.consumed, piece.len(), "a feed that is not done uses all its input");
    }
    (out, used, done, d.outcome())
}

fuzz_target!(|input: (u8, &[u8])| {
    let (chunk, data) = input;
    let whole = run(data, data.len());
    let split = run(data, chunk as usize % 17 + 1);
    assert_eq!(whole, split);
    let (out, used, done, _) = whole;
    assert!(out.len() as u64 <= MAX);
    if done {
        // The data really ended with CRLF . CRLF (or began with . CRLF).
        let consumed = &data[..used];
        assert!(consumed.ends_with(b"\r\n.\r\n") || consumed == b".\r\n");
    }
});
