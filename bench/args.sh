# Sourced by the bench/*.sh wrappers: goes to the repository root, runs
# `cargo build --release` for --build, and leaves the other arguments in "${args[@]}".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
args=()
for a in "$@"; do
  if [ "$a" = --build ]; then cargo build --release --locked; else args+=("$a"); fi
done
