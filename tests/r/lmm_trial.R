# Golden values for mixed models on simulated IMR-like trials (what ../shared/reference/lmm lacks):
# partially nested groups, random slopes (numeric and factor), three-level nesting,
# interaction grouping factors, uncorrelated slopes; emmeans, contrasts, anova type III, LRT.
# Run from the repository root:  Rscript tests/r/lmm_trial.R
# Writes tests/fixtures/r/trial_long.csv, tests/fixtures/r/cluster_long.csv (the data fitted, as read back)
# and tests/fixtures/r/lmm_trial.json.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)

## ---- 1. individually randomized trial: 200 participants, 4 sites, 3 waves ------------------
set.seed(20261123)
n_per_site <- 50
sites <- sprintf("S%d", 1:4)
waves <- c("T1", "T2", "T3")
time_of_wave <- c(T1 = 0, T2 = 1, T3 = 1.75)
p <- do.call(rbind, lapply(seq_along(sites), function(s) {
  arm <- sample(rep(c("CAU", "IMR"), each = n_per_site / 2))
  data.frame(site = sites[s], arm = arm, stringsAsFactors = FALSE)
}))
p$id <- sprintf("P%03d", seq_len(nrow(p)))
# IMR participants of a site are trained in 3 groups (G<site><k>); controls are singleton groups.
p$group <- p$id
for (s in sites) {
  idx <- which(p$site == s & p$arm == "IMR")
  k <- rep(1:3, length.out = length(idx))
  p$group[idx] <- sprintf("G%s%d", sub("S", "", s), k[order(runif(length(idx)))])
}
site_eff <- setNames(rnorm(4, 0, 0.15), sites)
grp_ids <- unique(p$group[p$arm == "IMR"])
grp_eff <- setNames(rnorm(length(grp_ids), 0, 0.2), grp_ids)
u0 <- rnorm(nrow(p), 0, 0.5)
u1 <- rnorm(nrow(p), 0, 0.2)
long <- do.call(rbind, lapply(seq_len(nrow(p)), function(i) {
  w <- waves
  t <- unname(time_of_wave[w])
  mu <- 3 + site_eff[[p$site[i]]] + u0[i] + u1[i] * t + 0.05 * t +
    if (p$arm[i] == "IMR") 0.15 * t + grp_eff[[p$group[i]]] * (t > 0) else 0
  y <- mu + rnorm(3, 0, 0.4)
  data.frame(id = p$id[i], site = p$site[i], arm = p$arm[i], group = p$group[i],
             imr = as.integer(p$arm[i] == "IMR"), wave = w, widx = 1:3, time = t,
             y = round(y, 3), stringsAsFactors = FALSE)
}))
# dropout: 10% miss T2, 20% miss T3 (independent), some T1 missing (3%)
miss <- (long$wave == "T1" & runif(nrow(long)) < 0.03) |
  (long$wave == "T2" & runif(nrow(long)) < 0.10) |
  (long$wave == "T3" & runif(nrow(long)) < 0.20)
long <- long[!miss, ]
write.csv(long, file.path(fixture_dir, "trial_long.csv"), row.names = FALSE)

## ---- 2. cluster-style data: 10 sites x 4 groups (2 IMR, 2 CAU) x 6 participants x 3 waves -----
set.seed(777)
cl <- expand.grid(k = 1:6, group = sprintf("G%d", 1:4), site = sprintf("S%02d", 1:10),
                  stringsAsFactors = FALSE)
