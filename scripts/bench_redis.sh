#!/usr/bin/env bash
# Worker throughput of the Redis Streams adapter against redis-benchmark's raw XADD rate,
# on the same throwaway server in one run. Prints a markdown table; exits non-zero when the
# median worker rate is below 50% of the raw XADD rate (the target of issue 5).
#
#   scripts/bench_redis.sh [ENTRIES] [RUNS]     (defaults: 200000 entries, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${2:-3}

source scripts/services.sh
trap services_stop EXIT
start_redis >&2
PORT=${MILLRACE_TEST_REDIS_URL##*:}
PORT=${PORT%/}
export MILLRACE_REDIS_URL=$MILLRACE_TEST_REDIS_URL

cargo build --release --quiet --features redis --example distributed_workers
W=target/release/examples/distributed_workers

median() { sort -g | awk '{a[NR]=$1} END {m=(NR+1)/2; print (NR%2 ? a[m] : (a[m-0.5]+a[m+0.5])/2)}'; }
# redis-benchmark -q prints e.g. "XADD bench * f v: 312500.00 requests per second, p50=…"
raw_rate() {
  redis-cli -p "$PORT" del bench >/dev/null
  redis-benchmark -p "$PORT" -n "$N" -P 16 -q XADD bench '*' f v 2>/dev/null \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{print $1}'
}
worker_rate() { # $1 = hash|none
  $W --role reset >/dev/null
  $W --role producer --count "$N" >/dev/null
  $W --role worker --name bench --sink "$1" --drained-ms 200 \
    | grep -o '[0-9]* entries/s' | awk '{print $1}'
}

raw=(); none=(); hash=()
for _ in $(seq "$RUNS"); do
  raw+=("$(raw_rate)")
  none+=("$(worker_rate none)")
  hash+=("$(worker_rate hash)")
done
raw_m=$(printf '%s\n' "${raw[@]}" | median)
none_m=$(printf '%s\n' "${none[@]}" | median)
hash_m=$(printf '%s\n' "${hash[@]}" | median)
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f–%.0f", lo, hi}'; }

echo "| what ($N entries, median of $RUNS, min–max) | entries/s | × raw XADD |"
echo "|---|---:|---:|"
printf '| redis-benchmark XADD, pipeline 16 (raw) | %.0f (%s) | 1.00 |\n' "$raw_m" "$(range "${raw[@]}")"
printf '| worker: XREADGROUP → map → batched XACK | %.0f (%s) | %.2f |\n' "$none_m" "$(range "${none[@]}")" "$(awk -v a="$none_m" -v b="$raw_m" 'BEGIN{print a/b}')"
printf '| worker + idempotent HSETNX sink (MULTI) | %.0f (%s) | %.2f |\n' "$hash_m" "$(range "${hash[@]}")" "$(awk -v a="$hash_m" -v b="$raw_m" 'BEGIN{print a/b}')"

ok=$(awk -v a="$none_m" -v b="$raw_m" 'BEGIN{print (a >= 0.5 * b) ? 1 : 0}')
if [ "$ok" != 1 ]; then
  echo "target missed: worker rate below 50% of the raw XADD rate" >&2
  exit 1
fi
