#!/bin/sh
# Scale benchmark: validate + score a simulated export of 100,000
# participants x 3 waves (default trial parameters: 6 instruments, 132 item columns, dropout,
# item gaps, admissions), timed on the test-profile binary with /usr/bin/time -v.
#
#   benches/scale.sh [DIR] [RUNS]
#
# The export is written once by the ignored test `scale_100k_participants` (which also times
# validate + score in process); each command is then run RUNS times (default 3) and the
# fastest wall time and the largest peak RSS are reported.
set -eu
DIR=${1:-/tmp/herstel-scale}
RUNS=${2:-3}
cd "$(dirname "$0")/.."
if [ ! -f "$DIR/assessments.csv" ]; then
    HERSTEL_BIG_EXPORT="$DIR" cargo test --test foundation -- --ignored scale_100k_participants --nocapture
fi
BIN=target/debug/herstel
[ -x "$BIN" ] || cargo test --test foundation --no-run
OUT=$(mktemp -d)
measure() {
    label=$1
    shift
    best=""
    peak=0
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        /usr/bin/time -v "$@" >/dev/null 2>"$OUT/time.txt" || { cat "$OUT/time.txt"; exit 1; }
        wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$OUT/time.txt" | awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
        rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$OUT/time.txt")
        cpu=$(sed -n 's/.*User time (seconds): //p;s/.*System time (seconds): //p' "$OUT/time.txt" | paste -sd+ | bc)
        if [ -z "$best" ] || [ "$(echo "$wall < $best" | bc)" = 1 ]; then best=$wall; bestcpu=$cpu; fi
        if [ "$rss" -gt "$peak" ]; then peak=$rss; fi
        i=$((i + 1))
    done
    echo "$label: best wall ${best} s (cpu ${bestcpu} s), peak RSS $((peak / 1024)) MB over $RUNS runs"
}
measure "validate" "$BIN" validate "$DIR"
measure "score (validate + score + write scores.parquet + exclusion log)" "$BIN" score "$DIR" --out "$OUT/scores.parquet" --log "$OUT/exclusions.parquet"
measure "score to CSV" "$BIN" score "$DIR" --out "$OUT/scores.csv"
rm -rf "$OUT"
