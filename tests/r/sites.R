# Golden values for site comparisons on simulated multi-site data: random site intercept +
# site-by-arm effects with conditional modes and conditional SDs (lme4), per-site contrasts
# IMR - CAU at the last wave (one lmer per site, emmeans Satterthwaite), and a random-effects
# meta-analysis of those (metafor::rma REML + Knapp-Hartung, tight) with leave-one-out.
# Run from the repository root:  Rscript tests/r/sites.R
# Writes tests/fixtures/r/sites_long.csv (the data) and tests/fixtures/r/sites.json.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(emmeans)
  library(metafor)
})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)

set.seed(31415)
n_sites <- 12
waves <- c("T1", "T2", "T3")
tt <- c(0, 1, 1.75)
site_n <- sample(seq(24, 48, by = 2), n_sites, replace = TRUE)
sites <- sprintf("S%02d", 1:n_sites)
s0 <- rnorm(n_sites, 0, 0.3)
s_arm <- rnorm(n_sites, 0, 0.25)
out <- list(); k <- 0
for (s in seq_len(n_sites)) {
  arm <- sample(rep(c("CAU", "IMR"), each = site_n[s] / 2))
  for (i in seq_len(site_n[s])) {
    k <- k + 1
    u <- rnorm(1, 0, 0.5)
    imr <- arm[i] == "IMR"
    mu <- 3 + s0[s] + u + 0.05 * tt + if (imr) (0.2 + s_arm[s]) * (tt > 0) + 0.1 * s_arm[s] else 0
    y <- round(mu + rnorm(3, 0, 0.45), 3)
    out[[k]] <- data.frame(id = sprintf("P%04d", k), site = sites[s], arm = arm[i], wave = waves,
                           time = tt, y = y, stringsAsFactors = FALSE)
  }
}
long <- do.call(rbind, out)
long <- long[runif(nrow(long)) >= 0.07, ]
write.csv(long, file.path(fixture_dir, "sites_long.csv"), row.names = FALSE)
d <- read.csv(file.path(fixture_dir, "sites_long.csv"), stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("CAU", "IMR"))
d$wave <- factor(d$wave, levels = waves)
d$id <- factor(d$id, levels = sort(unique(d$id)))
d$site <- factor(d$site, levels = sort(unique(d$site)))

contrast_rows <- function(m, mode) {
  cs <- as.data.frame(summary(contrast(emmeans(m, ~ arm | wave, lmer.df = mode), "revpairwise"),
                              infer = c(TRUE, TRUE)))
  rows(data.frame(wave = as.character(cs$wave), contrast = as.character(cs$contrast),
                  estimate = cs$estimate, se = cs$SE, df = cs$df, lower_cl = cs$lower.CL,
                  upper_cl = cs$upper.CL, t = cs$t.ratio, p = cs$p.value, stringsAsFactors = FALSE))
}
emm_sat <- function(m) list(satterthwaite = list(contrasts = contrast_rows(m, "satterthwaite")))

fits <- list()
for (spec in list(
  list("sites__arm_slope__reml", "y ~ arm * wave + (1 | id) + (1 + arm | site)"),
  list("sites__site_by_arm__reml", "y ~ arm * wave + (1 | id) + (1 | site) + (1 | site:arm)"),
  list("sites__site_intercept__reml", "y ~ arm * wave + (1 | id) + (1 | site)"))) {
  r <- lmer_record(spec[[1]], spec[[2]], d, REML = TRUE, dataset = "sites_long", csv = "sites_long.csv",
                   emm = emm_sat, ranef_condvar = TRUE, kr = FALSE)
  # conditional modes of the site terms only (participants' are many and not needed here)
  r$record$ranef <- Filter(function(x) x$group != "id", r$record$ranef)
  fits[[length(fits) + 1]] <- r$record
  cat(spec[[1]], "\n")
}

# per-site lmer and the IMR - CAU contrast at each wave (Satterthwaite)
per_site <- list()
for (s in levels(d$site)) {
  ds <- droplevels(d[d$site == s, ])
  cap <- capture(lmerTest::lmer(y ~ arm * wave + (1 | id), data = ds, REML = TRUE))
  m <- cap$value
  per_site[[length(per_site) + 1]] <- list(site = s, n_participants = nlevels(ds$id), nobs = nrow(ds),
                                            singular = isSingular(m), warnings = I(cap$warnings),
                                            messages = I(cap$messages),
                                            contrasts = contrast_rows(m, "satterthwaite"))
}
meta_at <- function(wave) {
  est <- sapply(per_site, function(p) Filter(function(x) x$wave == wave, p$contrasts)[[1]]$estimate)
  se <- sapply(per_site, function(p) Filter(function(x) x$wave == wave, p$contrasts)[[1]]$se)
  res <- rma(yi = est, sei = se, method = "REML", test = "knha", control = list(threshold = 1e-12, maxiter = 1000))
  pr <- predict(res)
  l1 <- as.data.frame(leave1out(res))
  list(wave = wave, k = res$k, estimate = as.numeric(res$b), se = res$se, t = res$zval, df = res$k - 1,
       p = res$pval, ci_lb = res$ci.lb, ci_ub = res$ci.ub, tau2 = res$tau2, se_tau2 = res$se.tau2,
       i2 = res$I2, h2 = res$H2, q = res$QE, q_p = res$QEp, pi_lb = pr$pi.lb, pi_ub = pr$pi.ub,
       s2w = res$s2w,
       leave1out = rows(data.frame(omitted = levels(d$site), estimate = l1$estimate, se = l1$se, t = l1$tval,
                                   p = l1$pval, ci_lb = l1$ci.lb, ci_ub = l1$ci.ub, q = l1$Q, q_p = l1$Qp,
                                   tau2 = l1$tau2, i2 = l1$I2, h2 = l1$H2, stringsAsFactors = FALSE)))
}
meta_analysis <- list(T2 = meta_at("T2"), T3 = meta_at("T3"))

meta <- make_meta("tests/r/sites.R", c("lme4", "lmerTest", "emmeans", "metafor", "Matrix", "jsonlite"), c(
  "Data: sites_long.csv generated here (set.seed(31415)): 12 sites (S01..S12) of 24-48 participants, 1:1 CAU/IMR within site, waves T1/T2/T3 at time 0, 1, 1.75; site intercepts and site-specific IMR effects; ~7% of rows missing. Factors: arm CAU, IMR; wave T1, T2, T3; id, site sorted.",
  "fits: lmerTest::lmer REML; fixed_effects Satterthwaite (no KR here); emmeans.satterthwaite.contrasts = IMR - CAU per wave; ranef = conditional modes (condval) and conditional SDs (condsd) of the site-level terms only (lme4 ranef(condVar = TRUE)); group names as lme4 prints them ('site:arm' levels are 'S01:CAU', ...).",
  "per_site: one lmer(y ~ arm * wave + (1 | id)) per site, emmeans Satterthwaite contrasts IMR - CAU per wave (some sites may give singular fits: see singular/messages).",
  "meta_analysis.<T2|T3>: metafor::rma(yi = per-site estimate, sei = per-site SE, method = 'REML', test = 'knha', control = list(threshold = 1e-12, maxiter = 1000)); predict() prediction interval; leave1out in site order."
))
meta$data <- list(file = "sites_long.csv", rows = nrow(d), participants = nlevels(d$id), sites = nlevels(d$site))
write_fixture(list(meta = meta, fits = fits, per_site = per_site, meta_analysis = meta_analysis), "sites.json")
