# Golden values of a GLMM with prior weights (glmmTMB); run from the repository root:
#   Rscript tests/r/glmm_weights.R  -> tests/fixtures/glmm/grouseticks_weights.json
suppressMessages({library(glmmTMB); source("tests/r/common.R")})
g <- read.csv("tests/fixtures/glmm/grouseticks.csv")
g$YEAR <- factor(g$YEAR, levels = c("95", "96", "97")); g$LOCATION <- factor(g$LOCATION)
g$w <- 0.5 + ((seq_len(nrow(g)) - 1) %% 4) / 2
m <- glmmTMB(TICKS ~ YEAR + height_z + (1 | LOCATION), family = poisson, data = g, weights = w,
  control = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14)))
fe <- fixef(m)$cond; se <- sqrt(diag(vcov(m)$cond))
out <- list(meta = make_meta("tests/r/glmm_weights.R", c("glmmTMB", "TMB"), c("15 significant digits")),
  note = "grouseticks, TICKS ~ YEAR + height_z + (1 | LOCATION), Poisson, prior weights w = 0.5 + ((row - 1) mod 4) / 2 (glmmTMB weights: each row's log-likelihood times w), glmmTMB rel.tol = 1e-14",
  fixed_effects = lapply(seq_along(fe), function(j) list(term = names(fe)[j], estimate = unname(fe[j]), se = unname(se[j]))),
  sd = sqrt(VarCorr(m)$cond$LOCATION[1]), loglik = as.numeric(logLik(m)))
jsonlite::write_json(out, "tests/fixtures/glmm/grouseticks_weights.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
print(out$loglik); print(fe)
