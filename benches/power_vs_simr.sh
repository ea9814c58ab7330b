#!/usr/bin/env bash
# Speed benchmark of `herstel power` against what simr does in R (simulate a trial, refit
# lmerTest::lmer, test), in one run, printing the time ratio.
#
#   benches/power_vs_simr.sh [workdir]      (default workdir: target/power-bench)
#
# The plan (written to the workdir): two arms 1:1, individually randomized, 3 waves
# (0, 6, 12 months), ICC participant 0.5, AR(1) 0, MCAR dropout 10% / 20%, effect d = 0.3 at
# T2, primary LMM y ~ arm * wave + (1 | participant_id) with Satterthwaite df, the contrast
# arm difference at T2; 1,000 simulated trials x 5 sizes (80, 160, 240, 320, 400 participants),
# each trial fitted twice (with the effect and without: power and type I error), so 10,000 fits.
# R: the same data model, lmerTest::lmer + contest (Satterthwaite) per fit, R_TRIALS trials
# per size (default 50, also twice per trial), its time extrapolated linearly to 1,000 trials.
#
# Environment:
#   HERSTEL=path     use this binary instead of building one in release mode
#   R_TRIALS=n       trials per size in the R loop (default 50)
#   SKIP_R=1         reuse r_time.txt from an earlier run
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-target/power-bench}"
mkdir -p "$WORK"
R_TRIALS="${R_TRIALS:-50}"
command -v Rscript >/dev/null || { echo "Rscript not found: install R with lme4 and lmerTest" >&2; exit 1; }
if [ -z "${HERSTEL:-}" ]; then
  cargo build --release --quiet
  HERSTEL="$PWD/target/release/herstel"
fi

cat > "$WORK/bench-plan.toml" <<'TOML'
title = "Benchmark: 3 waves, LMM with Satterthwaite df"
seed = 1
simulations = 1000
[arms]
labels = ["CAU", "ERH"]
[design]
type = "individual"
[waves]
labels = ["T0", "T1", "T2"]
months = [0, 6, 12]
[outcome]
baseline_mean = 3.4
baseline_sd = 0.6
icc_participant = 0.5
[effect]
scale = "d"
values = { T1 = 0.15, T2 = 0.3 }
[dropout]
mechanism = "MCAR"
rates = { T1 = 0.1, T2 = 0.2 }
[analysis]
df = "satterthwaite"
test = "T2"
[sample_size]
participants = [80, 160, 240, 320, 400]
TOML

echo "== herstel power: 1000 trials x 5 sizes (10,000 LMM fits), $(nproc) cores"
/usr/bin/time -f "%e %M %U %S" -o "$WORK/herstel_time.txt" "$HERSTEL" power "$WORK/bench-plan.toml" \
  --out "$WORK/herstel-out" --no-png | tee "$WORK/herstel_stdout.txt"
read -r H_SECS H_KB H_USER H_SYS < "$WORK/herstel_time.txt"

if [ "${SKIP_R:-0}" != 1 ]; then
echo "== R: simulate + lmerTest::lmer + contest, $R_TRIALS trials x 5 sizes (x2 fits), one core"
Rscript --vanilla - "$WORK" "$R_TRIALS" <<'RS'
args <- commandArgs(trailingOnly = TRUE); work <- args[1]; trials <- as.integer(args[2])
suppressMessages({ library(lme4); library(lmerTest) })
sim_trial <- function(n, delta) {
  n1 <- n %/% 2; arm <- rep(c("CAU", "ERH"), c(n - n1, n1))
  u <- rnorm(n, 0, sqrt(0.5) * 0.6)
  d <- expand.grid(id = seq_len(n), wave = c("T0", "T1", "T2"))
  d$arm <- factor(arm[d$id], levels = c("CAU", "ERH"))
  d$wave <- factor(d$wave, levels = c("T0", "T1", "T2"))
  eff <- c(T0 = 0, T1 = 0.15, T2 = 0.3)[as.character(d$wave)] * 0.6 * delta
  d$y <- 3.4 + u[d$id] + rnorm(nrow(d), 0, sqrt(0.5) * 0.6) + (d$arm == "ERH") * eff
  # monotone MCAR dropout: 10% gone at T1, 20% at T2
  gone1 <- runif(n) < 0.1; gone2 <- gone1 | (runif(n) < 1 - 0.8 / 0.9)
  drop <- (d$wave == "T1" & gone1[d$id]) | (d$wave == "T2" & gone2[d$id])
  d <- d[!drop, ]; d$id <- factor(d$id); d
}
L <- matrix(c(0, 1, 0, 0, 0, 1), nrow = 1)   # ERH - CAU at T2: armERH + armERH:waveT2
set.seed(1)
t0 <- proc.time()
rej <- 0; fits <- 0
for (n in c(80, 160, 240, 320, 400)) for (i in seq_len(trials)) for (delta in c(1, 0)) {
  m <- lmer(y ~ arm * wave + (1 | id), data = sim_trial(n, delta))
  s <- summary(m)                          # what simr's default test reads
  ct <- contest(m, L, ddf = "Satterthwaite")
  rej <- rej + (delta == 1 && ct[["Pr(>F)"]] < 0.05); fits <- fits + 1
}
pt <- proc.time() - t0
el <- pt[["elapsed"]]; cpu <- pt[["user.self"]] + pt[["sys.self"]]
cat(sprintf("%.3f %d %d %.3f\n", el, fits, trials, cpu), file = file.path(work, "r_time.txt"))
cat(sprintf("R: %d fits in %.1f s (%.1f ms per fit); power at the last sizes pooled %.2f\n",
            fits, el, 1000 * el / fits, rej / (fits / 2)))
RS
fi
read -r R_SECS R_FITS R_N R_CPU < "$WORK/r_time.txt"
python3 - "$H_SECS" "$H_KB" "$R_SECS" "$R_FITS" "$R_N" "$H_USER" "$H_SYS" "$R_CPU" "$(cat /proc/loadavg | cut -d' ' -f1)" <<'PY'
import sys
h, kb, r, rf, rn = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
h_cpu, r_cpu, load = float(sys.argv[6]) + float(sys.argv[7]), float(sys.argv[8]), sys.argv[9]
r_full = r * 10000 / rf
print(f"herstel: 10,000 fits in {h:.1f} s wall ({1000*h/10000:.2f} ms per fit, peak {kb/1024:.0f} MB)")
print(f"R (lmerTest::lmer + contest, one core): {rf} fits in {r:.1f} s = {1000*r/rf:.1f} ms per fit; "
      f"extrapolated to 10,000 fits: {r_full:.0f} s ({r_full/60:.1f} min)")
print(f"ratio (R extrapolated / herstel): {r_full / h:.0f}x wall (herstel on all cores, R on one)")
r_cpu_full = r_cpu * 10000 / rf
print(f"CPU time: herstel {h_cpu:.1f} s, R {r_cpu:.1f} s for {rf} fits = {r_cpu_full:.0f} s extrapolated; "
      f"ratio {r_cpu_full / h_cpu:.0f}x (load average at the end: {load})")
PY
