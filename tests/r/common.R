# Shared helpers for the herstel R golden-file scripts (tests/r/*.R).
# Run every script from the repository root:  Rscript tests/r/<script>.R
# Output: JSON under tests/fixtures/r/ with 15 significant digits (jsonlite digits = NA),
# R's NA written as null. Vectors that are arrays in the JSON are wrapped in I() so that
# auto_unbox never turns a length-1 array into a scalar.

suppressPackageStartupMessages({
  library(jsonlite)
})

fixture_dir <- "tests/fixtures/r"

pkg_versions <- function(pkgs) {
  out <- list()
  for (p in pkgs) {
    out[[p]] <- tryCatch(as.character(utils::packageVersion(p)), error = function(e) NA_character_)
  }
  out
}

make_meta <- function(script, pkgs, conventions) {
  list(
    script = script,
    r_version = R.version.string,
    packages = pkg_versions(pkgs),
    platform = R.version$platform,
    blas_lapack = tryCatch(c(La_library(), extSoftVersion()[["BLAS"]]), error = function(e) NA),
    generated = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
    conventions = I(conventions)
  )
}

write_fixture <- function(x, name) {
  path <- file.path(fixture_dir, name)
  jsonlite::write_json(x, path, digits = NA, auto_unbox = TRUE, pretty = TRUE,
                       na = "null", null = "null")
  cat("wrote", path, "\n")
  invisible(path)
}

# Evaluate expr, collecting warnings and messages instead of printing them.
capture <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  value <- withCallingHandlers(
    expr,
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      msgs <<- c(msgs, sub("\n$", "", conditionMessage(m)))
      invokeRestart("muffleMessage")
    }
  )
  list(value = value, warnings = warns, messages = msgs)
}

# A data frame -> list of row records (keeps NA as null, keeps types).
rows <- function(df) {
  df <- as.data.frame(df, stringsAsFactors = FALSE)
  rownames(df) <- NULL
  for (nm in names(df)) if (is.factor(df[[nm]])) df[[nm]] <- as.character(df[[nm]])
  lapply(seq_len(nrow(df)), function(i) {
    r <- lapply(df, function(col) col[[i]])
    r
  })
}

# Fixed-effects table from a coefficient matrix with lmerTest columns.
coef_rows <- function(cm) {
  cm <- as.matrix(cm)
  data.frame(
    term = rownames(cm),
    estimate = unname(cm[, "Estimate"]),
    se = unname(cm[, "Std. Error"]),
    df = if ("df" %in% colnames(cm)) unname(cm[, "df"]) else NA_real_,
    t = unname(cm[, grep("value$", colnames(cm))[1]]),
    p = unname(cm[, grep("^Pr\\(", colnames(cm))[1]]),
    stringsAsFactors = FALSE
  )
}

anova_rows <- function(a) {
  a <- as.data.frame(a)
  if (nrow(a) == 0) return(list())
  rows(data.frame(
    term = rownames(a),
    sum_sq = a[["Sum Sq"]],
    mean_sq = a[["Mean Sq"]],
    num_df = a[["NumDF"]],
    den_df = a[["DenDF"]],
    f = a[["F value"]],
    p = a[["Pr(>F)"]],
    stringsAsFactors = FALSE
  ))
}

