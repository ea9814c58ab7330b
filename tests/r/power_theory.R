# Closed-form power of the designs `herstel power` is checked against (tests/power.rs).
# Run from the repository root:  Rscript tests/r/power_theory.R   (< 1 s)
# Writes tests/fixtures/power/power_theory.json.
#
# Every point is a two-sided test (1b: one-sided) at alpha = 0.05 with total SD sigma = 1 (so effects are d).
# Power of a t test with df nu and noncentrality lambda = delta / SE (exact noncentral t):
#   P(|T'| > qt(0.975, nu)),  T' ~ t(nu, lambda)
# (pwr::pwr.t.test / pwr.t2n.test for the two-sample t test, identical by construction).
#
# 1. two-sample t test (post-test only, individually randomized):       SE^2 = 1/n1 + 1/n0,
#    nu = n1 + n0 - 2 (pwr::pwr.t2n.test); one-sided in the direction of the effect
#    (alternative = "greater" / "less").
# 2. cluster randomized, k groups of m per arm, ICC rho (design effect 1 + (m - 1) rho;
#    Donner & Klar 2000):  SE^2 = 2 (1 + (m - 1) rho) / (k m),  nu = 2k - 2.
# 3. partially nested (Moerbeek & Wong 2008, Stat Med 27; Baldwin, Bauer, Stice & Rohde 2011,
#    J Consult Clin Psychol 79): control arm n0 ungrouped with variance sigma^2, treated arm in
#    G groups of m with group variance tau^2, rho = tau^2 / (tau^2 + sigma^2):
#       SE^2 = (tau^2 + sigma^2 / m) / G + sigma^2 / n0
#    nu: Satterthwaite's two-variance df (Baldwin et al. 2011, their eq. for the
#    heterogeneous-variance model): (v1 + v0)^2 / (v1^2 / (G - 1) + v0^2 / (n0 - 1)).
# 4. ANCOVA, one baseline and one follow-up, correlation rho:  SE^2 = (1 - rho^2)(1/n1 + 1/n0),
#    nu = n - 3 (conditional on the baseline; the unconditional variance is larger by about
#    1 + 1/(n - 4), which the Rust test allows for).
# 5. Frison & Pocock (1992, Stat Med 11): p = 1 baseline, r follow-ups, compound symmetry rho,
#    the mean of the follow-ups compared:
#       POST:   SE^2 = (1/n1 + 1/n0) (1 + (r - 1) rho) / r,               nu = n - 2
#       CHANGE: SE^2 = (1/n1 + 1/n0) [(1 + (r - 1) rho) / r + 1 - 2 rho],   nu = n - 2
#       ANCOVA: SE^2 = (1/n1 + 1/n0) [(1 + (r - 1) rho) / r - rho^2],       nu = n - 3
source("tests/r/common.R")
suppressPackageStartupMessages(library(pwr))

fixture_dir <- "tests/fixtures/power"
dir.create(fixture_dir, showWarnings = FALSE, recursive = TRUE)

power_t <- function(se2, delta, nu, alpha = 0.05) {
  q <- qt(1 - alpha / 2, nu)
  ncp <- delta / sqrt(se2)
  1 - pt(q, nu, ncp) + pt(-q, nu, ncp)
}

points <- list()
add <- function(...) points[[length(points) + 1]] <<- list(...)

