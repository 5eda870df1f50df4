# Sourced by the bench/*.sh wrappers: goes to the repository root, runs
# `cargo build --release` (and the latency client) for --build, and leaves the other arguments in "${args[@]}".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
args=()
for a in "$@"; do
  if [ "$a" = --build ]; then cargo build --release --locked --bins --example latency; else args+=("$a"); fi
done
