# Accurate Satterthwaite and Kenward-Roger df for the MMRM fits of the shared trial-small reference
# (../shared/reference/trial-small/expected/reference.json, key mmrm): the same gls fits on the same
# scored data, with the linear-parametrization inference of tests/r/mmrm_linear_inference.R beside
# emmeans' own gls Satterthwaite (which that reference records and which rests on nlme's numerical
# apVar). Run from the repository root:  Rscript tests/r/mmrm_trial_small.R
# Reads tests/fixtures/mmrm/trial_small_scored.csv (a copy of the reference's scored.csv);
# writes tests/fixtures/mmrm/mmrm_trial_small.json.
source("tests/r/common.R")
# Inputs (copies) are read from and outputs written to the MMRM fixture folder.
fixture_dir <- "tests/fixtures/mmrm"
source("tests/r/mmrm_linear_inference.R")
suppressPackageStartupMessages(library(emmeans))

sc <- read.csv(file.path(fixture_dir, "trial_small_scored.csv"), stringsAsFactors = FALSE)
ctl <- glsControl(natural = FALSE)
L <- list(T0 = c(0, 1, 0, 0, 0, 0), T1 = c(0, 1, 0, 0, 1, 0), T2 = c(0, 1, 0, 0, 0, 1))
out <- list()
for (outcome in c("imrs_client", "mhrm")) {
  d <- sc[!is.na(sc[[outcome]]), ]
  d <- data.frame(id = d$participant_id, arm = factor(d$arm, levels = c("TAU", "IMR")),
                  wave = factor(d$wave, levels = c("T0", "T1", "T2")), y = d[[outcome]],
                  stringsAsFactors = FALSE)
  d$widx <- as.integer(d$wave)
  d$id <- factor(d$id, levels = sort(unique(d$id)))
  d <- d[order(d$id, d$widx), ]
  fits <- list(
    unstructured = gls(y ~ arm * wave, data = d, correlation = corSymm(form = ~ widx | id),
                       weights = varIdent(form = ~ 1 | wave), method = "REML", control = ctl),
    compound_symmetry = gls(y ~ arm * wave, data = d, correlation = corCompSymm(form = ~ widx | id),
                            method = "REML", control = ctl)
  )
  res <- list()
  for (nm in names(fits)) {
    f <- fits[[nm]]
    cs <- as.data.frame(summary(contrast(emmeans(f, ~ arm | wave, mode = "satterthwaite", data = d), "revpairwise")))
    res[[nm]] <- list(
      nobs = f$dims$N, loglik = as.numeric(logLik(f)),
      emmeans_satterthwaite = rows(data.frame(wave = as.character(cs$wave), contrast = as.character(cs$contrast),
                                              estimate = cs$estimate, se = cs$SE, df = cs$df, stringsAsFactors = FALSE)),
      linear_inference = lin_infer(lin_setup_fit(f, d, nm, ~ arm * wave), L, "IMR - TAU", TRUE)
    )
    cat(outcome, nm, "\n")
  }
  out[[outcome]] <- res
}
meta <- make_meta("tests/r/mmrm_trial_small.R", c("nlme", "emmeans", "pbkrtest", "numDeriv", "jsonlite"), c(
  "Data: trial_small_scored.csv = ../shared/reference/trial-small/expected/scored.csv; rows with the outcome observed; arm levels TAU, IMR; wave T0, T1, T2; widx = as.integer(wave).",
  "Fits as reference.json mmrm.<outcome>.<unstructured|compound_symmetry> (REML, glsControl(natural = FALSE)); loglik should equal the reference's.",
  "emmeans_satterthwaite: emmeans(fit, ~ arm | wave, mode = 'satterthwaite') contrasts IMR - TAU (what the reference records, from nlme's numerical apVar).",
  "linear_inference: see tests/r/mmrm_linear_inference.R and mmrm.json: accurate Satterthwaite (contrasts_satterthwaite) and Kenward-Roger (kenward_roger.contrasts) on the linear covariance parametrization at the polished REML optimum. Use these as df targets; the emmeans values differ by up to a few percent."
))
write_fixture(c(list(meta = meta), out), "mmrm_trial_small.json")
