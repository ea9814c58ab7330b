# Golden values of GLMMs with a vector-valued random effect of one grouping factor,
# (1 + time | id) (issue 15 point 1). Run from the repository root:  Rscript tests/r/glmm_slopes.R
# Writes tests/fixtures/glmm_slopes/{counts.csv, binary.csv, reference.json}.
# Data (seed 20261204): 200 participants x 4 waves (time 0, 0.5, 1, 1.5 years), arm CAU/IMR;
#   counts: y ~ Poisson(exp(0.3 + 0.2 time - 0.3 imr:time + b0 + b1 time)), (b0, b1) with SDs
#   0.7 and 0.4 and correlation -0.3; binary: y ~ Bernoulli(plogis(-0.5 + 0.4 time - 0.5
#   imr:time + b0 + b1 time)), SDs 1.0 and 0.6, correlation 0.2.
# Fits: glmer (Laplace) with tight bobyqa and glmmTMB with rel.tol = 1e-14; the log-likelihoods of
# both and of glmer's default are recorded; the reference is the fit with the higher one.
source("tests/r/common.R")
suppressPackageStartupMessages({library(glmmTMB); library(lme4); library(MASS)})
out_dir <- "tests/fixtures/glmm_slopes"
set.seed(20261204)
n <- 200; times <- c(0, 0.5, 1, 1.5)
arm <- rep(c("CAU", "IMR"), length.out = n)
mk <- function(sd0, sd1, rho) { S <- matrix(c(sd0^2, rho * sd0 * sd1, rho * sd0 * sd1, sd1^2), 2); mvrnorm(n, c(0, 0), S) }
b <- mk(0.7, 0.4, -0.3)
cnt <- do.call(rbind, lapply(1:n, function(i) data.frame(id = sprintf("P%03d", i), arm = arm[i], time = times,
  y = rpois(4, exp(0.3 + 0.2 * times - 0.3 * (arm[i] == "IMR") * times + b[i, 1] + b[i, 2] * times)))))
b <- mk(1.0, 0.6, 0.2)
bin <- do.call(rbind, lapply(1:n, function(i) data.frame(id = sprintf("P%03d", i), arm = arm[i], time = times,
  y = rbinom(4, 1, plogis(-0.5 + 0.4 * times - 0.5 * (arm[i] == "IMR") * times + b[i, 1] + b[i, 2] * times)))))
write.csv(cnt, file.path(out_dir, "counts.csv"), row.names = FALSE)
write.csv(bin, file.path(out_dir, "binary.csv"), row.names = FALSE)
cnt <- read.csv(file.path(out_dir, "counts.csv")); bin <- read.csv(file.path(out_dir, "binary.csv"))
cnt$arm <- factor(cnt$arm, levels = c("CAU", "IMR")); bin$arm <- factor(bin$arm, levels = c("CAU", "IMR"))
f <- y ~ time + arm:time + (1 + time | id)
tight_glmer <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-10)
tight_tmb <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14))
block <- function(data, fam) {
  gd <- capture(glmer(f, family = fam, data = data))
  gt <- capture(glmer(f, family = fam, data = data, control = tight_glmer))
  tm <- capture(glmmTMB(f, family = fam, data = data, control = tight_tmb))
  g <- gt$value; t <- tm$value
  vc <- VarCorr(g)$id; vt <- VarCorr(t)$cond$id
  one <- function(fe, se, sds, corr, ll) list(
    fixed_effects = lapply(seq_along(fe), function(j) list(term = names(fe)[j], estimate = unname(fe[j]), se = unname(se[j]))),
    sds = I(unname(sds)), corr = corr, loglik = ll)
  list(
    formula = deparse(f),
    glmer_default_loglik = as.numeric(logLik(gd$value)), glmer_default_warnings = I(gd$warnings),
    glmer = one(fixef(g), sqrt(diag(as.matrix(vcov(g)))), attr(vc, "stddev"), attr(vc, "correlation")[2, 1],
                as.numeric(logLik(g))),
    glmer_warnings = I(gt$warnings), glmer_theta = I(unname(getME(g, "theta"))),
    glmmTMB = one(fixef(t)$cond, sqrt(diag(vcov(t)$cond)), attr(vt, "stddev"), attr(vt, "correlation")[2, 1],
                  as.numeric(logLik(t))),
    glmmTMB_warnings = I(tm$warnings))
}
out <- list(meta = make_meta("tests/r/glmm_slopes.R", c("lme4", "glmmTMB", "TMB", "MASS"),
  c("15 significant digits", "NA as null")),
  poisson = block(cnt, poisson()), binomial = block(bin, binomial()))
jsonlite::write_json(out, file.path(out_dir, "reference.json"), digits = NA, auto_unbox = TRUE,
  pretty = TRUE, na = "null", null = "null")
cat("wrote", file.path(out_dir, "reference.json"), "\n")
