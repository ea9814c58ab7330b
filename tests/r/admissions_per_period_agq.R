# Golden values of the per-period admission GLMMs with adaptive Gauss-Hermite quadrature, the
# shipped plan's `[admissions] nagq = 12`, on trial-small's per-period table (written by
# tests/r/admissions_per_period.R). Run from the repository root:
#   Rscript tests/r/admissions_per_period_agq.R
# Writes tests/fixtures/admissions_per_period/reference_agq12.json.
#
# Models (lme4::glmer, nAGQ = 12, tight tolerances; glmmTMB has no quadrature):
#   poisson:  admissions ~ arm * period + prior + (1 | participant_id), offset log(exposure)
#             (trial-small's negative binomial runs to theta = infinity: its Poisson limit)
#   logistic: any_admission ~ arm * period + prior + (1 | participant_id)
# SEs: vcov(use.hessian = TRUE), the finite-difference Hessian of the quadrature deviance in
# (theta, beta). Effects: emmeans(m, revpairwise ~ arm | period) and ~ arm (averaged over
# period), link scale, exponentiated, z intervals. glmer's nAGQ > 1 log-likelihood is on another
# scale (it sums deviance residuals; lme4 issues #161, #567), so no log-likelihood is compared.
source("tests/r/common.R")
suppressPackageStartupMessages({library(lme4); library(emmeans)})
out_dir <- "tests/fixtures/admissions_per_period"
tab <- read.csv(file.path(out_dir, "periods.csv"), stringsAsFactors = FALSE)
arms <- c("TAU", "IMR")
stopifnot(setequal(unique(tab$arm), arms))
tab$exposure <- tab$days_at_risk / 365.25
tab$arm <- factor(tab$arm, levels = arms)
tab$period <- factor(tab$period, levels = unique(tab$period))
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5), tolPwrss = 1e-12)
po <- glmer(admissions ~ arm * period + prior + (1 | participant_id), family = poisson, data = tab,
            offset = log(exposure), nAGQ = 12, control = tight)
lo <- glmer(any_admission ~ arm * period + prior + (1 | participant_id), family = binomial,
            data = tab, nAGQ = 12, control = tight)
effects <- function(m) {
  by <- summary(contrast(emmeans(m, ~ arm | period), "revpairwise"), infer = TRUE)
  ov <- suppressMessages(summary(contrast(emmeans(m, ~ arm), "revpairwise"), infer = TRUE))
  z <- qnorm(0.975)
  row <- function(label, est, se) list(period = label, log_ratio = est, se = se, ratio = exp(est),
    conf_low = exp(est - z * se), conf_high = exp(est + z * se), p_value = 2 * pnorm(-abs(est / se)))
  c(lapply(seq_len(nrow(by)), function(i) row(as.character(by$period[i]), by$estimate[i], by$SE[i])),
    list(row("overall", ov$estimate[1], ov$SE[1])))
}
block <- function(m) {
  fe <- fixef(m); se <- sqrt(diag(as.matrix(vcov(m, use.hessian = TRUE))))
  list(coefficients = lapply(seq_along(fe), function(j) list(term = names(fe)[j],
         estimate = unname(fe[j]), se = unname(se[j]))),
       sd_participant = unname(getME(m, "theta")), effects = effects(m))
}
out <- list(
  meta = make_meta("tests/r/admissions_per_period_agq.R", c("lme4", "emmeans"),
    c("15 significant digits", "glmer nAGQ = 12 with bobyqa rhoend = 1e-12, tolPwrss = 1e-12",
      "SEs from vcov(use.hessian = TRUE)")),
  n_agq = 12, poisson = block(po), logistic = block(lo))
jsonlite::write_json(out, file.path(out_dir, "reference_agq12.json"), digits = NA, auto_unbox = TRUE,
  pretty = TRUE, na = "null", null = "null")
cat("wrote", file.path(out_dir, "reference_agq12.json"), "\n")
