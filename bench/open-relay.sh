#!/usr/bin/env bash
# Open-relay check from outside: nmap's smtp-open-relay against a Bridgehead with
# its default configuration (one accepted domain) on loopback high ports. See
# bench/open_relay.py for the runs and what each must say.
#
#   bench/open-relay.sh [--no-smtps] [--keep] [--build]
#
# Installs nmap (Debian package) when missing, as root. Binary: $BRIDGEHEAD_BIN,
# else target/release/bridgehead, else target/debug/bridgehead (--build runs
# `cargo build --release` first). Exit 1 on an open-relay verdict, unexpected nmap
# output or anything relayed.
set -euo pipefail
source "$(dirname "$0")/args.sh"
if ! command -v nmap >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "open-relay.sh: nmap missing; run as root or apt-get install nmap" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q nmap >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q nmap; }
fi
[ -x /usr/sbin/smtp-sink ] || { echo "open-relay.sh: /usr/sbin/smtp-sink missing (apt-get install postfix)" >&2; exit 1; }
exec /usr/bin/python3 bench/open_relay.py ${args[@]+"${args[@]}"}
