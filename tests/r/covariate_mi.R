# Golden values for the multiple imputation of missing covariates (issue 17, point 4).
#
# Run from the repository root, in three steps (needs mice, lme4, lmerTest, emmeans):
#   Rscript tests/r/covariate_mi.R export     # 1. the fixture trial with missing covariates
#                                             #    and the simulated data set for the
#                                             #    distributional check (with mice's imputations)
#   HERSTEL_WRITE_COVARIATE_MI=1 cargo test --test covariate_mi -- --ignored write_completed
#                                             # 2. herstel writes its completed data sets and
#                                             #    per-imputation fits
#   Rscript tests/r/covariate_mi.R pool       # 3. mice::pool.scalar on them
#
# (a) Pooling level: from herstel's M completed data sets R fits lmerTest::lmer per data set
#     (fixed effects, SEs, Satterthwaite df; the arm contrast per wave by emmeans) and pools
#     with mice::pool.scalar(Q, U, n = dfcom + 1, k = 1), dfcom the mean Satterthwaite df; it
#     also pools herstel's own per-imputation estimates, which isolates Rubin's rules and the
#     Barnard-Rubin df (1e-10) from the lmer optimum (1e-6).
# (b) Distribution: a simulated trial (n = 400, MAR missingness of age, sex and edu depending
#     on arm and the baseline outcome) imputed by mice with m = 200, maxit = 10, methods pmm /
#     logreg / polyreg / pmm; per imputation the mean and SD of the imputed ages, the share of
#     imputed "male" and of each imputed edu level are written.
source("tests/r/common.R")
fixture_dir <- "tests/fixtures/covariate_mi"
suppressPackageStartupMessages({
  library(mice)
})
step <- commandArgs(trailingOnly = TRUE)[1]

if (identical(step, "export")) {
  src <- "tests/fixtures/trial-small/export"
  dst <- file.path(fixture_dir, "export")
  dir.create(dst, showWarnings = FALSE, recursive = TRUE)
  for (f in list.files(src)) file.copy(file.path(src, f), file.path(dst, f), overwrite = TRUE)
  p <- read.csv(file.path(dst, "participants.csv"), stringsAsFactors = FALSE, na.strings = "",
                colClasses = "character")
  # A binary sex (logreg); MAR missingness depending on arm and site (both complete).
  p$sex[p$sex == "other"] <- "female"
  set.seed(1717)
  imr <- p$arm == "IMR"
  s1 <- p$site_id == sort(unique(p$site_id))[1]
  miss_age <- runif(nrow(p)) < plogis(-1.6 + 0.9 * imr)
  miss_sex <- runif(nrow(p)) < plogis(-1.9 + 0.8 * s1)
  p$age[miss_age] <- NA
  p$sex[miss_sex] <- NA
  write.csv(p, file.path(dst, "participants.csv"), row.names = FALSE, na = "", quote = FALSE)
  cat("export: age missing for", sum(miss_age), "and sex for", sum(miss_sex), "participants\n")

  # (b) the simulated data set.
  set.seed(20261203)
  n <- 400
  arm <- factor(ifelse(runif(n) < 0.5, "IMR", "TAU"), levels = c("TAU", "IMR"))
  age <- round(rnorm(n, 42, 11))
  sex <- factor(ifelse(runif(n) < plogis(-0.3 + 0.03 * (age - 42)), "male", "female"),
                levels = c("female", "male"))
  edu <- factor(c("low", "mid", "high")[1 + (runif(n) < plogis(0.04 * (age - 42))) +
                                          (runif(n) < 0.35)], levels = c("high", "low", "mid"))
  y0 <- 30 + 0.15 * (age - 42) + 2 * (sex == "male") + 1.5 * (edu == "low") + rnorm(n, 0, 5)
  y1 <- 8 + 0.7 * y0 + 3 * (arm == "IMR") + 0.1 * (age - 42) + rnorm(n, 0, 4)
  y2 <- 6 + 0.6 * y0 + 4 * (arm == "IMR") + 0.1 * (age - 42) + rnorm(n, 0, 4)
  d <- data.frame(age = as.numeric(age), sex = sex, edu = edu, arm = arm, y0 = y0,
                  y1 = y1, y2 = y2)
  imr <- arm == "IMR"
  d$age[runif(n) < plogis(-1.3 + 0.7 * imr + 0.08 * (y0 - 30))] <- NA
  d$sex[runif(n) < plogis(-1.6 - 0.5 * imr + 0.06 * (y0 - 30))] <- NA
  d$edu[runif(n) < plogis(-1.8 + 0.6 * imr)] <- NA
  d$y1[runif(n) < plogis(-1.8 + 0.05 * (y0 - 30))] <- NA
  d$y2[runif(n) < plogis(-1.4 + 0.05 * (y0 - 30))] <- NA
  d$y0 <- round(d$y0, 6); d$y1 <- round(d$y1, 6); d$y2 <- round(d$y2, 6)
  write.csv(d, file.path(fixture_dir, "sim.csv"), row.names = FALSE, na = "", quote = FALSE)
  back <- read.csv(file.path(fixture_dir, "sim.csv"), na.strings = "")
  back$sex <- factor(back$sex, levels = c("female", "male"))
  back$edu <- factor(back$edu, levels = c("high", "low", "mid"))
  back$arm <- factor(back$arm, levels = c("TAU", "IMR"))
  m <- 200
  t0 <- Sys.time()
  imp <- mice(back, m = m, maxit = 10,
              method = c(age = "pmm", sex = "logreg", edu = "polyreg", arm = "", y0 = "",
                         y1 = "pmm", y2 = "pmm"),
              seed = 17, printFlag = FALSE)
  secs <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  ma <- is.na(back$age); ms <- is.na(back$sex); me <- is.na(back$edu)
  per <- lapply(seq_len(m), function(k) {
    x <- complete(imp, k)
    list(age_mean = mean(x$age[ma]), age_sd = sd(x$age[ma]),
         sex_male = mean(x$sex[ms] == "male"),
         edu_high = mean(x$edu[me] == "high"), edu_low = mean(x$edu[me] == "low"),
         edu_mid = mean(x$edu[me] == "mid"),
         y1_mean = mean(x$y1[is.na(back$y1)]))
  })
  col <- function(name) I(vapply(per, function(p) p[[name]], 0))
  out <- list(
    meta = make_meta("tests/r/covariate_mi.R export", c("mice"),
                     c("mice(m = 200, maxit = 10, seed = 17), every other column a predictor",
                       "per imputation: summaries over the cells missing in sim.csv")),
    m = m, seconds = secs,
    n_missing = list(age = sum(ma), sex = sum(ms), edu = sum(me)),
    per_imputation = list(age_mean = col("age_mean"), age_sd = col("age_sd"),
                          sex_male = col("sex_male"), edu_high = col("edu_high"),
                          edu_low = col("edu_low"), edu_mid = col("edu_mid"),
                          y1_mean = col("y1_mean")))
  write_json(out, file.path(fixture_dir, "mice_distribution.json"), digits = NA,
             auto_unbox = TRUE, pretty = TRUE, na = "null")
  cat("simulated: mice took", round(secs, 1), "s\n")
}