# 1. t test
for (x in list(c(30, 30, 0.5), c(64, 64, 0.5), c(20, 40, 0.6))) {
  n0 <- x[1]; n1 <- x[2]; d <- x[3]
  p <- pwr.t2n.test(n1 = n1, n2 = n0, d = d, sig.level = 0.05)$power
  stopifnot(abs(p - power_t(1 / n1 + 1 / n0, d, n0 + n1 - 2)) < 1e-6)
  add(name = sprintf("ttest_n%d_%d_d%.1f", n0, n1, d), design = "individual",
      n0 = n0, n1 = n1, d = d, rho = 0, power = p, df = n0 + n1 - 2,
      method = "pwr::pwr.t2n.test (noncentral t)")
}
# 1b. one-sided t test (alpha 0.05, in the direction of the effect)
for (x in list(c(30, 30, 0.5), c(30, 30, -0.5))) {
  n0 <- x[1]; n1 <- x[2]; d <- x[3]
  p <- pwr.t2n.test(n1 = n1, n2 = n0, d = d, sig.level = 0.05,
                    alternative = if (d > 0) "greater" else "less")$power
  add(name = sprintf("ttest_one_sided_n%d_%d_d%.1f", n0, n1, d), design = "individual_one_sided",
      n0 = n0, n1 = n1, d = d, rho = 0, power = p, df = n0 + n1 - 2,
      method = "pwr::pwr.t2n.test(alternative = greater / less) (noncentral t)")
}
# 2. cluster
for (x in list(c(10, 10, 0.05, 0.4), c(6, 20, 0.10, 0.5), c(15, 8, 0.02, 0.35))) {
  k <- x[1]; m <- x[2]; rho <- x[3]; d <- x[4]
  se2 <- 2 * (1 + (m - 1) * rho) / (k * m)
  add(name = sprintf("cluster_k%d_m%d_icc%.2f", k, m, rho), design = "cluster",
      k = k, m = m, rho = rho, d = d, design_effect = 1 + (m - 1) * rho,
      power = power_t(se2, d, 2 * k - 2), df = 2 * k - 2,
      method = "noncentral t, SE^2 = 2 (1 + (m - 1) rho) / (k m), df 2k - 2")
}
# 3. partially nested
for (x in list(c(60, 10, 6, 0.10, 0.5), c(40, 8, 5, 0.20, 0.6), c(80, 16, 5, 0.05, 0.4))) {
  n0 <- x[1]; G <- x[2]; m <- x[3]; rho <- x[4]; d <- x[5]
  tau2 <- rho / (1 - rho)
  v1 <- (tau2 + 1 / m) / G
  v0 <- 1 / n0
  nu <- (v1 + v0)^2 / (v1^2 / (G - 1) + v0^2 / (n0 - 1))
  add(name = sprintf("partially_nested_n0%d_G%d_m%d_icc%.2f", n0, G, m, rho),
      design = "partially_nested", n0 = n0, groups = G, m = m, rho = rho, d = d,
      power = power_t(v1 + v0, d, nu), df = nu,
      method = "noncentral t, SE^2 = (tau^2 + sigma^2/m)/G + sigma^2/n0 (Moerbeek & Wong 2008), Satterthwaite df (Baldwin et al. 2011)")
}
# 4. ANCOVA (one follow-up)
for (x in list(c(50, 0.6, 0.4), c(30, 0.5, 0.6))) {
  n <- x[1]; rho <- x[2]; d <- x[3]
  add(name = sprintf("ancova_n%d_rho%.1f", n, rho), design = "ancova",
      n0 = n, n1 = n, rho = rho, d = d,
      power = power_t((1 - rho^2) * 2 / n, d, 2 * n - 3), df = 2 * n - 3,
      power_post = power_t(2 / n, d, 2 * n - 2),
      method = "noncentral t, SE^2 = (1 - rho^2)(1/n1 + 1/n0), df n - 3 (Frison & Pocock 1992, r = p = 1)")
}
# 5. Frison & Pocock, r = 3 follow-ups
for (x in list(c(40, 3, 0.6, 0.4), c(60, 3, 0.4, 0.35))) {
  n <- x[1]; r <- x[2]; rho <- x[3]; d <- x[4]
  f <- 2 / n
  post <- (1 + (r - 1) * rho) / r
  for (a in list(list("post", post, 2 * n - 2), list("change", post + 1 - 2 * rho, 2 * n - 2),
                 list("ancova", post - rho^2, 2 * n - 3))) {
    add(name = sprintf("frison_pocock_%s_n%d_r%d_rho%.1f", a[[1]], n, r, rho),
        design = paste0("repeated_", a[[1]]), n0 = n, n1 = n, r = r, rho = rho, d = d,
        variance_factor = a[[2]], power = power_t(f * a[[2]], d, a[[3]]), df = a[[3]],
        method = "noncentral t, Frison & Pocock (1992) variance of the mean of r follow-ups, p = 1 baseline, compound symmetry")
  }
}

out <- list(
  meta = make_meta("tests/r/power_theory.R", c("pwr", "stats"),
                   c("two-sided alpha 0.05, sigma = 1 (effects are d)",
                     "power from the noncentral t: 1 - pt(q, df, ncp) + pt(-q, df, ncp), q = qt(0.975, df)")),
  points = points
)
write_fixture(out, "power_theory.json")