cl$arm <- ifelse(cl$group %in% c("G1", "G2"), "IMR", "CAU")
# randomize which groups are IMR within site
for (s in unique(cl$site)) {
  g <- sample(sprintf("G%d", 1:4))
  cl$arm[cl$site == s] <- ifelse(cl$group[cl$site == s] %in% g[1:2], "IMR", "CAU")
}
cl$id <- sprintf("C%03d", seq_len(nrow(cl)))
s_eff <- setNames(rnorm(10, 0, 0.3), sprintf("S%02d", 1:10))
s_arm <- setNames(rnorm(10, 0, 0.15), sprintf("S%02d", 1:10))
sw_eff <- matrix(rnorm(30, 0, 0.12), 10, 3, dimnames = list(sprintf("S%02d", 1:10), waves))
sg <- unique(paste(cl$site, cl$group, sep = ":"))
g_eff <- setNames(rnorm(length(sg), 0, 0.25), sg)
cl$u0 <- rnorm(nrow(cl), 0, 0.5)
cl_long <- do.call(rbind, lapply(seq_len(nrow(cl)), function(i) {
  t <- unname(time_of_wave[waves])
  imr <- cl$arm[i] == "IMR"
  mu <- 3 + s_eff[[cl$site[i]]] + g_eff[[paste(cl$site[i], cl$group[i], sep = ":")]] + cl$u0[i] +
    sw_eff[cl$site[i], ] + 0.05 * t + if (imr) (0.2 + s_arm[[cl$site[i]]]) * (t > 0) else 0
  y <- mu + rnorm(3, 0, 0.45)
  data.frame(id = cl$id[i], site = cl$site[i], group = cl$group[i], arm = cl$arm[i],
             wave = waves, widx = 1:3, time = t, y = round(y, 3), stringsAsFactors = FALSE)
}))
cl_long <- cl_long[runif(nrow(cl_long)) >= 0.08, ]
write.csv(cl_long, file.path(fixture_dir, "cluster_long.csv"), row.names = FALSE)

## ---- read back exactly what was written --------------------------------------------------
prep <- function(d) {
  d$arm <- factor(d$arm, levels = c("CAU", "IMR"))
  d$wave <- factor(d$wave, levels = waves)
  d$id <- factor(d$id, levels = sort(unique(d$id)))
  d$site <- factor(d$site, levels = sort(unique(d$site)))
  d$group <- factor(d$group, levels = sort(unique(d$group)))
  d
}
trial <- prep(read.csv(file.path(fixture_dir, "trial_long.csv"), stringsAsFactors = FALSE))
clus <- prep(read.csv(file.path(fixture_dir, "cluster_long.csv"), stringsAsFactors = FALSE))

## ---- emmeans block for arm * wave models ------------------------------------------------
emm_summary_rows <- function(s) {
  s <- as.data.frame(s)
  rows(s)
}
emm_block <- function(m) {
  out <- list()
  for (mode in c("satterthwaite", "kenward-roger")) {
    cap <- capture({
      e <- emmeans(m, ~ arm * wave, lmer.df = mode)
      es <- as.data.frame(summary(e, infer = c(TRUE, TRUE)))
      ew <- emmeans(m, ~ arm | wave, lmer.df = mode)
      ct <- contrast(ew, method = "revpairwise")
      cs <- as.data.frame(summary(ct, infer = c(TRUE, TRUE)))
      # difference in change from baseline T1: (IMR - CAU at Tk) - (IMR - CAU at T1)
      # emmeans grid order: arm fastest: CAU.T1 IMR.T1 CAU.T2 IMR.T2 CAU.T3 IMR.T3
      dic <- contrast(e, method = list("(IMR - CAU) T2 - T1" = c(1, -1, -1, 1, 0, 0),
                                       "(IMR - CAU) T3 - T1" = c(1, -1, 0, 0, -1, 1)))
      ds <- as.data.frame(summary(dic, infer = c(TRUE, TRUE)))
      list(
        emmeans = rows(data.frame(arm = as.character(es$arm), wave = as.character(es$wave),
                                  emmean = es$emmean, se = es$SE, df = es$df,
                                  lower_cl = es$lower.CL, upper_cl = es$upper.CL,
                                  t = es$t.ratio, p = es$p.value, stringsAsFactors = FALSE)),
        contrasts = rows(data.frame(wave = as.character(cs$wave), contrast = as.character(cs$contrast),
                                    estimate = cs$estimate, se = cs$SE, df = cs$df,
                                    lower_cl = cs$lower.CL, upper_cl = cs$upper.CL,
                                    t = cs$t.ratio, p = cs$p.value, stringsAsFactors = FALSE)),
        change_contrasts = rows(data.frame(contrast = as.character(ds$contrast),
                                           estimate = ds$estimate, se = ds$SE, df = ds$df,
                                           lower_cl = ds$lower.CL, upper_cl = ds$upper.CL,
                                           t = ds$t.ratio, p = ds$p.value, stringsAsFactors = FALSE))
      )
    })
    r <- cap$value
    r$warnings <- I(cap$warnings)
    r$messages <- I(cap$messages)
    out[[gsub("-", "_", mode)]] <- r
  }
  out
}

