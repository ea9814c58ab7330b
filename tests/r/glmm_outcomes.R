# Golden values for binary and count outcomes in the outcome models ([model] family, issue 15
# point 4). Run from the repository root:  Rscript tests/r/glmm_outcomes.R
# Writes tests/fixtures/glmm_outcomes/{counts.csv, reference.json}.
#
# binary: trial-small's scored HoNOS (tests/fixtures/r/trial_small_scored.csv) as 0/1 at >= 12,
#   y ~ arm * wave + (1 | participant_id), binomial (logit);
# counts: a simulated count outcome (seed 20261203; 150 participants, waves T0-T2),
#   y ~ arm * wave + (1 | participant_id), poisson and nbinom2.
# Reference fits: glmmTMB with rel.tol = 1e-14 (glmer tight beside, with its log-likelihood).
# emmeans(m, ~ arm | wave, type = "response") for the marginal means (probabilities, rates);
# contrast(emmeans(m, ~ arm | wave), "revpairwise", type = "response") for the odds / rate
# ratios per wave (z tests: p from the ratio's z as herstel, emmeans' t on df.residual kept as
# p_emmeans); the change contrast = the arm x wave interaction coefficient exponentiated (the
# ratio of the wave's ratio to the baseline ratio); joint_tests for arm:wave (F = chi^2 / 2).
source("tests/r/common.R")
suppressPackageStartupMessages({library(glmmTMB); library(lme4); library(emmeans)})
out_dir <- "tests/fixtures/glmm_outcomes"
tight <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14))
tight_glmer <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-10)

sc <- read.csv("tests/fixtures/r/trial_small_scored.csv", stringsAsFactors = FALSE)
sc <- sc[!is.na(sc$honos), ]
bin <- data.frame(participant_id = sc$participant_id, arm = factor(sc$arm, levels = c("TAU", "IMR")),
                  wave = factor(sc$wave, levels = c("T0", "T1", "T2")), y = as.integer(sc$honos >= 12))

set.seed(20261203)
n <- 150
ids <- sprintf("C%03d", 1:n); arm <- rep(c("CAU", "IMR"), length.out = n); b <- rnorm(n, 0, 0.6)
cnt <- do.call(rbind, lapply(1:n, function(i) {
  w <- c("T0", "T1", "T2"); eff <- c(0, -0.1, -0.2) + if (arm[i] == "IMR") c(0, -0.3, -0.4) else 0
  mu <- exp(1.2 + eff + b[i]) * rgamma(3, 4, 4)
  d <- data.frame(participant_id = ids[i], arm = arm[i], wave = w, y = rpois(3, mu))
  d[runif(3) > c(1, 0.9, 0.8), "y"] <- NA
  d
}))
cnt <- cnt[!is.na(cnt$y), ]
write.csv(cnt, file.path(out_dir, "counts.csv"), row.names = FALSE)
cnt <- read.csv(file.path(out_dir, "counts.csv"), stringsAsFactors = FALSE)
cnt$arm <- factor(cnt$arm, levels = c("CAU", "IMR")); cnt$wave <- factor(cnt$wave, levels = c("T0", "T1", "T2"))

f <- y ~ arm * wave + (1 | participant_id)
block <- function(data, family, glmer_family) {
  m <- capture(glmmTMB(f, family = family, data = data, control = tight))
  g <- if (is.null(glmer_family)) NULL else capture(glmer(f, family = glmer_family, data = data, control = tight_glmer))
  mm <- m$value
  fe <- fixef(mm)$cond; se <- sqrt(diag(vcov(mm)$cond))
  emm <- summary(emmeans(mm, ~ arm | wave, type = "response"), infer = TRUE)
  emm_link <- summary(emmeans(mm, ~ arm | wave), infer = TRUE)
  inv <- family(mm)$linkinv
  est_col <- intersect(c("prob", "rate", "response"), names(emm))[1]
  ctr <- summary(contrast(emmeans(mm, ~ arm | wave), "revpairwise", type = "response"), infer = TRUE)
  rcol <- intersect(c("odds.ratio", "ratio"), names(ctr))[1]
  lin <- summary(contrast(emmeans(mm, ~ arm | wave), "revpairwise"), infer = TRUE)
  jt <- joint_tests(mm)
  z <- qnorm(0.975)
  list(
    fixed_effects = lapply(seq_along(fe), function(j) list(term = names(fe)[j], estimate = unname(fe[j]), se = unname(se[j]))),
    sd = sqrt(VarCorr(mm)$cond$participant_id[1]),
    theta = if (family$family == "nbinom2") sigma(mm) else NULL,
    loglik = as.numeric(logLik(mm)), aic = AIC(mm), bic = BIC(mm), nobs = nobs(mm),
    loglik_glmer_tight = if (is.null(g)) NULL else as.numeric(logLik(g$value)),
    warnings = I(m$warnings),
    emmeans = lapply(seq_len(nrow(emm)), function(i) list(arm = as.character(emm$arm[i]), wave = as.character(emm$wave[i]),
      estimate = emm[[est_col]][i], se = emm$SE[i],
      conf_low = inv(emm_link$emmean[i] - z * emm_link$SE[i]), conf_high = inv(emm_link$emmean[i] + z * emm_link$SE[i]))),
    contrasts = lapply(seq_len(nrow(ctr)), function(i) list(wave = as.character(ctr$wave[i]),
      ratio = ctr[[rcol]][i], se = ctr$SE[i], conf_low = exp(lin$estimate[i] - z * lin$SE[i]),
      conf_high = exp(lin$estimate[i] + z * lin$SE[i]), z = lin$estimate[i] / lin$SE[i],
      p_value = 2 * pnorm(-abs(lin$estimate[i] / lin$SE[i])), p_emmeans = ctr$p.value[i])),
    change = lapply(c("T1", "T2"), function(w) { nm <- paste0("armIMR:wave", w); if (!nm %in% names(fe)) return(NULL)
      list(wave = w, ratio = exp(unname(fe[nm])), conf_low = exp(unname(fe[nm]) - z * unname(se[nm])),
           conf_high = exp(unname(fe[nm]) + z * unname(se[nm])), p_value = 2 * pnorm(-abs(fe[[nm]] / se[[nm]]))) }),
    # the Wald chi-square of the interaction coefficients (joint_tests prints F = chi^2 / 2 rounded)
    joint_test = { k <- grep(":", names(fe)); V <- as.matrix(vcov(mm)$cond)[k, k]
      chisq <- drop(t(fe[k]) %*% solve(V, fe[k]))
      list(term = "arm:wave", f = chisq / length(k), df1 = length(k), p_value = pchisq(chisq, length(k), lower.tail = FALSE),
           f_joint_tests = jt$F.ratio[3], p_joint_tests = jt$p.value[3]) })
}
out <- list(
  meta = make_meta("tests/r/glmm_outcomes.R", c("glmmTMB", "lme4", "emmeans", "TMB"),
    c("15 significant digits", "NA as null", "glmmTMB tight fits; emmeans type = response; z-test p-values")),
  binary = block(bin, binomial(), binomial()),
  poisson = block(cnt, poisson(), poisson()),
  negative_binomial = block(cnt, nbinom2(), NULL))
jsonlite::write_json(out, file.path(out_dir, "reference.json"), digits = NA, auto_unbox = TRUE,
  pretty = TRUE, na = "null", null = "null")
cat("wrote", file.path(out_dir, "reference.json"), "\n")
