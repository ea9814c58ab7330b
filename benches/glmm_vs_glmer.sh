#!/usr/bin/env bash
# Speed benchmark of the GLMM with one random intercept: R (glmer for Poisson, glmmTMB for
# the negative binomial; fit time in one R session) and herstel (release build, whole process)
# on the same simulated files, in one run.
#
#   benches/glmm_vs_glmer.sh [workdir]      (default workdir: target/glmm-bench)
#
# Models (simulated: 2 arms, periods, a random intercept per participant with SD 0.6,
# exposure in (0.5, 1)):
#   poisson_100k  y ~ arm * period + offset(log_exposure) + (1 | id), Poisson, 20,000 ids x 5
#   nb_40k        the same, NB2 (size 2), 10,000 ids x 4 periods
# Environment: HERSTEL=path uses this binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-target/glmm-bench}"
mkdir -p "$WORK"
command -v Rscript >/dev/null || { echo "Rscript not found: install R with lme4 and glmmTMB" >&2; exit 1; }
if [ -z "${HERSTEL:-}" ]; then
  cargo build --release --quiet
  HERSTEL="$PWD/target/release/herstel"
fi
Rscript --vanilla - "$WORK" > "$WORK/r_times.tsv" <<'RS'
args <- commandArgs(trailingOnly = TRUE); work <- args[1]
suppressMessages({library(lme4); library(glmmTMB)})
set.seed(11)
mk <- function(n_id, n_t, nb = FALSE) {
  id <- rep(seq_len(n_id), each = n_t); t <- rep(seq_len(n_t) - 1, n_id)
  arm <- ifelse(id %% 2 == 0, "IMR", "TAU"); b <- rnorm(n_id, 0, 0.6)[id]
  exposure <- runif(length(id), 0.5, 1)
  eta <- -0.5 + 0.1 * t - 0.2 * (arm == "IMR") * t + b + log(exposure)
  y <- if (nb) rnbinom(length(id), mu = exp(eta), size = 2) else rpois(length(id), exp(eta))
  data.frame(id = sprintf("P%06d", id), arm = arm, period = t, exposure = exposure,
             log_exposure = log(exposure), y = y)
}
fp <- file.path(work, "poisson_100k.csv"); fn <- file.path(work, "nb_40k.csv")
if (!file.exists(fp)) write.csv(mk(20000, 5), fp, row.names = FALSE)
if (!file.exists(fn)) write.csv(mk(10000, 4, nb = TRUE), fn, row.names = FALSE)
d <- read.csv(fp); d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
t1 <- system.time(m1 <- glmer(y ~ arm * period + offset(log_exposure) + (1 | id), family = poisson, data = d))[["elapsed"]]
n <- read.csv(fn); n$arm <- factor(n$arm, levels = c("TAU", "IMR"))
t2 <- system.time(m2 <- glmmTMB(y ~ arm * period + offset(log_exposure) + (1 | id), family = nbinom2, data = n))[["elapsed"]]
cat(sprintf("poisson_100k\tglmer\t%.3f\t%.6f\nnb_40k\tglmmTMB\t%.3f\t%.6f\n", t1, as.numeric(logLik(m1)), t2, as.numeric(logLik(m2))))
RS
printf "%-14s %-8s %9s %11s %7s %7s %16s %16s\n" model R R_fit_s herstel_s ratio rss_MB R_loglik herstel_loglik
while IFS=$'\t' read -r model tool rt rll; do
  fam=poisson; [ "$model" = nb_40k ] && fam=negative-binomial
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$HERSTEL" fit --data "$WORK/$model.csv" \
    --formula "y ~ arm * period + (1 | id)" --offset log_exposure --family $fam \
    --levels arm=TAU,IMR --json > "$WORK/herstel_$model.json"
  read -r ht rss < "$WORK/time.txt"
  hll=$(python3 -c "import json; print('%.6f' % json.load(open('$WORK/herstel_$model.json'))['loglik'])")
  ratio=$(python3 -c "print(f'{$rt/max($ht,1e-9):.1f}x')")
  printf "%-14s %-8s %9s %11s %7s %7d %16s %16s\n" "$model" "$tool" "$rt" "$ht" "$ratio" $((rss / 1024)) "$rll" "$hll"
done < "$WORK/r_times.tsv"
