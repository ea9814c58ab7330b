# Per-site contrasts of tests/r/sites.R with the optimizer converged tightly: lme4's default
# bobyqa tolerances leave theta ~1e-4 from the optimum in some sites (S02: REML criterion
# 130.752426788 vs 130.752426717), which moves Satterthwaite df by ~1e-4. These values pin the
# optimum itself. Run from the repository root:  Rscript tests/r/sites_tight.R
# Reads tests/fixtures/r/sites_long.csv; writes tests/fixtures/sites/sites_per_site_tight.json.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(emmeans)
})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)
d <- read.csv(file.path(fixture_dir, "sites_long.csv"), stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("CAU", "IMR"))
d$wave <- factor(d$wave, levels = c("T1", "T2", "T3"))
d$id <- factor(d$id, levels = sort(unique(d$id)))
d$site <- factor(d$site, levels = sort(unique(d$site)))
ctrl <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, maxeval = 1e5))
per_site <- list()
for (s in levels(d$site)) {
  ds <- droplevels(d[d$site == s, ])
  m <- lmerTest::lmer(y ~ arm * wave + (1 | id), data = ds, REML = TRUE, control = ctrl)
  cs <- as.data.frame(summary(contrast(emmeans(m, ~ arm | wave, lmer.df = "satterthwaite"), "revpairwise"),
                              infer = c(TRUE, TRUE)))
  per_site[[length(per_site) + 1]] <- list(
    site = s, theta = unname(getME(m, "theta")), reml_criterion = unname(REMLcrit(m)),
    singular = isSingular(m),
    contrasts = rows(data.frame(wave = as.character(cs$wave), estimate = cs$estimate, se = cs$SE,
                                df = cs$df, lower_cl = cs$lower.CL, upper_cl = cs$upper.CL, p = cs$p.value,
                                stringsAsFactors = FALSE)))
}
# Shrinkage models with a site effect that is 0 at baseline: one follow-up indicator, and one
# indicator per follow-up wave (imr_T2, imr_T3), tight convergence.
d$imr_followup <- as.numeric(d$arm == "IMR" & d$wave != "T1")
d$imr_T2 <- as.numeric(d$arm == "IMR" & d$wave == "T2")
d$imr_T3 <- as.numeric(d$arm == "IMR" & d$wave == "T3")
shrink_rec <- function(m, terms) {
  rr <- as.data.frame(ranef(m, condVar = TRUE))
  vc <- as.data.frame(VarCorr(m))
  list(reml_criterion = unname(REMLcrit(m)), singular = isSingular(m), theta = I(unname(getME(m, "theta"))),
       sds = lapply(setNames(terms, terms), function(t) vc$sdcor[vc$grp == "site" & vc$var1 == t & is.na(vc$var2)]),
       ranef = lapply(setNames(terms, terms), function(t) {
         x <- rr[rr$grpvar == "site" & rr$term == t, ]
         rows(data.frame(site = as.character(x$grp), condval = x$condval, condsd = x$condsd, stringsAsFactors = FALSE))
       }))
}
shrinkage <- list(
  imr_followup = shrink_rec(lmer(y ~ arm * wave + (1 | id) + (1 + imr_followup | site), data = d,
                                 REML = TRUE, control = ctrl), "imr_followup"),
  imr_wave = shrink_rec(lmer(y ~ arm * wave + (1 | id) + (1 + imr_T2 + imr_T3 | site), data = d,
                             REML = TRUE, control = ctrl), c("imr_T2", "imr_T3")))

meta <- make_meta("tests/r/sites_tight.R", c("lme4", "lmerTest", "emmeans", "nloptr", "jsonlite"), c(
  "Data: sites_long.csv (tests/r/sites.R). Per site lmer(y ~ arm * wave + (1 | id)), REML, nloptwrap with xtol_abs = 1e-12, ftol_abs = 1e-14; emmeans Satterthwaite contrasts IMR - CAU per wave.",
  "shrinkage: lmer(y ~ arm * wave + (1 | id) + (1 + imr_followup | site)) and (1 + imr_T2 + imr_T3 | site), same control; imr_* = IMR at the follow-up wave(s); ranef condVar per term."
))
fixture_dir <- "tests/fixtures/sites"
write_fixture(list(meta = meta, per_site = per_site, shrinkage = shrinkage), "sites_per_site_tight.json")
