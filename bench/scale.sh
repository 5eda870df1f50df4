#!/usr/bin/env bash
# Scale benchmark: accepting 100 000 messages into a queue whose smart host is
# down, the accept rate with that deep queue (and during its retry waves),
# start-up with it, and memory with 10 000 idle SMTP sessions. See bench/scale.py.
#
#   bench/scale.sh [--quick] [--fill N] [--probe N] [--reps N] [--sessions N]
#                  [--sources N] [--wave-interval 30s] [--no-wave] [--write] [--build]
#
# --quick: 5 000 queued, 1 000-message probes, 1 000 idle sessions (the CI smoke run).
# --write: append the figures, machine, date and commit to BENCHMARKS.md.
# Binary: $BRIDGEHEAD_BIN, else target/release/bridgehead, else target/debug/bridgehead
# (--build runs `cargo build --release` first). Exit 1 if a message was refused or
# lost, an idle session could not be opened, or the accept rate with the queue
# loaded fell below half the empty-queue rate (--min-ratio).
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  if [ "$a" = --build ]; then cargo build --release --locked; else args+=("$a"); fi
done
[ -x /usr/sbin/smtp-source ] || { echo "scale.sh: /usr/sbin/smtp-source missing (apt-get install postfix)" >&2; exit 1; }
# Sockets for the idle sessions: both ends are in this process tree (scale.py
# raises the soft limit itself as far as the hard limit allows; root may go further).
ulimit -n 65536 2>/dev/null || true
exec /usr/bin/python3 bench/scale.py ${args[@]+"${args[@]}"}
