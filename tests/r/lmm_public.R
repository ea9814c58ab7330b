# Golden values for the five public mixed-model datasets (the 16 fits of
# ../shared/reference/lmm/fits.json), adding Kenward-Roger, anova type III and conditional modes.
# Run from the repository root:  Rscript tests/r/lmm_public.R
# Reads tests/fixtures/r/{sleepstudy,Dyestuff,Dyestuff2,Penicillin,Pastes}.csv (copies of the
# shared reference CSVs), writes tests/fixtures/r/lmm_public.json.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
})

read_ds <- function(name, categorical) {
  d <- read.csv(file.path(fixture_dir, paste0(name, ".csv")))
  for (c in categorical) d[[c]] <- factor(as.character(d[[c]]), levels = sort(unique(as.character(d[[c]]))))
  d
}

datasets <- list(
  sleepstudy = list(cat = "Subject"),
  Dyestuff = list(cat = "Batch"),
  Dyestuff2 = list(cat = "Batch"),
  Penicillin = list(cat = c("plate", "sample")),
  Pastes = list(cat = c("batch", "cask", "sample"))
)
data <- lapply(names(datasets), function(n) read_ds(n, datasets[[n]]$cat))
names(data) <- names(datasets)

specs <- list(
  list("sleepstudy", "slopes", "Reaction ~ Days + (Days | Subject)", TRUE),
  list("sleepstudy", "uncorrelated", "Reaction ~ Days + (Days || Subject)", FALSE),
  list("sleepstudy", "intercept", "Reaction ~ Days + (1 | Subject)", FALSE),
  list("Dyestuff", "intercept", "Yield ~ 1 + (1 | Batch)", FALSE),
  list("Dyestuff2", "singular", "Yield ~ 1 + (1 | Batch)", FALSE),
  list("Penicillin", "crossed", "diameter ~ 1 + (1 | plate) + (1 | sample)", TRUE),
  list("Pastes", "nested", "strength ~ 1 + (1 | batch/cask)", FALSE),
  list("Pastes", "sample_only", "strength ~ 1 + (1 | sample)", FALSE)
)

fits <- list()
models <- list()
for (s in specs) {
  for (reml in c(TRUE, FALSE)) {
    id <- paste0(s[[1]], "__", s[[2]], "__", if (reml) "reml" else "ml")
    r <- lmer_record(id, s[[3]], data[[s[[1]]]], REML = reml, dataset = s[[1]],
                     csv = paste0(s[[1]], ".csv"), ranef_condvar = s[[4]], fitted_values = s[[4]])
    rec <- r$record
    rec$categorical_levels <- lapply(datasets[[s[[1]]]]$cat, function(c) I(levels(data[[s[[1]]]][[c]])))
    names(rec$categorical_levels) <- datasets[[s[[1]]]]$cat
    fits[[length(fits) + 1]] <- rec
    models[[id]] <- r$model
    cat(id, "\n")
  }
}

lrt <- list(
  sleepstudy_intercept_vs_slopes = lrt_record(models[["sleepstudy__intercept__reml"]], models[["sleepstudy__slopes__reml"]],
                                              "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"),
  sleepstudy_uncorrelated_vs_slopes = lrt_record(models[["sleepstudy__uncorrelated__reml"]], models[["sleepstudy__slopes__reml"]],
                                                 "Reaction ~ Days + (Days || Subject)", "Reaction ~ Days + (Days | Subject)"),
  pastes_sample_vs_nested = lrt_record(models[["Pastes__sample_only__reml"]], models[["Pastes__nested__reml"]],
                                       "strength ~ 1 + (1 | sample)", "strength ~ 1 + (1 | batch/cask)")
)

meta <- make_meta(
  "tests/r/lmm_public.R",
  c("lme4", "lmerTest", "pbkrtest", "Matrix", "jsonlite"),
  c(
    "Data: the CSV files as read back by read.csv; categorical columns (categorical_levels) as factors with sorted levels; treatment contrasts, first level = reference.",
    "lme4 defaults (lmer: optimizer nloptwrap BOBYQA); REML flag per record.",
    "fixed_effects: estimate, se (unadjusted, vcov), df, t, p by Satterthwaite (lmerTest summary). fixed_effects_kr: Kenward-Roger via lmerTest summary(m, ddf = 'Kenward-Roger') (pbkrtest): se = sqrt(diag(KR-adjusted vcov)), df = KR df, t = estimate/se.",
    "anova_type3_satterthwaite / anova_type3_kr: lmerTest anova(m, type = 3, ddf = ...) per term (present when the model has a fixed term besides the intercept); anova_type3_L = lmerTest's hypothesis matrix per term (lmerTest:::get_contrasts_type3).",
    "random_effects: one row per (group, term), variance and sd; correlations: one row per pair with cor and cov; group names as lme4 prints them ('Subject.1' for the second term of (Days || Subject), 'cask:batch' for the inner level of (1 | batch/cask)).",
    "theta: lme4 relative covariance factor parameters (lower Cholesky, column-wise) in the order of getME(m, 'theta'); theta_names as lme4 names them.",
    "reml_criterion for REML fits (= -2 REML log-likelihood), deviance for ML fits; loglik is the REML log-likelihood for REML fits; aic/bic from that loglik and loglik_df.",
    "ranef (sleepstudy slopes and Penicillin): lme4 ranef(m, condVar = TRUE) as.data.frame: conditional modes (condval) and conditional SDs (condsd) per group level, group = grouping factor, term = random-effect term.",
    "fixed_effects_kr / anova_type3_kr are null for ML fits (lmerTest: Kenward-Roger only for REML fits). Dyestuff2 REML (singular, batch variance 0): KR df = 5 while Satterthwaite df = 29: pbkrtest's df on a boundary fit, not a meaningful target.",
    "fitted / residuals (sleepstudy slopes, Penicillin): conditional fitted values X beta + Z b and y - fitted, in CSV row order.",
    "lrt: anova(m0, m1) of REML fits (lme4 refits both with ML); chisq, df, p on the second row. Pastes: (1 | sample) is the same as (1 | batch:cask), so the test is of the batch term.",
    "warnings/messages: captured while fitting (e.g. lme4's 'boundary (singular) fit' message); kr_warnings while computing KR."
  )
)
meta$datasets <- lapply(names(datasets), function(n) list(file = paste0(n, ".csv"), rows = nrow(data[[n]]),
                                                         columns = I(names(data[[n]])), categorical = I(datasets[[n]]$cat)))
names(meta$datasets) <- names(datasets)

write_fixture(list(meta = meta, fits = fits, lrt = lrt), "lmm_public.json")
