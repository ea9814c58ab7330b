# Golden values for the site comparisons on the shared trial-small reference (4 sites,
# 120 participants, 9 IMR training groups with fidelity ratings): per-site lmer contrasts (lm
# when the lmer fit is singular), metafor::rma REML + Knapp-Hartung with leave1out, the
# shrinkage models (random site intercept + arm slope; and + follow-up indicator), fidelity
# bands and the continuous fidelity moderator in the partially nested model, and routine
# outcome monitoring (case-mix-adjusted HoNOS change per site, lm + lmer).
# Run from the repository root:  Rscript tests/r/sites_trial_small.R
# Reads tests/fixtures/r/trial_small_scored.csv (= ../shared/reference/trial-small/expected/scored.csv)
# and tests/fixtures/trial-small/export/{participants,groups}.csv;
# writes tests/fixtures/sites/sites_trial_small.json.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(emmeans)
  library(metafor)
})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)
out_dir <- "tests/fixtures/sites"

sc <- read.csv(file.path(fixture_dir, "trial_small_scored.csv"), stringsAsFactors = FALSE)
parts <- read.csv("tests/fixtures/trial-small/export/participants.csv", stringsAsFactors = FALSE)
groups <- read.csv("tests/fixtures/trial-small/export/groups.csv", stringsAsFactors = FALSE)
waves <- c("T0", "T1", "T2")
follow <- c("T1", "T2")

prep <- function(d, outcome) {
  d <- d[!is.na(d[[outcome]]), ]
  data.frame(participant_id = factor(d$participant_id, levels = sort(unique(d$participant_id))),
             site_id = factor(d$site_id, levels = sort(unique(d$site_id))),
             arm = factor(d$arm, levels = c("TAU", "IMR")),
             wave = factor(d$wave, levels = waves),
             group_id = d$group_id, y = d[[outcome]], stringsAsFactors = FALSE)
}

contrasts_of <- function(m) {
  cs <- as.data.frame(summary(contrast(emmeans(m, ~ arm | wave, lmer.df = "satterthwaite"), "revpairwise"),
                              infer = c(TRUE, TRUE)))
  rows(data.frame(wave = as.character(cs$wave), estimate = cs$estimate, se = cs$SE, df = cs$df,
                  lower_cl = cs$lower.CL, upper_cl = cs$upper.CL, t = cs$t.ratio, p = cs$p.value,
                  stringsAsFactors = FALSE))
}

site_ranef <- function(m, term) {
  rr <- as.data.frame(lme4::ranef(m, condVar = TRUE))
  rr <- rr[rr$grpvar == "site_id" & rr$term == term, ]
  rows(data.frame(site_id = as.character(rr$grp), condval = rr$condval, condsd = rr$condsd,
                  stringsAsFactors = FALSE))
}

site_vc <- function(m, term) {
  vc <- as.data.frame(lme4::VarCorr(m))
  s <- vc[vc$grp == "site_id", ]
  list(intercept_sd = s$sdcor[is.na(s$var2) & s$var1 == "(Intercept)"],
       arm_sd = s$sdcor[is.na(s$var2) & s$var1 == term],
       cor = if (any(!is.na(s$var2))) s$sdcor[!is.na(s$var2)] else NA,
       residual_sd = sigma(m), singular = isSingular(m), theta = I(unname(getME(m, "theta"))),
       reml_criterion = unname(REMLcrit(m)))
}

fid <- setNames(groups$fidelity, groups$group_id)
fid_mean <- mean(groups$fidelity, na.rm = TRUE)

