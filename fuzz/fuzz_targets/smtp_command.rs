//! Any byte string is a command line the parser must answer without panicking,
//! and every error it returns carries a well-formed reply.
#![no_main]

use bridgehead::smtp::command::{find_line, parse_command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((len, used)) = find_line(data) {
        assert!(len < used && used <= data.len());
    }
    match parse_command(data) {
        Ok(_) => {}
        Err(e) => {
            let wire = e.reply.to_wire();
            assert!((400..600).contains(&e.reply.code));
            assert!(wire.ends_with(b"\r\n"));
            // One reply never smuggles extra lines: only its own CRLFs.
            let lines = wire.windows(2).filter(|w| w == b"\r\n").count();
            assert_eq!(lines, e.reply.lines.len().max(1));
        }
    }
});
