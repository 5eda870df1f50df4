#!/usr/bin/env bash
# SMTP smuggling probe from outside (SEC Consult, Dec 2023): fake end-of-data
# sequences with a smuggled second transaction, sent with DATA and with BDAT to a
# Bridgehead on loopback that relays to raw sinks; checks the answers, the session
# state, the queue and the exact bytes forwarded. See bench/smuggling.py.
#
#   bench/smuggling.sh [--keep] [--build]
#
# Binary: $BRIDGEHEAD_BIN, else target/release/bridgehead, else
# target/debug/bridgehead (--build runs `cargo build --release` first). Exit 1 if
# any variant smuggles a message, desynchronizes the session or forwards a bare
# CR/LF.
set -euo pipefail
source "$(dirname "$0")/args.sh"
exec /usr/bin/python3 bench/smuggling.py ${args[@]+"${args[@]}"}
