# Golden values for residual structures combined with varIdent weights and for random slopes
# with varIdent on the simulated trial (tests/fixtures/mmrm/trial_long.csv):
#   gls(y ~ arm * wave, correlation = corCompSymm / corAR1 (form = ~ widx | id),
#       weights = varIdent(form = ~ 1 | arm))                      REML and ML
#   lme(y ~ arm * time, random = ~ 1 + time | id, weights = varIdent(form = ~ 1 | arm))
#   lme(y ~ arm * wave, random = ~ 1 | id, correlation = corAR1(form = ~ widx | id))
# Run from the repository root:  Rscript tests/r/mmrm_weights.R  -> tests/fixtures/mmrm/mmrm_weights.json
source("tests/r/common.R")
fixture_dir <- "tests/fixtures/mmrm"
suppressPackageStartupMessages(library(nlme))

d <- read.csv(file.path(fixture_dir, "trial_long.csv"), stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("CAU", "IMR"))
d$wave <- factor(d$wave, levels = c("T1", "T2", "T3"))
d$id <- factor(d$id, levels = sort(unique(d$id)))
d <- d[order(d$id, d$widx), ]
ctl <- glsControl(natural = FALSE, tolerance = 1e-10, msTol = 1e-10, maxIter = 500, msMaxIter = 500)
lctl <- lmeControl(natural = FALSE, tolerance = 1e-10, msTol = 1e-10, maxIter = 500, msMaxIter = 500,
                   niterEM = 100, msMaxEval = 2000)

rec <- function(f, call_text, re = FALSE) {
  tt <- summary(f)$tTable
  ll <- logLik(f)
  out <- list(
    call = call_text, method = f$method, nobs = f$dims$N,
    coefficients = rows(data.frame(term = rownames(tt), estimate = tt[, "Value"], se = tt[, "Std.Error"],
                                   stringsAsFactors = FALSE)),
    sigma = f$sigma,
    varident_ratios = if (!is.null(f$modelStruct$varStruct))
      as.list(coef(f$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)) else NULL,
    loglik = as.numeric(ll), loglik_df = attr(ll, "df"), aic = AIC(f), bic = BIC(f)
  )
  if (re) {
    G <- unclass(getVarCov(f))
    out$random_effects_covariance <- unname(lapply(seq_len(nrow(G)), function(i) I(unname(G[i, ]))))
  } else {
    out$correlation <- I(unname(coef(f$modelStruct$corStruct, unconstrained = FALSE)))
  }
  out
}
fits <- list()
for (m in c("REML", "ML")) {
  fits[[paste0("cs_ident_arm__", tolower(m))]] <- rec(
    gls(y ~ arm * wave, data = d, correlation = corCompSymm(form = ~ widx | id),
        weights = varIdent(form = ~ 1 | arm), method = m, control = ctl),
    "gls(y ~ arm * wave, correlation = corCompSymm(form = ~ widx | id), weights = varIdent(form = ~ 1 | arm))")
  fits[[paste0("ar1_ident_arm__", tolower(m))]] <- rec(
    gls(y ~ arm * wave, data = d, correlation = corAR1(form = ~ widx | id),
        weights = varIdent(form = ~ 1 | arm), method = m, control = ctl),
    "gls(y ~ arm * wave, correlation = corAR1(form = ~ widx | id), weights = varIdent(form = ~ 1 | arm))")
  fits[[paste0("slope_ident_arm__", tolower(m))]] <- rec(
    lme(y ~ arm * time, data = d, random = ~ 1 + time | id, weights = varIdent(form = ~ 1 | arm),
        method = m, control = lctl),
    "lme(y ~ arm * time, random = ~ 1 + time | id, weights = varIdent(form = ~ 1 | arm))", re = TRUE)
  f_ri <- lme(y ~ arm * wave, data = d, random = ~ 1 | id, correlation = corAR1(form = ~ widx | id),
              method = m, control = lctl)
  r_ri <- rec(f_ri, "lme(y ~ arm * wave, random = ~ 1 | id, correlation = corAR1(form = ~ widx | id))", re = TRUE)
  r_ri$correlation <- I(unname(coef(f_ri$modelStruct$corStruct, unconstrained = FALSE)))
  r_ri$varident_ratios <- NULL
  fits[[paste0("ri_ar1__", tolower(m))]] <- r_ri
  cat(m, "\n")
}
meta <- make_meta("tests/r/mmrm_weights.R", c("nlme", "jsonlite"), c(
  "Data: tests/fixtures/mmrm/trial_long.csv (copy of tests/fixtures/r/trial_long.csv), sorted by id and wave; arm CAU, IMR; wave T1-T3; widx = wave index.",
  "coefficients: nlme tTable (ML SEs carry nlme's N / (N - p) variance scaling). varident_ratios: SD ratio per arm (CAU = 1). correlation: corCompSymm rho or corAR1 phi. random_effects_covariance: getVarCov (rows/columns (Intercept), time).",
  "Tight control (tolerance = msTol = 1e-10)."
))
write_fixture(c(list(meta = meta), fits), "mmrm_weights.json")
