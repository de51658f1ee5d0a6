#!/usr/bin/env bash
# `cargo test --workspace` RUNS times in a row (default 5) while another build loads the
# machine, to show the test command is deterministic under load. The load: `cargo check` of the
# whole workspace, without end, in a copy of the sources (target/load-src, the tracked files)
# into its own target dir (target/load): its crate roots are touched before each round so it
# recompiles them, and neither the touches nor its lock reach the tests' build. (Touching the
# tested tree itself made every `hadrill run` of the tests rebuild the pods' binaries.)
# LOAD_CMD replaces the command. Prints each run's result and a summary; exits non-zero when a
# run failed. Logs go to target/test-under-load/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${RUNS:-5}
LOGS=$ROOT/target/test-under-load
LOAD_SRC=$ROOT/target/load-src
LOAD_CMD=${LOAD_CMD:-cargo check --workspace --all-targets --target-dir $ROOT/target/load --quiet}
mkdir -p "$LOGS" "$LOAD_SRC"
git ls-files -z | xargs -0 cp --parents -t "$LOAD_SRC"

# In a session (and process group) of its own, so the whole load ends with one kill.
setsid bash -c "cd '$LOAD_SRC'; while true; do
    touch sim/src/lib.rs harness/src/lib.rs controller/src/lib.rs sample/src/lib.rs
    $LOAD_CMD >>'$LOGS/load.log' 2>&1
done" &
LOAD_PID=$!
trap 'kill -- -$LOAD_PID 2>/dev/null' EXIT
echo "load: $LOAD_CMD in $LOAD_SRC (pid $LOAD_PID, log $LOGS/load.log)"

failed=0
for i in $(seq 1 "$RUNS"); do
    start=$(date +%s)
    if cargo test --workspace >"$LOGS/run-$i.log" 2>&1; then
        result=passed
    else
        result=FAILED
        failed=$((failed + 1))
    fi
    summary=$(grep -E '^test result:' "$LOGS/run-$i.log" | awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')
    echo "run $i/$RUNS: $result in $(( $(date +%s) - start )) s ($summary; log $LOGS/run-$i.log)"
    if [ "$result" = FAILED ]; then
        grep -E '^test .* FAILED$|^---- |panicked at' "$LOGS/run-$i.log" | head -20
    fi
done
echo "cargo test --workspace under load: $((RUNS - failed)) of $RUNS runs passed"
[ "$failed" -eq 0 ]
