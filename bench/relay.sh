#!/usr/bin/env bash
# Relay benchmark: Bridgehead vs a private stock Postfix on loopback, each relaying
# to its own smtp-sink, driven by smtp-source. See bench/relay.py for what is
# measured and how.
#
#   bench/relay.sh [--quick] [--sizes 4096,102400,1048576] [--concurrency 1,10,50]
#                  [--count N] [--servers bridgehead,postfix] [--write] [--build]
#
# --quick: 4 KB, concurrency 10, 500 messages (the CI smoke run).
# --write: append the table, machine and date to BENCHMARKS.md.
# Binary: $BRIDGEHEAD_BIN, else target/release/bridgehead, else target/debug/bridgehead
# (--build runs `cargo build --release` first). Postfix needs root. Exit 1 if any
# message is not delivered or a client saw an error.
set -euo pipefail
source "$(dirname "$0")/args.sh"
for t in /usr/sbin/smtp-sink /usr/sbin/smtp-source /usr/sbin/postfix; do
  [ -x "$t" ] || { echo "relay.sh: $t missing (apt-get install postfix)" >&2; exit 1; }
done
exec /usr/bin/python3 bench/relay.py ${args[@]+"${args[@]}"}
