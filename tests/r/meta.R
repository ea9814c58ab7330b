# Golden values for random-effects meta-analysis of per-site estimates:
# metafor::rma(yi, sei = se, method = "REML", test = "knha") converged tightly, plus leave1out.
# Run from the repository root:  Rscript tests/r/meta.R   -> tests/fixtures/r/meta.json
source("tests/r/common.R")
suppressPackageStartupMessages(library(metafor))

set.seed(99)
sets <- list(
  four_sites = data.frame(site = sprintf("S%d", 1:4),
                          yi = c(0.31, 0.12, 0.55, -0.05), se = c(0.14, 0.18, 0.16, 0.21)),
  # estimates much closer together than their SEs: REML tau2 on the boundary 0
  homogeneous = data.frame(site = sprintf("S%d", 1:5),
                           yi = c(0.20, 0.22, 0.18, 0.21, 0.19), se = c(0.15, 0.20, 0.12, 0.25, 0.18)),
  twelve_sites = {
    k <- 12
    se <- round(runif(k, 0.08, 0.30), 4)
    yi <- round(0.25 + rnorm(k, 0, 0.15) + rnorm(k, 0, se), 4)
    data.frame(site = sprintf("S%02d", 1:k), yi = yi, se = se)
  },
  three_sites = data.frame(site = c("A", "B", "C"), yi = c(-2.1, 1.4, 4.8), se = c(1.2, 0.9, 1.6))
)

rma_rec <- function(res) {
  pr <- predict(res)
  list(
    k = res$k, estimate = unname(as.numeric(res$b)), se = res$se, t = res$zval, df = res$k - 1, ddf = res$ddf,
    p = res$pval, ci_lb = res$ci.lb, ci_ub = res$ci.ub, tau2 = res$tau2, se_tau2 = res$se.tau2,
    tau = sqrt(res$tau2), i2 = res$I2, h2 = res$H2, q = res$QE, q_df = res$k - 1, q_p = res$QEp,
    pi_lb = pr$pi.lb, pi_ub = pr$pi.ub, loglik_reml = as.numeric(logLik(res)),
    s2w = if (!is.null(res$s2w)) res$s2w else NA
  )
}

out <- list()
for (nm in names(sets)) {
  s <- sets[[nm]]
  tight <- rma(yi = s$yi, sei = s$se, method = "REML", test = "knha",
               control = list(threshold = 1e-12, maxiter = 1000))
  dflt <- rma(yi = s$yi, sei = s$se, method = "REML", test = "knha")
  l1 <- as.data.frame(leave1out(tight))
  out[[nm]] <- list(
    data = rows(s),
    rma_tight = rma_rec(tight),
    rma_default = rma_rec(dflt),
    leave1out = rows(data.frame(omitted = s$site, estimate = l1$estimate, se = l1$se, t = l1$tval,
                                p = l1$pval, ci_lb = l1$ci.lb, ci_ub = l1$ci.ub, q = l1$Q, q_p = l1$Qp,
                                tau2 = l1$tau2, i2 = l1$I2, h2 = l1$H2, stringsAsFactors = FALSE))
  )
  cat(nm, "\n")
}

meta <- make_meta("tests/r/meta.R", c("metafor", "jsonlite"), c(
  "rma_tight: metafor::rma(yi, sei = se, method = 'REML', test = 'knha', control = list(threshold = 1e-12, maxiter = 1000)); rma_default: the same with default control (tau2 iterations stop at a change < 1e-5).",
  "test = 'knha': Knapp-Hartung: se multiplied by sqrt(s2w) (s2w given; no truncation at 1, so the homogeneous set gets an SE far below the fixed-effect SE), t distribution with k - 1 df for t, p, CI and the prediction interval (predict(res): pi_lb/pi_ub = estimate -+ qt(0.975, k - 1) sqrt(se^2 + tau2)).",
  "i2 and h2 in metafor's REML form (I2 = 100 tau2 / (tau2 + typical sampling variance), percent); q = Cochran's QE with k - 1 df.",
  "leave1out(rma_tight): each site omitted in turn (same method and test); rows in data order.",
  "twelve_sites data drawn with set.seed(99) and rounded to 4 decimals; the other sets are literal."
))
write_fixture(c(list(meta = meta), out), "meta.json")
