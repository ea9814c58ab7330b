#!/bin/sh
# Timings of the missing-data sensitivity analyses (issue 17, point 6), printed by the ignored
# tests in tests/missing.rs on simulated trials of 400 participants x 4 follow-up waves:
#   - the default set: MAR, J2R, CR, CIR by conditional mean with jackknife (400 warm-started
#     leave-one-out MMRM fits) and a 21-point delta grid for every strategy (target < 5 s);
#   - approximate Bayesian MI with M = 500 and a 21-point grid (target < 30 s).
# Usage: benches/missing.sh [--release]   (default: the test profile, as `cargo test`)
set -e
cd "$(dirname "$0")/.."
cargo test $1 --test missing -- --ignored --nocapture timing 2>&1 | grep -E "s \(|test result"