res <- list()
for (outcome in c("imrs_client", "mhrm")) {
  d <- prep(sc, outcome)
  # per-site contrasts
  per_site <- list()
  for (s in levels(d$site_id)) {
    ds <- droplevels(d[d$site_id == s, ])
    cap <- capture(lmerTest::lmer(y ~ arm * wave + (1 | participant_id), data = ds, REML = TRUE))
    sing <- isSingular(cap$value)
    m <- if (sing) lm(y ~ arm * wave, data = ds) else cap$value
    per_site[[length(per_site) + 1]] <- list(site = s, n_participants = nlevels(ds$participant_id),
                                              nobs = nrow(ds), singular = sing,
                                              method = if (sing) "ols" else "lmm",
                                              contrasts = contrasts_of(m))
  }
  meta <- list()
  for (w in follow) {
    est <- sapply(per_site, function(p) Filter(function(x) x$wave == w, p$contrasts)[[1]]$estimate)
    se <- sapply(per_site, function(p) Filter(function(x) x$wave == w, p$contrasts)[[1]]$se)
    r <- rma(yi = est, sei = se, method = "REML", test = "knha",
             control = list(threshold = 1e-12, maxiter = 1000))
    pr <- predict(r)
    l1 <- as.data.frame(leave1out(r))
    meta[[w]] <- list(k = r$k, estimate = as.numeric(r$b), se = r$se, ci_lb = r$ci.lb, ci_ub = r$ci.ub,
                      tau2 = r$tau2, i2 = r$I2, q = r$QE, q_p = r$QEp, pi_lb = pr$pi.lb, pi_ub = pr$pi.ub,
                      leave1out = rows(data.frame(omitted = levels(d$site_id), estimate = l1$estimate,
                                                  ci_lb = l1$ci.lb, ci_ub = l1$ci.ub, stringsAsFactors = FALSE)))
  }
  # shrinkage models
  m1 <- lmer(y ~ arm * wave + (1 | participant_id) + (1 + arm | site_id), data = d, REML = TRUE)
  d$imr_followup <- as.numeric(d$arm == "IMR" & d$wave != "T0")
  m2 <- lmer(y ~ arm * wave + (1 | participant_id) + (1 + imr_followup | site_id), data = d, REML = TRUE)
  shrink <- list(
    arm = c(site_vc(m1, "armIMR"), list(ranef = site_ranef(m1, "armIMR"))),
    imr_followup = c(site_vc(m2, "imr_followup"), list(ranef = site_ranef(m2, "imr_followup"))))
  # fidelity bands (each band's IMR participants against all controls)
  gf <- fid[d$group_id]
  bands <- list()
  for (b in list(list("high", 4, Inf), list("moderate", 3, 4))) {
    keep <- d$arm == "TAU" | (!is.na(gf) & gf >= b[[2]] & gf < b[[3]])
    db <- droplevels(d[keep, ])
    m <- lmerTest::lmer(y ~ arm * wave + (1 | participant_id), data = db, REML = TRUE)
    bands[[b[[1]]]] <- list(singular = isSingular(m), n_participants = nlevels(db$participant_id),
                            contrasts = contrasts_of(m))
  }
  # continuous moderator in the partially nested model (controls as singleton groups)
  dm <- d
  dm$imr <- as.numeric(dm$arm == "IMR")
  dm$group_id <- ifelse(dm$arm == "IMR" & dm$group_id != "", dm$group_id,
                        paste0("single:", dm$participant_id))
  dm$fidelity_c <- ifelse(dm$arm == "IMR", fid[dm$group_id] - fid_mean, 0)
  mm <- lmerTest::lmer(y ~ arm * wave + (1 | participant_id) + fidelity_c + wave:fidelity_c +
                         (0 + imr | group_id), data = dm, REML = TRUE)
  cn <- names(fixef(mm))
  mod <- list()
  for (w in follow) {
    L <- as.numeric(cn == "fidelity_c" | cn == paste0("wave", w, ":fidelity_c"))
    ct <- lmerTest::contest1D(mm, L, ddf = "Satterthwaite", confint = TRUE)
    mod[[length(mod) + 1]] <- list(wave = w, estimate = ct$Estimate, se = ct[["Std. Error"]], df = ct$df,
                                   p = ct[["Pr(>|t|)"]], lower = ct$lower, upper = ct$upper)
  }
  res[[outcome]] <- list(per_site = per_site, meta_analysis = meta, shrinkage = shrink, fidelity_bands = bands,
                         fidelity_moderator = list(coefficients = I(cn), fidelity_mean = fid_mean,
                                                   singular = isSingular(mm), nobs = nobs(mm), rows = mod))
}

# routine outcome monitoring: HoNOS change T0 -> T2, everyone
h0 <- sc[sc$wave == "T0" & !is.na(sc$honos), c("participant_id", "honos")]
h2 <- sc[sc$wave == "T2" & !is.na(sc$honos), c("participant_id", "honos")]
names(h0)[2] <- "baseline"; names(h2)[2] <- "followup"
rd <- merge(merge(h0, h2, by = "participant_id"), parts[, c("participant_id", "site_id", "age", "diagnosis")],
            by = "participant_id")