fits <- list()
models <- list()
add <- function(id, formula, data, dataset, REML = TRUE, emm = TRUE, ranef = FALSE) {
  r <- lmer_record(id, formula, data, REML = REML, dataset = dataset,
                   csv = paste0(dataset, ".csv"), emm = if (emm) emm_block else NULL,
                   ranef_condvar = ranef)
  fits[[length(fits) + 1]] <<- r$record
  models[[id]] <<- r$model
  cat(id, "\n")
}

add("trial__id__reml", "y ~ arm * wave + (1 | id)", trial, "trial_long")
add("trial__id__ml", "y ~ arm * wave + (1 | id)", trial, "trial_long", REML = FALSE)
add("trial__id_site__reml", "y ~ arm * wave + (1 | id) + (1 | site)", trial, "trial_long")
add("trial__id_site__ml", "y ~ arm * wave + (1 | id) + (1 | site)", trial, "trial_long", REML = FALSE)
add("trial__partially_nested__reml", "y ~ arm * wave + (1 | id) + (0 + imr | group)", trial, "trial_long", ranef = TRUE)
add("trial__partially_nested__ml", "y ~ arm * wave + (1 | id) + (0 + imr | group)", trial, "trial_long", REML = FALSE)
add("trial__time_slope__reml", "y ~ arm * wave + (1 + time | id)", trial, "trial_long", ranef = TRUE)
add("trial__time_slope_uncorrelated__reml", "y ~ arm * wave + (time || id)", trial, "trial_long", ranef = TRUE)
add("trial__growth_site__reml", "y ~ time * arm + (1 + time | id) + (1 | site)", trial, "trial_long", emm = FALSE)
add("trial__growth_site__ml", "y ~ time * arm + (1 + time | id) + (1 | site)", trial, "trial_long", REML = FALSE, emm = FALSE)
add("cluster__site_group_id__reml", "y ~ arm * wave + (1 | site/group/id)", clus, "cluster_long", ranef = TRUE)
add("cluster__site_group_id__ml", "y ~ arm * wave + (1 | site/group/id)", clus, "cluster_long", REML = FALSE)
add("cluster__id_sitegroup__reml", "y ~ arm * wave + (1 | id) + (1 | site:group)", clus, "cluster_long")
add("cluster__arm_slope_site__reml", "y ~ arm * wave + (1 | id) + (1 + arm | site)", clus, "cluster_long", ranef = TRUE)
add("cluster__wave_slope_site__reml", "y ~ arm * wave + (1 | id) + (0 + wave | site)", clus, "cluster_long", ranef = TRUE)

lrt <- list(
  id_vs_id_site = lrt_record(models[["trial__id__reml"]], models[["trial__id_site__reml"]],
                             "y ~ arm * wave + (1 | id)", "y ~ arm * wave + (1 | id) + (1 | site)"),
  id_vs_partially_nested = lrt_record(models[["trial__id__reml"]], models[["trial__partially_nested__reml"]],
                                      "y ~ arm * wave + (1 | id)", "y ~ arm * wave + (1 | id) + (0 + imr | group)"),
  id_vs_time_slope = lrt_record(models[["trial__id__reml"]], models[["trial__time_slope__reml"]],
                                "y ~ arm * wave + (1 | id)", "y ~ arm * wave + (1 + time | id)")
)

