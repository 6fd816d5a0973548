#!/usr/bin/env bash
# Conversations benchmark: time to first token through SheetGPT against the provider's own,
# and the server's memory with 1,000 reply streams open. See the module doc of
# crates/server/examples/bench_chat.rs for the method and the BENCH_* settings.
#
# Usage: bench/chat.sh            (set SHEETGPT_BENCH_NO_BUILD=1 to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each open stream costs two sockets in the bench (to SheetGPT, and the fake provider's side)
# and two in the server, which inherits this limit.
want=$(( 2 * ${BENCH_STREAMS:-1000} + 1024 ))
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$want" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -ge "$want" ]; then
    ulimit -Sn "$want"
  else
    echo "bench/chat.sh: the hard open-file limit is $hard; $want wanted (raise it as root)" >&2
    ulimit -Sn "$hard"
  fi
fi

if [ -z "${SHEETGPT_BENCH_NO_BUILD:-}" ]; then
  cargo build --release -p sheetgpt --bin sheetgpt --example bench_chat
fi
exec target/release/examples/bench_chat
