# Golden values for Rubin's rules with the Barnard-Rubin df (issue 17, point 2/4: pooling of
# multiple imputations), from mice::pool on completed data sets that mice itself imputed.
# The Rust test (tests/missing.rs, rubin_rules_match_mice_pool) reads the completed data sets
# written here, fits lm(y ~ arm + baseline) per wave and data set, pools them with
# herstel::missing::mi::rubin and compares with mice to 1e-10.
#
# Run from the repository root:  Rscript tests/r/missing_rubin_reference.R   (needs mice, the
# Debian package r-cran-mice; ~2 s). Writes tests/fixtures/missing/mice_completed.csv and
# tests/fixtures/missing/mice_pool.json.
source("tests/r/common.R")
fixture_dir <- "tests/fixtures/missing"
suppressPackageStartupMessages(library(mice))

d <- read.csv(file.path(fixture_dir, "data.csv"), stringsAsFactors = FALSE, na.strings = "")
w <- reshape(d, idvar = c("participant_id", "arm", "baseline"), timevar = "wave",
             direction = "wide", v.names = "y")
names(w) <- sub("^y\\.", "", names(w))
w <- w[order(w$participant_id), c("participant_id", "arm", "baseline", "T1", "T2", "T3")]
w$arm <- factor(w$arm, levels = c("TAU", "IMR"))
rownames(w) <- NULL
# Imputation model: predictive mean matching (mice's default for numeric columns) of T1..T3
# from the other columns; participant_id is not a predictor.
pred <- make.predictorMatrix(w)
pred[, "participant_id"] <- 0
imp <- mice(w, m = 5, method = c("", "", "", "pmm", "pmm", "pmm"), predictorMatrix = pred,
            seed = 20261203, printFlag = FALSE)
long <- complete(imp, "long")
csv <- file.path(fixture_dir, "mice_completed.csv")
write.csv(long[, c(".imp", "participant_id", "arm", "baseline", "T1", "T2", "T3")], csv,
          row.names = FALSE)
cat("wrote", csv, "\n")

# Read back (the values as written) and pool per wave.
back <- read.csv(csv, stringsAsFactors = FALSE)
back$arm <- factor(back$arm, levels = c("TAU", "IMR"))
per_wave <- lapply(c("T1", "T2", "T3"), function(wv) {
  fits <- lapply(split(back, back$.imp), function(x) lm(as.formula(paste(wv, "~ arm + baseline")), data = x))
  est <- vapply(fits, function(f) coef(f)[["armIMR"]], 0)
  se <- vapply(fits, function(f) sqrt(vcov(f)["armIMR", "armIMR"]), 0)
  pl <- pool(as.mira(fits))
  pd <- pl$pooled[pl$pooled$term == "armIMR", ]
  sm <- summary(pl, conf.int = TRUE)
  sm <- sm[sm$term == "armIMR", ]
  sc <- pool.scalar(est, se^2, n = nrow(fits[[1]]$model), k = 3)
  list(wave = wv, estimates = I(unname(est)), std_errors = I(unname(se)),
       dfcom = pd$dfcom, qbar = pd$estimate, ubar = pd$ubar, b = pd$b, t = pd$t, df = pd$df,
       riv = pd$riv, lambda = pd$lambda, fmi = pd$fmi,
       std_error = sm$std.error, statistic = sm$statistic, p_value = sm$p.value,
       conf_low = sm[["2.5 %"]], conf_high = sm[["97.5 %"]],
       pool_scalar = list(qbar = sc$qbar, ubar = sc$ubar, b = sc$b, t = sc$t, df = sc$df,
                          r = sc$r, fmi = sc$fmi))
})
meta <- make_meta("tests/r/missing_rubin_reference.R", c("mice", "jsonlite"), c(
  "mice(wide data, m = 5, method = pmm for T1..T3, participant_id not a predictor, seed = 20261203); complete(imp, 'long') written to mice_completed.csv and read back.",
  "Per wave: lm(Tw ~ arm + baseline) per completed data set; pool(as.mira(fits)) (Rubin 1987 with mice:::barnard.rubin df, dfcom = df.residual = n - 3); summary(pool, conf.int = TRUE) for the armIMR row.",
  "pool.scalar(Q, U, n, k = 3) beside, as a second route to the same numbers."
))
write_fixture(list(meta = meta, n = nrow(w), m = 5, waves = per_wave), "mice_pool.json")