rd$change <- rd$followup - rd$baseline
rd <- rd[complete.cases(rd[, c("change", "baseline", "age", "diagnosis")]), ]
rd$site_id <- factor(rd$site_id, levels = sort(unique(rd$site_id)))
lmfit <- lm(change ~ baseline + age + diagnosis, data = rd)
rd$expected <- fitted(lmfit)
overall <- mean(rd$change)
sig <- summary(lmfit)$sigma
rm <- lmer(change ~ baseline + age + diagnosis + (1 | site_id), data = rd, REML = TRUE)
rr <- as.data.frame(ranef(rm, condVar = TRUE))
routine <- list(n = nrow(rd), overall = overall, residual_sd = sig,
                site_sd = as.data.frame(VarCorr(rm))$sdcor[1], singular = isSingular(rm),
                rows = lapply(levels(rd$site_id), function(s) {
                  x <- rd[rd$site_id == s, ]
                  se <- sig / sqrt(nrow(x))
                  list(site_id = s, n = nrow(x), observed = mean(x$change), expected = mean(x$expected),
                       adjusted = overall + mean(x$change) - mean(x$expected), se = se,
                       limit95_low = overall - qnorm(0.975) * se, limit998_high = overall + qnorm(0.999) * se,
                       shrunken = rr$condval[rr$grp == s], condsd = rr$condsd[rr$grp == s])
                }))

# A site whose lmer fit is singular (no participant variance): the contrasts come from lm.
# The first seed from 1 that gives a singular fit is used; the data are written to
# sites_ols.csv and refitted as read back.
for (seed in 1:100) {
  set.seed(seed)
  od <- expand.grid(wave = waves, participant_id = sprintf("Q%02d", 1:16), stringsAsFactors = FALSE)
  od$arm <- ifelse(as.integer(sub("Q", "", od$participant_id)) %% 2 == 0, "IMR", "TAU")
  od$y <- round(3 + 0.3 * (od$arm == "IMR" & od$wave != "T0") + rnorm(nrow(od), 0, 0.5), 3)
  od <- od[-c(5, 17, 30, 41), c("participant_id", "arm", "wave", "y")]
  write.csv(od, file.path(out_dir, "sites_ols.csv"), row.names = FALSE)
  od <- read.csv(file.path(out_dir, "sites_ols.csv"), stringsAsFactors = FALSE)
  od$participant_id <- factor(od$participant_id)
  od$arm <- factor(od$arm, levels = c("TAU", "IMR"))
  od$wave <- factor(od$wave, levels = waves)
  cap <- capture(lmer(y ~ arm * wave + (1 | participant_id), data = od, REML = TRUE))
  if (isSingular(cap$value)) break
}
ols_case <- list(seed = seed, singular = TRUE, nobs = nrow(od), contrasts = contrasts_of(lm(y ~ arm * wave, data = od)))

meta <- make_meta("tests/r/sites_trial_small.R", c("lme4", "lmerTest", "emmeans", "metafor", "Matrix", "jsonlite"), c(
  "Data: trial_small_scored.csv (reference scored data of ../shared/reference/trial-small); arm TAU, IMR; wave T0, T1, T2; participant_id and site_id sorted; rows with the outcome observed.",
  "per_site: lmer(y ~ arm * wave + (1 | participant_id)) per site; when isSingular() the contrasts come from lm(y ~ arm * wave) (method = 'ols'); emmeans revpairwise IMR - TAU per wave (Satterthwaite for lmer).",
  "meta_analysis.<T1|T2>: rma(REML, knha, threshold 1e-12) of the per-site contrasts; leave1out.",
  "shrinkage.arm: lmer(y ~ arm * wave + (1 | participant_id) + (1 + arm | site_id)), ranef condVar of site_id armIMR; shrinkage.imr_followup: (1 + imr_followup | site_id) with imr_followup = IMR at T1/T2.",
  "fidelity_bands: controls + IMR participants whose group fidelity is in [4, Inf) (high) or [3, 4) (moderate), lmer main model, emmeans contrasts.",
  "fidelity_moderator: lmer(y ~ arm * wave + (1 | participant_id) + fidelity_c + wave:fidelity_c + (0 + imr | group_id)), fidelity_c = group fidelity - mean over groups for IMR, 0 for TAU; controls in singleton groups; contest1D of fidelity_c + wave<w>:fidelity_c (Satterthwaite).",
  "ols_case: sites_ols.csv (simulated here), lmer singular, contrasts of lm(y ~ arm * wave) (residual df).",
  "routine: HoNOS change T0 -> T2, lm(change ~ baseline + age + diagnosis); per site observed/expected mean change, adjusted = overall + O - E, se = sigma / sqrt(n); lmer(... + (1 | site_id)) conditional modes."
))
fixture_dir <- out_dir
write_fixture(list(meta = meta, outcomes = res, routine = routine, ols_case = ols_case), "sites_trial_small.json")
