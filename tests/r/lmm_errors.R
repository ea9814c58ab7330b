# What lme4/lmerTest do with awkward input: which cases are errors, warnings or
# messages, with R's text, and the fit R still returns (nobs, dropped columns).
# Run from the repository root after lmm_trial.R:  Rscript tests/r/lmm_errors.R
# Reads tests/fixtures/r/trial_long.csv; writes tests/fixtures/r/lmm_errors.json.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})
d <- read.csv(file.path(fixture_dir, "trial_long.csv"), stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("CAU", "IMR"))
d$wave <- factor(d$wave, levels = c("T1", "T2", "T3"))

case <- function(name, description, formula, data, REML = TRUE) {
  res <- tryCatch({
    cap <- capture(lmerTest::lmer(as.formula(formula), data = data, REML = REML))
    m <- cap$value
    list(outcome = if (length(cap$warnings)) "warning" else if (length(cap$messages)) "message" else "ok",
         nobs = nobs(m), ngroups = as.list(ngrps(m)),
         fixed_terms = I(names(fixef(m))),
         dropped_columns = I(as.character(attr(getME(m, "X"), "col.dropped") |> names())),
         singular = isSingular(m),
         reml_criterion = if (REML) unname(REMLcrit(m)) else NULL,
         warnings = I(cap$warnings), messages = I(cap$messages))
  }, error = function(e) list(outcome = "error", error = conditionMessage(e)))
  c(list(name = name, description = description, formula = formula, rows_in = nrow(data)), res)
}

# rows with missing values in model variables
d_na <- d
d_na$y[c(3, 10, 50)] <- NA
d_na$arm[c(20)] <- NA
# one participant only in a grouping factor
d_one <- d; d_one$site1 <- "S1"
# each row its own level
d_rows <- d; d_rows$row_id <- sprintf("R%04d", seq_len(nrow(d)))
# two observations per participant: (1 + time | id) has as many random effects as observations
d_two <- d[d$wave != "T3", ]
d_two <- d_two[d_two$id %in% names(which(table(d_two$id) == 2)), ]
# aliased column: a covariate equal to a linear combination of others
d_alias <- d; d_alias$imr2 <- as.numeric(d_alias$arm == "IMR")
# character response
d_chr <- d; d_chr$y <- as.character(d_chr$y); d_chr$y[1] <- "n/a"
# constant response within every participant: zero residual variance cannot be estimated? (y = id mean)
cases <- list(
  case("missing_values", "y NA in 3 rows, arm NA in 1 row: rows dropped (na.omit)", "y ~ arm * wave + (1 | id)", d_na),
  case("one_level_group", "grouping factor with a single level", "y ~ arm * wave + (1 | site1)", d_one),
  case("group_per_row", "grouping factor with one level per observation", "y ~ arm * wave + (1 | row_id)", d_rows),
  case("ranef_equals_nobs", "(1 + time | id) with exactly 2 observations per participant", "y ~ arm * wave + (1 + time | id)", d_two),
  case("aliased_fixed_column", "imr2 duplicates armIMR: rank-deficient X", "y ~ arm * wave + imr2 + (1 | id)", d_alias),
  case("character_response", "response column is text", "y ~ arm * wave + (1 | id)", d_chr),
  case("unknown_column", "formula names a column that does not exist", "y ~ arm * wave + age + (1 | id)", d),
  case("no_random_term", "formula without a random-effects term", "y ~ arm * wave", d)
)
meta <- make_meta("tests/r/lmm_errors.R", c("lme4", "lmerTest", "jsonlite"), c(
  "Each case: outcome = error | warning | message | ok, R's error text or the captured warnings/messages, and for fits that succeed nobs, ngroups, the fixed-effect terms kept and the columns lme4 dropped (rank deficiency).",
  "Data: tests/fixtures/r/trial_long.csv with the modifications described per case (see the script)."
))
write_fixture(list(meta = meta, cases = cases), "lmm_errors.json")
