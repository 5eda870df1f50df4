#!/usr/bin/env bash
# Crash test: kill -9 Bridgehead while clients send; every message that got a 250
# must reach the smart host (a Postfix smtp-sink). See bench/crash.py for details.
#
#   bench/crash.sh [--rounds N] [--threads N] [--size BYTES] [--seed S] [--keep]
#
# Binary: $BRIDGEHEAD_BIN, else target/release/bridgehead, else target/debug/bridgehead
# (with --build: `cargo build --release` first). Exit 1 on any lost message.
set -euo pipefail
source "$(dirname "$0")/args.sh"
[ -x /usr/sbin/smtp-sink ] || { echo "crash.sh: /usr/sbin/smtp-sink missing (apt-get install postfix)" >&2; exit 1; }
exec /usr/bin/python3 bench/crash.py ${args[@]+"${args[@]}"}
