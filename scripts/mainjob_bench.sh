#!/usr/bin/env bash
# The main job against its hand-written baseline, in paired runs on this machine.
#
#   scripts/mainjob_bench.sh            # 1,000,000 lines, a warm-up, then 5 pairs
#   PAIRS=7 LINES=500000 scripts/mainjob_bench.sh
#   FLAGSHIP=/tmp/old/library_dashboard BASELINE=/tmp/old/handwritten_baseline scripts/mainjob_bench.sh
#
# Builds `examples/library_dashboard` (the flagship) and `examples/handwritten_baseline` (the
# same work without millrace, see its header) in release, generates the log once, runs each
# once to warm the caches, then PAIRS pairs, alternating which of the two goes first. Each run
# starts from a fresh database and is measured by /usr/bin/time -v: wall time of the whole
# process (log already generated), CPU time (user + system) and peak RSS. Prints per pair the
# lines/s of both and the ratios flagship ÷ baseline of wall time (target ≤ 1.25), CPU time
# (the work done, steadier on a shared machine) and peak RSS (target ≤ 1.5), then the medians
# with min–max. The files go to DATA_DIR (default: /dev/shm when it exists,
# so the disk does not decide; else target/mainjob-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-5}
LINES=${LINES:-1000000}
if [[ -z "${DATA_DIR:-}" ]]; then
    if [[ -d /dev/shm && -w /dev/shm ]]; then
        DATA_DIR=/dev/shm/millrace-mainjob-bench
    else
        DATA_DIR=target/mainjob-bench
    fi
fi
if [[ ! -x /usr/bin/time ]]; then
    # GNU time measures peak RSS; installed from apt like the test services (scripts/services.sh).
    # shellcheck source=scripts/services.sh
    source scripts/services.sh
    apt_install time || true
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "mainjob_bench: /usr/bin/time (GNU time) is needed for peak RSS: apt-get install time" >&2
    exit 2
fi

# FLAGSHIP / BASELINE: other binaries to compare (e.g. a saved build of an earlier commit);
# the build is skipped when both are given.
if [[ -z "${FLAGSHIP:-}" || -z "${BASELINE:-}" ]]; then
    cargo build --release --quiet --example library_dashboard --example handwritten_baseline
fi
FLAGSHIP=${FLAGSHIP:-target/release/examples/library_dashboard}
BASELINE=${BASELINE:-target/release/examples/handwritten_baseline}
mkdir -p "$DATA_DIR"
LOG_DIR=$(mktemp -d)
trap 'rm -rf "$LOG_DIR"' EXIT

# run NAME BINARY → sets WALL (seconds), CPU (user + system seconds), RSS (KiB); fails loudly
# if the run fails.
run() {
    local name=$1 binary=$2 out="$LOG_DIR/$1.out" timing="$LOG_DIR/$1.time"
    if ! /usr/bin/time -v "$binary" --fresh --quiet --lines "$LINES" --data-dir "$DATA_DIR" \
        >"$out" 2>"$timing"; then
        echo "mainjob_bench: the $name run failed:" >&2
        tail -5 "$out" "$timing" >&2
        exit 1
    fi
    grep -q "^throughput:" "$out" || { echo "mainjob_bench: $name printed no throughput" >&2; exit 1; }
    WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$timing")
    CPU=$(awk -F': ' '/(User|System) time \(seconds\)/ { s += $2 } END { print s }' "$timing")
    RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$timing")
}

echo "main job: $LINES lines, data in $DATA_DIR, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "warm-up (generates the log on the first run) ..."
run baseline "$BASELINE"
run flagship "$FLAGSHIP"

printf '%-5s %16s %7s %8s %16s %7s %8s %7s %7s %7s\n' pair "baseline lines/s" "CPU s" "RSS MiB" \
    "flagship lines/s" "CPU s" "RSS MiB" "time ×" "CPU ×" "RSS ×"
RATIOS=()
RSS_RATIOS=()
CPU_RATIOS=()
BASE_RATES=()
FLAG_RATES=()
for ((pair = 1; pair <= PAIRS; pair++)); do
    if ((pair % 2 == 1)); then
        run baseline "$BASELINE"; bw=$WALL; bc=$CPU; br=$RSS
        run flagship "$FLAGSHIP"; fw=$WALL; fc=$CPU; fr=$RSS
    else
        run flagship "$FLAGSHIP"; fw=$WALL; fc=$CPU; fr=$RSS
        run baseline "$BASELINE"; bw=$WALL; bc=$CPU; br=$RSS
    fi
    line=$(awk -v l="$LINES" -v bw="$bw" -v bc="$bc" -v br="$br" -v fw="$fw" -v fc="$fc" \
        -v fr="$fr" -v p="$pair" 'BEGIN {
        printf "%-5d %16.0f %7.2f %8.1f %16.0f %7.2f %8.1f %7.2f %7.2f %7.2f\n",
            p, l / bw, bc, br / 1024, l / fw, fc, fr / 1024, fw / bw, fc / bc, fr / br }')
    echo "$line"
    read -r _ brate _ _ frate _ _ ratio cpu_ratio rss_ratio <<<"$line"
    RATIOS+=("$ratio"); CPU_RATIOS+=("$cpu_ratio"); RSS_RATIOS+=("$rss_ratio")
    BASE_RATES+=("$brate"); FLAG_RATES+=("$frate")
done

# median (min–max) of the arguments
stats() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf (v[NR] >= 1000 ? "%.0f (%.0f–%.0f)" : "%.2f (%.2f–%.2f)"), m, v[1], v[NR] }'
}
echo "median (min–max) over $PAIRS pairs:"
echo "  baseline lines/s: $(stats "${BASE_RATES[@]}")"
echo "  flagship lines/s: $(stats "${FLAG_RATES[@]}")"
echo "  wall time, flagship ÷ baseline: $(stats "${RATIOS[@]}")   (target ≤ 1.25)"
echo "  CPU time,  flagship ÷ baseline: $(stats "${CPU_RATIOS[@]}")   (user + system: the work done)"
echo "  peak RSS,  flagship ÷ baseline: $(stats "${RSS_RATIOS[@]}")   (target ≤ 1.5)"