# Everything about one lmerTest::lmer fit.
#   data: the data frame as read back from CSV (factors already set)
#   emm: NULL or a list(specs = ~ arm * wave, by_contrast = list(...)) — see emm_block()
#   ranef_condvar: include conditional modes and SDs
lmer_record <- function(id, formula, data, REML = TRUE, dataset = NULL, csv = NULL,
                        anova3 = TRUE, emm = NULL, ranef_condvar = FALSE, kr = TRUE,
                        fitted_values = FALSE) {
  f <- as.formula(formula)
  cap <- capture(lmerTest::lmer(f, data = data, REML = REML))
  m <- cap$value
  s_sat <- summary(m, ddf = "Satterthwaite")
  fe <- coef_rows(s_sat$coefficients)
  fe_kr <- NULL
  kr_warn <- character(0)
  if (kr) {
    kcap <- tryCatch(capture(summary(m, ddf = "Kenward-Roger")$coefficients),
                     error = function(e) list(value = NULL, warnings = paste("error:", conditionMessage(e))))
    if (!is.null(kcap$value)) fe_kr <- coef_rows(kcap$value)
    kr_warn <- kcap$warnings
  }
  vc <- as.data.frame(lme4::VarCorr(m))
  re <- vc[is.na(vc$var2) & vc$grp != "Residual", ]
  co <- vc[!is.na(vc$var2), ]
  ll <- logLik(m)
  th <- lme4::getME(m, "theta")
  ng <- lme4::ngrps(m)
  rec <- list(
    id = id,
    dataset = dataset,
    csv = csv,
    formula = formula,
    REML = REML,
    nobs = nobs(m),
    ngroups = as.list(ng),
    fixed_effects = rows(fe),
    fixed_effects_kr = if (is.null(fe_kr)) NULL else rows(fe_kr),
    random_effects = rows(data.frame(group = re$grp, term = re$var1, variance = re$vcov,
                                     sd = re$sdcor, stringsAsFactors = FALSE)),
    correlations = rows(data.frame(group = co$grp, term1 = co$var1, term2 = co$var2,
                                   cor = co$sdcor, cov = co$vcov, stringsAsFactors = FALSE)),
    residual_sd = sigma(m),
    theta = I(unname(th)),
    theta_names = I(names(th)),
    loglik = as.numeric(ll),
    loglik_df = attr(ll, "df"),
    reml_criterion = if (REML) unname(lme4::REMLcrit(m)) else NULL,
    deviance = if (!REML) deviance(m) else NULL,
    aic = AIC(m),
    bic = BIC(m),
    singular = lme4::isSingular(m),
    convergence_messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
    warnings = I(cap$warnings),
    messages = I(cap$messages),
    kr_warnings = I(kr_warn),
    df_method = "fixed_effects: Satterthwaite (lmerTest); fixed_effects_kr: Kenward-Roger (lmerTest summary(ddf = 'Kenward-Roger'), pbkrtest::vcovAdj: se is the KR-adjusted SE)"
  )
  if (anova3 && length(lme4::fixef(m)) > 1) {
    a_sat <- anova(m, type = 3, ddf = "Satterthwaite")
    a_kr <- tryCatch(anova(m, type = 3, ddf = "Kenward-Roger"), error = function(e) NULL)
    rec$anova_type3_satterthwaite <- anova_rows(a_sat)
    rec$anova_type3_kr <- if (is.null(a_kr)) NULL else anova_rows(a_kr)
    # the hypothesis matrices lmerTest uses for type III (rows = contrasts on the coefficients)
    L3 <- lmerTest:::get_contrasts_type3(m)
    rec$anova_type3_L <- lapply(names(L3), function(t) list(
      term = t, coefficients = I(colnames(L3[[t]])), rows = I(rownames(L3[[t]])),
      L = unname(lapply(seq_len(nrow(L3[[t]])), function(i) I(unname(L3[[t]][i, ]))))))
  }
  if (!is.null(emm)) rec$emmeans <- emm(m)
  if (ranef_condvar) {
    rr <- as.data.frame(lme4::ranef(m, condVar = TRUE))
    rec$ranef <- rows(data.frame(group = as.character(rr$grpvar), term = as.character(rr$term),
                                 level = as.character(rr$grp), condval = rr$condval,
                                 condsd = rr$condsd, stringsAsFactors = FALSE))
  }
  if (fitted_values) {
    # conditional fitted values X beta + Z b and residuals y - fitted, in data row order
    rec$fitted <- I(unname(fitted(m)))
    rec$residuals <- I(unname(residuals(m)))
  }
  list(record = rec, model = m)
}

lrt_record <- function(m0, m1, name0, name1) {
  cap <- capture(anova(m0, m1))
  a <- as.data.frame(cap$value)
  list(
    models = I(c(name0, name1)),
    note = "anova(m0, m1): lme4 refits REML fits with ML before comparing; rows in order of npar",
    table = rows(data.frame(model = rownames(a), npar = a$npar, aic = a$AIC, bic = a$BIC,
                            loglik = a$logLik, deviance = a$deviance, chisq = a$Chisq,
                            df = a$Df, p = a[["Pr(>Chisq)"]], stringsAsFactors = FALSE)),
    messages = I(cap$messages),
    warnings = I(cap$warnings)
  )
}