if (identical(step, "pool")) {
  suppressPackageStartupMessages({
    library(lme4); library(lmerTest); library(emmeans)
  })
  emm_options(lmer.df = "satterthwaite", lmerTest.limit = 1e6)
  files <- sort(list.files(file.path(fixture_dir, "completed"), pattern = "^imp_[0-9]+\\.csv$",
                           full.names = TRUE))
  m <- length(files)
  fits <- lapply(files, function(f) {
    x <- read.csv(f, stringsAsFactors = FALSE)
    x$arm <- factor(x$arm, levels = c("TAU", "IMR"))
    x$wave <- factor(x$wave, levels = c("T0", "T1", "T2"))
    x$sex <- factor(x$sex, levels = c("female", "male"))
    fit <- lmer(y ~ arm * wave + age + sex + (1 | participant_id), data = x, REML = TRUE,
                control = lmerControl(optimizer = "bobyqa",
                                      optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5)))
    co <- summary(fit)$coefficients
    em <- emmeans(fit, ~ arm | wave)
    ct <- summary(contrast(em, list("IMR - TAU" = c(-1, 1))))
    list(terms = rownames(co), est = co[, "Estimate"], se = co[, "Std. Error"], df = co[, "df"],
         c_wave = as.character(ct$wave), c_est = ct$estimate, c_se = ct$SE, c_df = ct$df)
  })
  pool_one <- function(q, u, df) {
    dfcom <- mean(df)
    p <- pool.scalar(q, u, n = dfcom + 1, k = 1)
    # pool.scalar returns no lambda: mice::pool's (1 + 1/m) b / t.
    list(estimate = p$qbar, ubar = p$ubar, b = p$b, t = p$t, std_error = sqrt(p$t),
         df = p$df, riv = p$r, lambda = (1 + 1 / p$m) * p$b / p$t, fmi = p$fmi, dfcom = dfcom)
  }
  terms <- fits[[1]]$terms
  r_fixed <- lapply(seq_along(terms), function(j) {
    c(term = terms[j], pool_one(sapply(fits, function(f) f$est[j]),
                                sapply(fits, function(f) f$se[j]^2),
                                sapply(fits, function(f) f$df[j])))
  })
  waves <- fits[[1]]$c_wave
  # The follow-up waves (herstel reports the arm contrast after baseline, as the primary analysis).
  r_contr <- lapply(which(waves != "T0"), function(j) {
    c(term = "IMR - TAU", wave = waves[j],
      pool_one(sapply(fits, function(f) f$c_est[j]), sapply(fits, function(f) f$c_se[j]^2),
               sapply(fits, function(f) f$c_df[j])))
  })
  # herstel's own per-imputation values, pooled by mice.
  h <- read.csv(file.path(fixture_dir, "completed", "herstel_fits.csv"), stringsAsFactors = FALSE)
  keys <- unique(h[, c("term", "wave")])
  h_pooled <- lapply(seq_len(nrow(keys)), function(i) {
    s <- h[h$term == keys$term[i] & h$wave == keys$wave[i], ]
    s <- s[order(s$imputation), ]
    c(term = keys$term[i], wave = keys$wave[i], pool_one(s$estimate, s$std_error^2, s$df))
  })
  out <- list(
    meta = make_meta("tests/r/covariate_mi.R pool", c("mice", "lme4", "lmerTest", "emmeans"),
                     c("lmer REML, bobyqa rhoend 1e-12; Satterthwaite df (lmerTest, emmeans)",
                       "mice::pool.scalar(Q, U, n = dfcom + 1, k = 1), dfcom = mean df over fits")),
    m = m, r_fixed = r_fixed, r_contrasts = r_contr, herstel_pooled = h_pooled)
  write_json(out, file.path(fixture_dir, "mice_pool.json"), digits = NA, auto_unbox = TRUE,
             pretty = TRUE, na = "null")
  cat("pooled", m, "data sets\n")
}