lv <- function(d) lapply(list(arm = d$arm, wave = d$wave, site = d$site), function(x) I(levels(x)))
meta <- make_meta(
  "tests/r/lmm_trial.R",
  c("lme4", "lmerTest", "pbkrtest", "emmeans", "Matrix", "jsonlite"),
  c(
    "Data: trial_long.csv (individually randomized; 200 participants in 4 sites, IMR participants in 3 training groups per site, controls in singleton groups group = id; waves T1/T2/T3 at time 0, 1, 1.75; imr = 1 for the IMR arm; rows of missed waves absent) and cluster_long.csv (10 sites x 4 groups x 6 participants, two groups per site randomized to IMR; group labels G1-G4 repeat across sites, so site:group is the group). Both generated with set.seed in this script, written with write.csv and fitted as read back.",
    "Factors: arm levels CAU, IMR (CAU reference); wave levels T1, T2, T3 (T1 reference); id, site, group with sorted levels; treatment contrasts; R term names (armIMR, waveT2, armIMR:waveT2). time and imr are numeric.",
    "lme4 defaults (nloptwrap BOBYQA). fixed_effects: Satterthwaite (lmerTest); fixed_effects_kr: Kenward-Roger (pbkrtest through lmerTest, KR-adjusted SE).",
    "anova_type3_*: lmerTest anova(m, type = 3, ddf = 'Satterthwaite' | 'Kenward-Roger'). anova_type3_L: the hypothesis matrix per term (lmerTest:::get_contrasts_type3): SAS-style type III, so a main effect is tested averaged over the levels of the factors it interacts with (arm: armIMR + (armIMR:waveT2 + armIMR:waveT3)/3), not the treatment-coded coefficient alone.",
    "emmeans (models with arm * wave): emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6); per mode (satterthwaite, kenward_roger = emmeans lmer.df): emmeans(m, ~ arm * wave) with equal weights, 95% CI and t test against 0; contrasts = contrast(emmeans(m, ~ arm | wave), 'revpairwise') i.e. 'IMR - CAU' within each wave; change_contrasts = (IMR - CAU at Tk) - (IMR - CAU at T1).",
    "ranef (fits trial__partially_nested__reml, trial__time_slope__reml, trial__time_slope_uncorrelated__reml, cluster__site_group_id__reml, cluster__arm_slope_site__reml, cluster__wave_slope_site__reml): conditional modes and conditional SDs (lme4 ranef(condVar = TRUE)); group = grouping factor name as lme4 prints it, level = group level, term = random-effect column.",
    "lrt: anova(m0, m1) (lme4 refits both with ML); chisq/df/p on the second row.",
    "Group names for (1 | site/group/id) as lme4 prints them: 'id:(group:site)', 'group:site', 'site' (terms ordered by number of levels, largest first); theta and random_effects follow that order.",
    "fixed_effects_kr and anova_type3_kr are null for ML fits (lmerTest: KR only for REML fits; the error text is in kr_warnings). emmeans$kenward_roger of an ML fit is what emmeans returns (pbkrtest::vcovAdj on the ML fit: the SEs match the REML KR SEs, the df do not): recorded for completeness, not a target.",
    "Singular fits (singular = true, e.g. cluster__arm_slope_site__reml): Satterthwaite and KR df can differ wildly there (armIMR 76 vs 16); compare them on fixed effects, REML criterion and residual SD."
  )
)
meta$levels <- list(trial_long = lv(trial), cluster_long = lv(clus))
meta$data <- list(
  trial_long = list(file = "trial_long.csv", rows = nrow(trial), participants = nlevels(trial$id),
                    columns = I(names(trial))),
  cluster_long = list(file = "cluster_long.csv", rows = nrow(clus), participants = nlevels(clus$id),
                      columns = I(names(clus)))
)
write_fixture(list(meta = meta, fits = fits, lrt = lrt), "lmm_trial.json")
