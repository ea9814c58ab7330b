# Golden values for generalized linear mixed models (binomial, Poisson, negative binomial; Laplace
# and adaptive Gauss-Hermite quadrature): lme4::glmer / glmer.nb and glmmTMB, each fitted with
# the packages' default optimizer settings and with tight tolerances, plus a cross-evaluation of
# every parameter set under both packages' (Laplace) likelihoods.
# Run from the repository root:  Rscript tests/r/glmm.R   (~40 s; needs r-cran-glmmtmb)
# Writes into tests/fixtures/glmm/ the data as fitted (CSV, read back before fitting) and one JSON
# per data set:
#   cbpp.csv             + cbpp.json              lme4::cbpp, binomial (successes / trials)
#   cbpp_binary.csv      + cbpp_binary.json       cbpp expanded to one 0/1 row per animal
#   grouseticks.csv      + grouseticks.json       lme4::grouseticks, Poisson, 1 and 2 random effects
#   salamanders.csv      + salamanders.json       glmmTMB::Salamanders, NB2 and Poisson
#   admissions_periods.csv + admissions_periods.json  trial-small admissions per participant per
#                                                     inter-wave period, log-exposure offset
#   default_vs_tight.json  one row per fit: loglik and distance from the best fit of its package
#
# The per-period admissions table (admissions_periods.csv) is built from
# tests/fixtures/trial-small/export/{study.toml, participants.csv, admissions.csv} as follows
# (the conventions of src/admissions/mod.rs):
#   * d = date - randomized_on, in days (dates as calendar days).
#   * The waves' nominal days are months x 365.25 / 12 (study.toml: T0 0, T1 12, T2 21 months ->
#     0, 365.25, 639.1875). Period k runs from wave k-1 to wave k and holds the integer days d with
#     nominal_{k-1} < d <= nominal_k (DayWindow::after_nominal): period "T0_T1" = days 1..365
#     (365 days), period "T1_T2" = days 366..639 (274 days).
#   * admissions = number of admissions whose admitted_on day d lies in the period (an admission
#     on the randomization day, d = 0, is in no period; a stay that began earlier and runs into
#     the period adds bed days there but is not counted).
#   * bed_days = days of the period spent in hospital: a stay admitted on day a and discharged on
#     day e occupies days a, ..., e - 1 (admission day counted, discharge day not); a stay with no
#     discharge date (still admitted at export) occupies every day from a to the end of the
#     period.
#   * exposure_days = period_days - bed_days (days at risk of a new admission), exposure =
#     exposure_days / 365.25 (years at risk; the offset is log(exposure), so rates are per person
#     year). No export date is given, so every participant is followed to the last wave's day.
#   * Every participant (120) x every period (2) is a row, with zero counts kept: 240 rows.
#   * arm: factor with the study.toml order TAU, IMR (TAU = reference); period: factor T0_T1,
#     T1_T2.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(MASS)
})
have_tmb <- requireNamespace("glmmTMB", quietly = TRUE)
if (have_tmb) suppressPackageStartupMessages(library(glmmTMB))

fixture_dir <- "tests/fixtures/glmm"
dir.create(fixture_dir, showWarnings = FALSE, recursive = TRUE)
pkgs <- c("lme4", "glmmTMB", "TMB", "MASS", "Matrix", "minqa", "nloptr", "jsonlite")

# ---------------------------------------------------------------------------------------------
# controls

glmer_controls <- list(
  default = list(
    ctrl = glmerControl(),
    note = "glmerControl() defaults: optimizer c('bobyqa', 'Nelder_Mead') (stage 1, nAGQ = 0: bobyqa over theta; stage 2: Nelder_Mead over (theta, beta)), tolPwrss = 1e-7"
  ),
  tight_bobyqa = list(
    ctrl = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                        optCtrl = list(maxfun = 1e5, rhoend = 1e-10)),
    note = "glmerControl(optimizer = 'bobyqa' (both stages), tolPwrss = 1e-10, optCtrl = list(maxfun = 1e5, rhoend = 1e-10)); rhobeg = minqa's default"
  ),
  tight_nloptwrap = list(
    ctrl = glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-10,
                        optCtrl = list(algorithm = "NLOPT_LN_BOBYQA", maxeval = 1e5,
                                       xtol_abs = 1e-12, ftol_abs = 1e-12,
                                       xtol_rel = 1e-12, ftol_rel = 1e-15)),
    note = "glmerControl(optimizer = 'nloptwrap' (both stages), tolPwrss = 1e-10, optCtrl = list(algorithm = 'NLOPT_LN_BOBYQA', maxeval = 1e5, xtol_abs = 1e-12, ftol_abs = 1e-12, xtol_rel = 1e-12, ftol_rel = 1e-15))"
  )
)
# glmer.nb: outer optimize() over log(theta) with tolerance `tol`, each evaluation a glmer fit
nb_tol <- c(default = 5e-5, tight_bobyqa = 1e-10, tight_nloptwrap = 1e-10)
# lme4 1.1.31's glmer.nb(tol = ) fails ("unused argument (tol = ...)": match.call() passes tol
# on to the initial glmer call), so the tight fits run glmer.nb's own steps with lme4's internal
# functions: Poisson glmer -> est_theta (MASS::theta.ml on its fitted values, limit 20,
# eps = 2 tol) -> glmer with negative.binomial(theta) -> optTheta (optimize over log(theta) on
# log(theta) +- 3, tol; each step refit()s from the previous fit with the same control).
glmer_nb_tol <- function(f, data, nAGQ, control, tol) {
  g0 <- glmer(f, data = data, family = poisson, nAGQ = nAGQ, control = control)
  th <- lme4:::est_theta(g0, limit = 20, eps = 2 * tol, trace = 0)
  g1 <- glmer(f, data = data, family = MASS::negative.binomial(theta = th), nAGQ = nAGQ,
              control = control)
  lme4:::optTheta(g1, interval = log(th) + c(-3, 3), tol = tol, verbose = FALSE,
                  control = control)
}

if (have_tmb) {
  tmb_controls <- list(
    default = list(ctrl = glmmTMBControl(),
                   note = "glmmTMBControl() defaults (nlminb, eval.max = iter.max = 300 in glmmTMB 1.1.5; nlminb's rel.tol 1e-10)"),
    tight = list(ctrl = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14)),
                 note = "glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14))")
  )
}

safe <- function(expr) {
  tryCatch(capture(expr), error = function(e) list(value = NULL, error = conditionMessage(e),
                                                     warnings = character(0), messages = character(0)))
}

# ---------------------------------------------------------------------------------------------
# records

# saturated log-likelihood sum log f(y | mu = y) (binomial and Poisson): lme4 1.1.31's logLik at
# nAGQ > 1 is the quadrature log-likelihood minus this (it sums deviance residuals instead of
# log densities; lme4 issues #161, #567), so loglik + saturated_loglik is on the nAGQ = 1 scale.
saturated_loglik <- function(m) {
  y <- m@resp$y
  wt <- m@resp$weights
  fam <- family(m)$family
  if (fam == "binomial") sum(dbinom(round(y * wt), round(wt), y, log = TRUE))
  else if (fam == "poisson") sum(dpois(y, y, log = TRUE))
  else NA_real_
}

# Adaptive Gauss-Hermite log-likelihood with all constants for one scalar random intercept
# (binomial logit, Poisson log): per group, the mode u* and curvature of
# log f(y_g | u) + log phi(u) (Newton, exact second derivative), nodes u* + s z_k with
# s = 1 / sqrt(-h''(u*)) and lme4::GHrule(nAGQ) (weights for the N(0, 1) density), i.e.
# log integral = log s + log sum_k w_k exp(h(u* + s z_k) - log phi(z_k)).
agq_ref <- function(formula, data, family, p, nAGQ) {
  lf <- glFormula(as.formula(formula), data = data, family = family)
  stopifnot(length(lf$reTrms$flist) == 1, lengths(lf$reTrms$cnms) == 1)
  grp <- lf$reTrms$flist[[1]]
  sdv <- unname(p$sd[names(lf$reTrms$cnms)])
  yy <- model.response(lf$fr)
  if (is.matrix(yy)) { k <- yy[, 1]; n <- yy[, 1] + yy[, 2] } else { k <- yy; n <- rep(1, length(yy)) }
  eta0 <- as.vector(lf$X %*% p$beta[colnames(lf$X)])
  off <- model.offset(lf$fr)
  if (!is.null(off)) eta0 <- eta0 + off
  gh <- GHrule(nAGQ)
  tot <- 0
  for (g in levels(grp)) {
    i <- which(grp == g)
    h <- function(u) {
      eta <- eta0[i] + sdv * u
      ll <- if (family$family == "binomial") sum(dbinom(k[i], n[i], plogis(eta), log = TRUE))
            else sum(dpois(k[i], exp(eta), log = TRUE))
      ll + dnorm(u, log = TRUE)
    }
    d12 <- function(u) {
      eta <- eta0[i] + sdv * u
      if (family$family == "binomial") { pr <- plogis(eta); c(sdv * sum(k[i] - n[i] * pr) - u, -sdv^2 * sum(n[i] * pr * (1 - pr)) - 1) }
      else { mu <- exp(eta); c(sdv * sum(k[i] - mu) - u, -sdv^2 * sum(mu) - 1) }
    }
    u <- 0
    for (it in 1:100) { d <- d12(u); step <- -d[1] / d[2]; u <- u + step; if (abs(step) < 1e-14) break }
    s <- 1 / sqrt(-d12(u)[2])
    v <- vapply(gh[, "z"], function(z) h(u + s * z) - dnorm(z, log = TRUE), numeric(1))
    mx <- max(v)
    tot <- tot + log(s) + mx + log(sum(gh[, "w"] * exp(v - mx)))
  }
  tot
}

glmer_record <- function(cap, control_name, control_note, nAGQ) {
  if (is.null(cap$value)) {
    return(list(package = "lme4", control = control_name, control_note = control_note,
                error = cap$error))
  }
  m <- cap$value
  s <- summary(m)
  cm <- s$coefficients
  vrx <- capture(vcov(m, use.hessian = FALSE))
  se_rx <- sqrt(diag(as.matrix(vrx$value)))
  vc <- as.data.frame(VarCorr(m))
  re <- vc[is.na(vc$var2), ]
  co <- vc[!is.na(vc$var2), ]
  ll <- logLik(m)
  oi <- m@optinfo
  fam <- family(m)
  nb <- grepl("^Negative Binomial", fam$family)
  th <- getME(m, "theta")
  list(
    package = "lme4",
    fitter = if (nb) "glmer.nb" else "glmer",
    control = control_name,
    control_note = control_note,
    family = fam$family,
    link = fam$link,
    nAGQ = nAGQ,
    nobs = nobs(m),
    ngroups = as.list(ngrps(m)),
    fixed_effects = rows(data.frame(term = rownames(cm), estimate = unname(cm[, 1]),
                                    se = unname(cm[, 2]), z = unname(cm[, 3]), p = unname(cm[, 4]),
                                    se_rx = unname(se_rx[rownames(cm)]), stringsAsFactors = FALSE)),
    random_effects = rows(data.frame(group = re$grp, term = re$var1, variance = re$vcov,
                                     sd = re$sdcor, stringsAsFactors = FALSE)),
    correlations = rows(data.frame(group = co$grp, term1 = co$var1, term2 = co$var2,
                                   cor = co$sdcor, cov = co$vcov, stringsAsFactors = FALSE)),
    theta = I(unname(th)),
    theta_names = I(names(th)),
    beta = I(unname(fixef(m))),
    sigma = sigma(m),
    nb_theta = if (nb) unname(getME(m, "glmer.nb.theta")) else NULL,
    nb_theta_note = if (nb) "MASS parameterization: Var(y) = mu + mu^2 / theta (glmer.nb: family = MASS::negative.binomial(theta), theta from optimize() over log(theta) of the profile Laplace likelihood)" else NULL,
    nb_outer_evaluations = if (nb && !is.null(attr(m, "nevals"))) attr(m, "nevals") else NULL,
    loglik = as.numeric(ll),
    loglik_df = attr(ll, "df"),
    aic = AIC(m),
    bic = BIC(m),
    deviance = deviance(m),
    minus_two_loglik = -2 * as.numeric(ll),
    aictab = as.list(s$AICtab),
    saturated_loglik = if (nAGQ > 1) saturated_loglik(m) else NULL,
    loglik_plus_saturated = if (nAGQ > 1) as.numeric(ll) + saturated_loglik(m) else NULL,
    agq_note = if (nAGQ > 1) "lme4 1.1.31 at nAGQ > 1: loglik (and aic, bic, aictab) omit the saturated log-likelihood (lme4 issues #161, #567); loglik_plus_saturated = loglik + saturated_loglik is the quadrature log-likelihood with all constants, comparable with the nAGQ = 1 loglik (checked against agq_ref in tests/r/glmm.R: agq_reference in the model block)" else NULL,
    df_residual = df.residual(m),
    singular = isSingular(m),
    optimizer = I(as.character(oi$optimizer)),
    optimizer_conv = oi$conv$opt,
    optimizer_message = if (is.null(oi$message)) NA_character_ else as.character(oi$message),
    feval = if (is.null(oi$feval)) NA else oi$feval,
    convergence_messages = I(as.character(unlist(oi$conv$lme4$messages))),
    optinfo_warnings = I(as.character(unlist(oi$warnings))),
    gradient_fd = I(unname(as.numeric(oi$derivs$gradient))),
    warnings = I(cap$warnings),
    messages = I(cap$messages),
    vcov_rx_warnings = I(vrx$warnings)
  )
}

tmb_record <- function(cap, control_name, control_note) {
  if (is.null(cap$value)) {
    return(list(package = "glmmTMB", control = control_name, control_note = control_note,
                error = cap$error))
  }
  m <- cap$value
  scap <- capture(summary(m))
  s <- scap$value
  cm <- s$coefficients$cond
  vc <- VarCorr(m)$cond
  re <- do.call(rbind, lapply(names(vc), function(g) {
    sdv <- attr(vc[[g]], "stddev")
    data.frame(group = g, term = names(sdv), variance = unname(sdv^2), sd = unname(sdv),
               stringsAsFactors = FALSE)
  }))
  co <- do.call(rbind, lapply(names(vc), function(g) {
    cr <- attr(vc[[g]], "correlation")
    if (is.null(cr) || nrow(cr) < 2) return(NULL)
    idx <- which(lower.tri(cr), arr.ind = TRUE)
    data.frame(group = g, term1 = rownames(cr)[idx[, 1]], term2 = colnames(cr)[idx[, 2]],
               cor = cr[idx], stringsAsFactors = FALSE)
  }))
  if (is.null(co)) co <- data.frame(group = character(0), term1 = character(0),
                                    term2 = character(0), cor = numeric(0))
  fam <- family(m)
  sfcap <- capture(summary(m$sdr, "fixed"))
  sf <- sfcap$value
  ll <- logLik(m)
  grad <- tryCatch(as.numeric(m$obj$gr(m$fit$par)), error = function(e) NA_real_)
  ng <- tryCatch(sapply(m$modelInfo$reTrms$cond$flist, nlevels), error = function(e) NULL)
  nb <- fam$family == "nbinom2"
  dev <- tryCatch(deviance(m), error = function(e) NULL)
  list(
    package = "glmmTMB",
    fitter = "glmmTMB",
    control = control_name,
    control_note = control_note,
    family = fam$family,
    link = fam$link,
    nAGQ = 1,
    nobs = nobs(m),
    ngroups = as.list(ng),
    fixed_effects = rows(data.frame(term = rownames(cm), estimate = unname(cm[, 1]),
                                    se = unname(cm[, 2]), z = unname(cm[, 3]), p = unname(cm[, 4]),
                                    stringsAsFactors = FALSE)),
    random_effects = rows(re),
    correlations = rows(co),
    sigma = sigma(m),
    sigma_note = if (nb) "nbinom2: sigma(m) = exp(betad) = theta, Var(y) = mu + mu^2 / theta (same theta as MASS / glmer.nb)" else "1 for binomial and Poisson",
    nb_theta = if (nb) sigma(m) else NULL,
    parameters = rows(data.frame(name = names(m$fit$par), estimate = unname(m$fit$par),
                                 se = unname(sf[, 2]), stringsAsFactors = FALSE)),
    parameters_note = "TMB's outer parameters: beta = fixed effects, betad = log(theta) (nbinom2 only), theta = log(SD) of each scalar random effect; se from TMB::sdreport (inverse of the Hessian of the Laplace marginal negative log-likelihood)",
    loglik = as.numeric(ll),
    loglik_from_objective = -m$fit$objective,
    loglik_note = "glmmTMB's logLik() is NA when the Hessian is not positive definite (pdHess false); loglik_from_objective = -fit$objective is the Laplace log-likelihood at the point where nlminb stopped",
    loglik_df = attr(ll, "df"),
    aic = AIC(m),
    bic = BIC(m),
    deviance = if (is.null(dev)) NULL else dev,
    deviance_note = "glmmTMB 1.1.5 has no deviance() method (stats::deviance gives NULL); aictab$deviance = -2 logLik",
    minus_two_loglik = -2 * as.numeric(ll),
    aictab = as.list(s$AICtab),
    df_residual = df.residual(m),
    objective = m$fit$objective,
    optimizer = "nlminb",
    optimizer_conv = m$fit$convergence,
    optimizer_message = m$fit$message,
    iterations = m$fit$iterations,
    evaluations = as.list(m$fit$evaluations),
    pdHess = m$sdr$pdHess,
    gradient_ad = I(grad),
    warnings = I(cap$warnings),
    messages = I(cap$messages),
    summary_warnings = I(c(scap$warnings, sfcap$warnings))
  )
}

# ---------------------------------------------------------------------------------------------
# fitting all variants of one model

fit_glmer_all <- function(formula, data, family, nAGQ = 1, nb = FALSE) {
  f <- as.formula(formula)
  fits <- list()
  recs <- list()
  for (cn in names(glmer_controls)) {
    ctl <- glmer_controls[[cn]]
    t0 <- proc.time()[["elapsed"]]
    cap <- if (nb && cn == "default") {
      safe(glmer.nb(f, data = data, nAGQ = nAGQ, control = ctl$ctrl))
    } else if (nb) {
      safe(glmer_nb_tol(f, data = data, nAGQ = nAGQ, control = ctl$ctrl, tol = nb_tol[[cn]]))
    } else {
      safe(glmer(f, data = data, family = family, nAGQ = nAGQ, control = ctl$ctrl))
    }
    note <- if (nb && cn == "default") paste0(ctl$note, "; lme4::glmer.nb() with its default tol = 5e-5") else if (nb) paste0(ctl$note, "; glmer.nb's steps with optTheta(tol = ", format(nb_tol[[cn]]), ") (see glmer_nb_tol in tests/r/glmm.R)") else ctl$note
    cat(sprintf("  glmer%s %-16s %6.1f s  %s\n", if (nb) ".nb" else "", cn,
                proc.time()[["elapsed"]] - t0,
                if (is.null(cap$value)) paste("ERROR", cap$error) else format(logLik(cap$value), digits = 12)))
    fits[[cn]] <- cap$value
    recs[[paste0("glmer_", cn)]] <- glmer_record(cap, cn, note, nAGQ)
  }
  list(fits = fits, records = recs)
}

fit_tmb_all <- function(formula, data, family, extra = list()) {
  fits <- list()
  recs <- list()
  if (!have_tmb) return(list(fits = fits, records = recs))
  f <- as.formula(formula)
  for (cn in names(tmb_controls)) {
    t0 <- proc.time()[["elapsed"]]
    cap <- safe(glmmTMB(f, data = data, family = family, control = tmb_controls[[cn]]$ctrl))
    cat(sprintf("  glmmTMB %-16s %6.1f s  %s\n", cn, proc.time()[["elapsed"]] - t0,
                if (is.null(cap$value)) paste("ERROR", cap$error) else format(-cap$value$fit$objective, digits = 12)))
    fits[[cn]] <- cap$value
    recs[[paste0("glmmTMB_", cn)]] <- tmb_record(cap, cn, tmb_controls[[cn]]$note)
  }
  list(fits = fits, records = recs)
}

# parameter sets in a common form: beta (named), sd per group (named), nb_theta
params_lme4 <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  vc <- vc[is.na(vc$var2), ]
  nb <- grepl("^Negative Binomial", family(m)$family)
  list(beta = fixef(m), sd = setNames(vc$sdcor, vc$grp),
       nb_theta = if (nb) unname(getME(m, "glmer.nb.theta")) else NULL)
}
params_tmb <- function(m) {
  vc <- VarCorr(m)$cond
  list(beta = fixef(m)$cond, sd = sapply(vc, function(x) unname(attr(x, "stddev"))),
       nb_theta = if (family(m)$family == "nbinom2") sigma(m) else NULL)
}

# log-likelihood of a parameter set under lme4's deviance function (glmer devFunOnly, stage 2:
# argument c(theta, beta), value -2 log L; for NB the family is negative.binomial(nb_theta)).
# tolPwrss = PIRLS tolerance of the inner mode search (lme4 default 1e-7).
lme4_loglik_at <- function(formula, data, family, nAGQ, p, tolPwrss = 1e-10) {
  fam <- if (!is.null(p$nb_theta)) MASS::negative.binomial(p$nb_theta) else family
  dfun <- glmer(as.formula(formula), data = data, family = fam, nAGQ = nAGQ, devFunOnly = TRUE,
                control = glmerControl(tolPwrss = tolPwrss))
  # theta order = lme4's order of the random-effect terms (glFormula's reTrms$cnms)
  cnms <- names(glFormula(as.formula(formula), data = data, family = fam)$reTrms$cnms)
  stopifnot(setequal(cnms, names(p$sd)))
  -0.5 * dfun(c(unname(p$sd[cnms]), unname(p$beta)))
}
# log-likelihood of a parameter set under glmmTMB's TMB objective (Laplace)
tmb_loglik_at <- function(m, p) {
  par <- m$fit$par
  nm <- names(par)
  stopifnot(identical(names(p$beta), names(fixef(m)$cond)))
  par[nm == "beta"] <- unname(p$beta)
  if (any(nm == "betad")) par[nm == "betad"] <- log(p$nb_theta)
  par[nm == "theta"] <- log(unname(p$sd[names(VarCorr(m)$cond)]))
  -m$obj$fn(par)
}

# Package-independent Laplace approximation (scalar random intercepts only), written out here
# so the definitions are explicit:
#   log L = sum_i log f(y_i | eta_i) - |u|^2 / 2 - log det(I + Lambda Z' W Z Lambda) / 2,
#   eta = X beta + offset + Z Lambda u at the mode u* of sum log f - |u|^2 / 2 (Fisher scoring
#   to |step| < 1e-13), f with all constants; W = observed information -d^2 log f / d eta^2
#   ("observed", what TMB's Laplace uses) or expected (Fisher) information
#   (d mu / d eta)^2 / Var(y) ("expected", the GLM working weights lme4's PIRLS uses). The two
#   coincide for canonical links (binomial logit, Poisson log) and differ for probit, cloglog
#   and NB2 with log link.
laplace_ref <- function(formula, data, family, p, info = c("observed", "expected"), lf = NULL) {
  info <- match.arg(info)
  nb <- !is.null(p$nb_theta)
  fam <- if (nb) poisson() else family
  if (is.null(lf)) lf <- glFormula(as.formula(formula), data = data, family = fam)
  X <- lf$X
  cn <- names(lf$reTrms$cnms)
  stopifnot(all(lengths(lf$reTrms$cnms) == 1))
  ZL <- t(lf$reTrms$Zt) %*% Diagonal(x = unname(p$sd[cn])[lf$reTrms$Lind])
  off <- model.offset(lf$fr)
  if (is.null(off)) off <- 0
  yy <- model.response(lf$fr)
  if (is.matrix(yy)) { k <- yy[, 1]; n <- yy[, 1] + yy[, 2] } else { k <- yy; n <- rep(1, length(yy)) }
  eta0 <- as.vector(X %*% p$beta[colnames(X)]) + off
  th <- p$nb_theta
  fam_name <- if (nb) "nb" else fam$family
  pieces <- function(eta) {
    if (fam_name == "poisson") {
      mu <- exp(eta)
      list(ll = sum(dpois(k, mu, log = TRUE)), d1 = k - mu, wexp = mu, wobs = mu)
    } else if (fam_name == "nb") {
      mu <- exp(eta)
      list(ll = sum(dnbinom(k, size = th, mu = mu, log = TRUE)),
           d1 = k - (k + th) * mu / (mu + th),
           wexp = mu * th / (mu + th), wobs = (k + th) * th * mu / (mu + th)^2)
    } else {
      pr <- fam$linkinv(eta)
      d <- fam$mu.eta(eta)
      d2 <- switch(fam$link,
                   logit = pr * (1 - pr) * (1 - 2 * pr),
                   probit = -eta * dnorm(eta),
                   cloglog = d * (1 - exp(eta)))
      dl <- k / pr - (n - k) / (1 - pr)
      dl2 <- -k / pr^2 - (n - k) / (1 - pr)^2
      list(ll = sum(dbinom(k, n, pr, log = TRUE)), d1 = dl * d,
           wexp = n * d^2 / (pr * (1 - pr)), wobs = -(dl2 * d^2 + dl * d2))
    }
  }
  u <- rep(0, ncol(ZL))
  for (it in 1:200) {
    pc <- pieces(eta0 + as.vector(ZL %*% u))
    g <- as.vector(crossprod(ZL, pc$d1)) - u
    H <- crossprod(ZL, Diagonal(x = pc$wexp) %*% ZL) + Diagonal(ncol(ZL))
    du <- as.vector(solve(H, g))
    u <- u + du
    if (max(abs(du)) < 1e-13) break
  }
  pc <- pieces(eta0 + as.vector(ZL %*% u))
  w <- if (info == "observed") pc$wobs else pc$wexp
  H <- crossprod(ZL, Diagonal(x = w) %*% ZL) + Diagonal(ncol(ZL))
  pc$ll - 0.5 * sum(u^2) - 0.5 * as.numeric(determinant(H, logarithm = TRUE)$modulus)
}

cross_likelihood <- function(formula, data, family, sets, tmb_fit) {
  # sets: named list of parameter sets; evaluates each under every definition
  out <- lapply(names(sets), function(nm) {
    p <- sets[[nm]]
    ll4 <- tryCatch(lme4_loglik_at(formula, data, family, 1, p, 1e-10), error = function(e) NA_real_)
    ll4d <- tryCatch(lme4_loglik_at(formula, data, family, 1, p, 1e-7), error = function(e) NA_real_)
    llt <- if (!is.null(tmb_fit)) tryCatch(tmb_loglik_at(tmb_fit, p), error = function(e) NA_real_) else NA_real_
    llo <- tryCatch(laplace_ref(formula, data, family, p, "observed"), error = function(e) NA_real_)
    lle <- tryCatch(laplace_ref(formula, data, family, p, "expected"), error = function(e) NA_real_)
    list(parameters_from = nm, loglik_lme4_devfun = ll4, loglik_lme4_devfun_tolPwrss_1e7 = ll4d,
         loglik_glmmTMB_obj = llt, loglik_laplace_observed = llo, loglik_laplace_expected = lle,
         beta = as.list(p$beta), sd = as.list(p$sd),
         nb_theta = if (is.null(p$nb_theta)) NULL else p$nb_theta)
  })
  pick <- function(field) {
    v <- vapply(out, function(e) e[[field]], numeric(1))
    if (all(is.na(v))) NA_character_ else names(sets)[which.max(v)]
  }
  ll4 <- vapply(out, `[[`, numeric(1), "loglik_lme4_devfun")
  llt <- vapply(out, `[[`, numeric(1), "loglik_glmmTMB_obj")
  llo <- vapply(out, `[[`, numeric(1), "loglik_laplace_observed")
  lle <- vapply(out, `[[`, numeric(1), "loglik_laplace_expected")
  list(
    note = paste(
      "Each parameter set (beta, random-effect SDs, NB theta) evaluated under: loglik_lme4_devfun = -0.5 x lme4's Laplace deviance function (glmer(devFunOnly = TRUE, control = glmerControl(tolPwrss = 1e-10)), argument c(theta, beta), inner PIRLS; NB: family negative.binomial(theta)); loglik_lme4_devfun_tolPwrss_1e7 = the same with lme4's default PIRLS tolerance (what the default glmer fit optimizes);",
      "loglik_glmmTMB_obj = -obj$fn(par) of the tight glmmTMB fit (inner Newton); loglik_laplace_observed / _expected = laplace_ref() in tests/r/glmm.R (exact mode, log-determinant with observed or expected information).",
      "Observed = TMB's Laplace; expected = lme4's (lme4's PIRLS log-determinant uses the GLM working weights). They coincide for canonical links."),
    evaluations = out,
    best_under_lme4 = pick("loglik_lme4_devfun"),
    best_under_lme4_tolPwrss_1e7 = pick("loglik_lme4_devfun_tolPwrss_1e7"),
    best_under_glmmTMB = pick("loglik_glmmTMB_obj"),
    best_under_laplace_observed = pick("loglik_laplace_observed"),
    best_under_laplace_expected = pick("loglik_laplace_expected"),
    max_abs_lme4_minus_glmmTMB = if (all(is.na(llt))) NA_real_ else max(abs(ll4 - llt), na.rm = TRUE),
    max_abs_glmmTMB_minus_laplace_observed = if (all(is.na(llt))) NA_real_ else max(abs(llt - llo), na.rm = TRUE),
    max_abs_lme4_minus_laplace_expected = max(abs(ll4 - lle), na.rm = TRUE)
  )
}

# default vs tight summary for one package's records (names -> records)
compare_controls <- function(recs) {
  recs <- recs[!vapply(recs, function(r) !is.null(r$error), logical(1))]
  if (length(recs) == 0) return(NULL)
  llr <- function(r) if (is.na(r$loglik) && !is.null(r$loglik_from_objective)) r$loglik_from_objective else r$loglik
  ll <- vapply(recs, llr, numeric(1))
  best <- names(recs)[which.max(ll)]
  b <- recs[[best]]
  dflt <- recs[[grep("_default$", names(recs))[1]]]
  fe_b <- vapply(b$fixed_effects, function(x) x$estimate, numeric(1))
  se_b <- vapply(b$fixed_effects, function(x) x$se, numeric(1))
  sd_b <- vapply(b$random_effects, function(x) x$sd, numeric(1))
  cmp <- lapply(recs, function(r) {
    fe <- vapply(r$fixed_effects, function(x) x$estimate, numeric(1))
    se <- vapply(r$fixed_effects, function(x) x$se, numeric(1))
    sdv <- vapply(r$random_effects, function(x) x$sd, numeric(1))
    list(fit = r$control, loglik = llr(r), loglik_minus_best = llr(r) - llr(b),
         max_abs_fixef_diff_in_se = max(abs(fe - fe_b) / se_b),
         max_rel_se_diff = max(abs(se - se_b) / se_b),
         max_rel_sd_diff = if (length(sd_b)) max(abs(sdv - sd_b) / pmax(sd_b, 1e-8)) else NA_real_,
         max_abs_sd_diff = if (length(sd_b)) max(abs(sdv - sd_b)) else NA_real_,
         nb_theta_rel_diff = if (is.null(b$nb_theta)) NULL else abs(r$nb_theta - b$nb_theta) / b$nb_theta,
         convergence_messages = r$convergence_messages, warnings = r$warnings)
  })
  list(highest_loglik = best, default_minus_best_loglik = llr(dflt) - llr(b),
       fits = unname(cmp))
}

model_block <- function(id, dataset, formula, family_text, nAGQ, g4 = NULL, gt = NULL, note = NULL) {
  recs <- c(if (!is.null(g4)) g4$records, if (!is.null(gt)) gt$records)
  list(
    id = id, dataset = dataset, formula = formula, family = family_text, nAGQ = nAGQ,
    note = note,
    fits = recs,
    default_vs_tight = list(
      lme4 = if (!is.null(g4)) compare_controls(g4$records) else NULL,
      glmmTMB = if (!is.null(gt)) compare_controls(gt$records) else NULL
    )
  )
}

ll_of <- function(m) {
  if (is.null(m)) return(-Inf)
  if (inherits(m, "glmmTMB")) return(-m$fit$objective)
  as.numeric(logLik(m))
}
best_fit <- function(g) {
  ll <- vapply(g$fits, ll_of, numeric(1))
  g$fits[[which.max(ll)]]
}

best_tight <- function(g) best_fit(list(fits = g$fits[names(g$fits) != "default"]))

# cross-likelihood of the default and best tight fits of both packages (non-NB models)
std_cross <- function(formula, data, family, g4, gt) {
  if (!have_tmb) return(NULL)
  cross_likelihood(formula, data, family, list(
    glmer_default = params_lme4(g4$fits$default),
    glmer_best_tight = params_lme4(best_tight(g4)),
    glmmTMB_default = params_tmb(gt$fits$default),
    glmmTMB_tight = params_tmb(gt$fits$tight)), gt$fits$tight)
}

summary_rows <- list()
add_summary <- function(file, mb) {
  for (pk in c("lme4", "glmmTMB")) {
    cc <- mb$default_vs_tight[[pk]]
    if (is.null(cc)) next
    for (r in cc$fits) {
      summary_rows[[length(summary_rows) + 1]] <<- data.frame(
        file = file, model = mb$id, package = pk, fit = r$fit, loglik = r$loglik,
        loglik_minus_best = r$loglik_minus_best, fixef_diff_se = r$max_abs_fixef_diff_in_se,
        se_rel = r$max_rel_se_diff, sd_rel = r$max_rel_sd_diff,
        nb_theta_rel = if (is.null(r$nb_theta_rel_diff)) NA_real_ else r$nb_theta_rel_diff,
        best = cc$highest_loglik, stringsAsFactors = FALSE)
    }
  }
}

conventions_common <- c(
  "Data: the CSV next to this JSON, written by tests/r/glmm.R and fitted as read back (factors rebuilt with the levels listed in data.factor_levels; treatment contrasts, the first level is the reference).",
  "fits.glmer_default / glmer_tight_bobyqa / glmer_tight_nloptwrap: lme4::glmer (or glmer.nb) with the control in control_note; fits.glmmTMB_default / glmmTMB_tight: glmmTMB (Laplace). default_vs_tight.<package>.highest_loglik names the fit with the highest log-likelihood; compare an exact optimizer with that one.",
  "fixed_effects: term (as R prints it), estimate, se, z = estimate / se, p = 2 pnorm(-|z|). lme4 se = vcov.merMod default = from the finite-difference Hessian of the deviance in (theta, beta) (use.hessian = TRUE), se_rx = from RX at the optimum (conditional on theta; vcov(use.hessian = FALSE)). glmmTMB se = sdreport (AD Hessian of the Laplace likelihood in all outer parameters), comparable to lme4's Hessian se.",
  "random_effects: group, term, variance, sd (lme4 groups ordered by number of levels, largest first; glmmTMB in formula order). lme4 theta = relative SD (sigma = 1 for these families, so theta = SD).",
  "loglik: Laplace (nAGQ = 1) or adaptive Gauss-Hermite (nAGQ > 1) approximation of the marginal log-likelihood with all constants (binomial log choose(n, k), Poisson -log y!, NB lgamma terms); loglik_df = number of parameters (fixed effects + variance parameters (+ theta for NB)); aic = -2 loglik + 2 df, bic = -2 loglik + log(nobs) df; df_residual = nobs - df (both packages).",
  "deviance: lme4 deviance() for a GLMM is the sum of squared deviance residuals at the conditional modes (conditional deviance, no penalty, no log-determinant); minus_two_loglik and aictab$deviance are -2 loglik. glmmTMB 1.1.5 has no deviance() method (null).",
  "optimizer_conv / optimizer_message / convergence_messages / warnings: what the optimizer and lme4's convergence checks (check.conv.grad with the finite-difference gradient, check.conv.singular, check.conv.hess) reported; glmmTMB: nlminb convergence code and message, pdHess, AD gradient at the optimum.",
  "cross_likelihood: parameter sets evaluated under both packages' Laplace likelihoods (see its note)."
)

meta_for <- function(extra) make_meta("tests/r/glmm.R", pkgs, c(conventions_common, extra))

glmer_ctrl_meta <- lapply(glmer_controls, `[[`, "note")
tmb_ctrl_meta <- if (have_tmb) lapply(tmb_controls, `[[`, "note") else NULL

write_data <- function(d, file) {
  write.csv(d, file.path(fixture_dir, file), row.names = FALSE)
  cat("wrote", file.path(fixture_dir, file), "\n")
  read.csv(file.path(fixture_dir, file), stringsAsFactors = FALSE)
}
levels_of <- function(d, cols) setNames(lapply(cols, function(c) I(levels(d[[c]]))), cols)

# =============================================================================================
# cbpp: binomial with successes / trials
cat("cbpp\n")
cb <- lme4::cbpp
cb <- data.frame(herd = as.integer(as.character(cb$herd)), period = as.integer(as.character(cb$period)),
                 incidence = as.integer(cb$incidence), size = as.integer(cb$size))
cb <- write_data(cb, "cbpp.csv")
cb$herd <- factor(cb$herd, levels = sort(unique(cb$herd)))
cb$period <- factor(cb$period, levels = sort(unique(cb$period)))
f_cb <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"

cb_logit <- fit_glmer_all(f_cb, cb, binomial(link = "logit"), nAGQ = 1)
cb_logit_tmb <- fit_tmb_all(f_cb, cb, binomial(link = "logit"))
cb_agq <- fit_glmer_all(f_cb, cb, binomial(link = "logit"), nAGQ = 25)
cb_probit <- fit_glmer_all(f_cb, cb, binomial(link = "probit"), nAGQ = 1)
cb_probit_tmb <- fit_tmb_all(f_cb, cb, binomial(link = "probit"))
cb_cloglog <- fit_glmer_all(f_cb, cb, binomial(link = "cloglog"), nAGQ = 1)
cb_cloglog_tmb <- fit_tmb_all(f_cb, cb, binomial(link = "cloglog"))

mb_cb_logit <- model_block("logit_laplace", "cbpp", f_cb, "binomial(logit)", 1, cb_logit, cb_logit_tmb)
mb_cb_logit$cross_likelihood <- std_cross(f_cb, cb, binomial(), cb_logit, cb_logit_tmb)
mb_cb_agq <- model_block("logit_agq25", "cbpp", f_cb, "binomial(logit)", 25, cb_agq)
agq_block <- function(formula, data, family, g4, nAGQ) {
  b <- best_tight(g4)
  list(note = "agq_ref (tests/r/glmm.R): adaptive Gauss-Hermite with the same number of nodes and all constants, at the best tight fit's estimates; equals that fit's loglik_plus_saturated",
       fit = names(g4$fits)[vapply(g4$fits, identical, logical(1), b)][1],
       loglik_agq_ref = agq_ref(formula, data, family, params_lme4(b), nAGQ),
       loglik_plus_saturated = as.numeric(logLik(b)) + saturated_loglik(b),
       laplace_ref_at_same_estimates = laplace_ref(formula, data, family, params_lme4(b), "observed"))
}
mb_cb_agq$agq_reference <- agq_block(f_cb, cb, binomial(), cb_agq, 25)
nc_note <- "Non-canonical link: lme4's Laplace (expected information in the log-determinant) and glmmTMB's (observed information) are different approximations, so the two packages maximize different functions; see cross_likelihood."
mb_cb_probit <- model_block("probit_laplace", "cbpp", f_cb, "binomial(probit)", 1, cb_probit, cb_probit_tmb, note = nc_note)
mb_cb_probit$cross_likelihood <- std_cross(f_cb, cb, binomial(link = "probit"), cb_probit, cb_probit_tmb)
mb_cb_cloglog <- model_block("cloglog_laplace", "cbpp", f_cb, "binomial(cloglog)", 1, cb_cloglog, cb_cloglog_tmb, note = nc_note)
mb_cb_cloglog$cross_likelihood <- std_cross(f_cb, cb, binomial(link = "cloglog"), cb_cloglog, cb_cloglog_tmb)
for (mb in list(mb_cb_logit, mb_cb_agq, mb_cb_probit, mb_cb_cloglog)) add_summary("cbpp.json", mb)

meta <- meta_for(c(
  "cbpp.csv: lme4::cbpp (56 herd-period rows): herd 1..15, period 1..4 (both factors, numeric order), incidence = new serologically positive cases, size = herd size; response cbind(incidence, size - incidence).",
  "logit_agq25: nAGQ = 25 adaptive Gauss-Hermite (glmer only); probit_laplace, cloglog_laplace: other links, Laplace, glmer and glmmTMB (whose Laplace approximations differ for non-canonical links, see cross_likelihood)."
))
meta$data <- list(file = "cbpp.csv", rows = nrow(cb), columns = I(names(cb)),
                  factor_levels = levels_of(cb, c("herd", "period")))
meta$controls <- list(glmer = glmer_ctrl_meta, glmmTMB = tmb_ctrl_meta)
write_fixture(list(meta = meta, models = list(logit_laplace = mb_cb_logit, logit_agq25 = mb_cb_agq,
                                              probit_laplace = mb_cb_probit,
                                              cloglog_laplace = mb_cb_cloglog)), "cbpp.json")

# =============================================================================================
# cbpp as 0/1 rows
cat("cbpp_binary\n")
cbr <- read.csv(file.path(fixture_dir, "cbpp.csv"))
cbb <- do.call(rbind, lapply(seq_len(nrow(cbr)), function(i) {
  data.frame(herd = cbr$herd[i], period = cbr$period[i],
             y = c(rep(1L, cbr$incidence[i]), rep(0L, cbr$size[i] - cbr$incidence[i])))
}))
cbb <- write_data(cbb, "cbpp_binary.csv")
cbb$herd <- factor(cbb$herd, levels = sort(unique(cbb$herd)))
cbb$period <- factor(cbb$period, levels = sort(unique(cbb$period)))
f_cbb <- "y ~ period + (1 | herd)"
cbb_logit <- fit_glmer_all(f_cbb, cbb, binomial(link = "logit"), nAGQ = 1)
cbb_logit_tmb <- fit_tmb_all(f_cbb, cbb, binomial(link = "logit"))
mb_cbb <- model_block("logit_laplace", "cbpp_binary", f_cbb, "binomial(logit)", 1, cbb_logit, cbb_logit_tmb)
mb_cbb$cross_likelihood <- std_cross(f_cbb, cbb, binomial(), cbb_logit, cbb_logit_tmb)
add_summary("cbpp_binary.json", mb_cbb)

lchoose_sum <- sum(lchoose(cb$size, cb$incidence))
agg_check <- function(b, a) {
  # b: binary fit, a: aggregated fit (same package)
  pb <- if (inherits(b, "glmmTMB")) params_tmb(b) else params_lme4(b)
  pa <- if (inherits(a, "glmmTMB")) params_tmb(a) else params_lme4(a)
  list(
    loglik_binary = ll_of(b), loglik_binomial = ll_of(a),
    loglik_binary_minus_binomial = ll_of(b) - ll_of(a),
    max_abs_fixef_diff = max(abs(pb$beta - pa$beta)),
    max_abs_sd_diff = max(abs(pb$sd - pa$sd)),
    nobs_binary = nobs(b), nobs_binomial = nobs(a),
    df_residual_binary = df.residual(b), df_residual_binomial = df.residual(a)
  )
}
binary_check <- list(
  note = "0/1 rows give the same estimates as successes/trials (the conditional likelihoods differ only by the constant sum(lchoose(size, incidence)), which the binomial rows include); loglik_binary = loglik_binomial - sum_lchoose. AIC differs by the same -2 x constant; BIC and df_residual differ because nobs is 842 animals vs 56 herd-periods. lme4 deviance (conditional) also differs.",
  sum_lchoose = lchoose_sum,
  lme4_default = agg_check(cbb_logit$fits$default, cb_logit$fits$default),
  lme4_best_tight = agg_check(best_tight(cbb_logit), best_tight(cb_logit)),
  glmmTMB_tight = if (have_tmb) agg_check(cbb_logit_tmb$fits$tight, cb_logit_tmb$fits$tight) else NULL
)
meta <- meta_for(c(
  "cbpp_binary.csv: lme4::cbpp expanded to one row per animal (842 rows): for each cbpp row in order, incidence rows with y = 1 then size - incidence rows with y = 0; herd and period factors as in cbpp.json.",
  "binary_vs_binomial: comparison with cbpp.json logit_laplace (same packages and controls)."
))
meta$data <- list(file = "cbpp_binary.csv", rows = nrow(cbb), columns = I(names(cbb)),
                  factor_levels = levels_of(cbb, c("herd", "period")))
meta$controls <- list(glmer = glmer_ctrl_meta, glmmTMB = tmb_ctrl_meta)
write_fixture(list(meta = meta, models = list(logit_laplace = mb_cbb),
                   binary_vs_binomial = binary_check), "cbpp_binary.json")

# =============================================================================================
# grouseticks: Poisson, two and one random effects
cat("grouseticks\n")
gt <- lme4::grouseticks
gt <- data.frame(INDEX = as.integer(as.character(gt$INDEX)), TICKS = as.integer(gt$TICKS),
                 BROOD = as.integer(as.character(gt$BROOD)), HEIGHT = gt$HEIGHT,
                 YEAR = as.integer(as.character(gt$YEAR)),
                 LOCATION = as.integer(as.character(gt$LOCATION)),
                 height_z = as.numeric(scale(gt$HEIGHT)))
gt <- write_data(gt, "grouseticks.csv")
gt$YEAR <- factor(gt$YEAR, levels = sort(unique(gt$YEAR)))
gt$BROOD <- factor(gt$BROOD, levels = sort(unique(gt$BROOD)))
gt$LOCATION <- factor(gt$LOCATION, levels = sort(unique(gt$LOCATION)))
f_gt2 <- "TICKS ~ YEAR + height_z + (1 | BROOD) + (1 | LOCATION)"
f_gt1 <- "TICKS ~ YEAR + height_z + (1 | LOCATION)"
gt2 <- fit_glmer_all(f_gt2, gt, poisson(), nAGQ = 1)
gt2_tmb <- fit_tmb_all(f_gt2, gt, poisson())
gt1 <- fit_glmer_all(f_gt1, gt, poisson(), nAGQ = 1)
gt1_tmb <- fit_tmb_all(f_gt1, gt, poisson())
gt1_agq <- fit_glmer_all(f_gt1, gt, poisson(), nAGQ = 10)
mb_gt2 <- model_block("brood_location_laplace", "grouseticks", f_gt2, "poisson(log)", 1, gt2, gt2_tmb)
mb_gt2$cross_likelihood <- std_cross(f_gt2, gt, poisson(), gt2, gt2_tmb)
mb_gt1 <- model_block("location_laplace", "grouseticks", f_gt1, "poisson(log)", 1, gt1, gt1_tmb)
mb_gt1$cross_likelihood <- std_cross(f_gt1, gt, poisson(), gt1, gt1_tmb)
mb_gt1_agq <- model_block("location_agq10", "grouseticks", f_gt1, "poisson(log)", 10, gt1_agq)
mb_gt1_agq$agq_reference <- agq_block(f_gt1, gt, poisson(), gt1_agq, 10)
for (mb in list(mb_gt2, mb_gt1, mb_gt1_agq)) add_summary("grouseticks.json", mb)
meta <- meta_for(c(
  "grouseticks.csv: lme4::grouseticks (403 chicks): TICKS count, BROOD (118), LOCATION (63), HEIGHT (m), YEAR 95/96/97 (factor, 95 = reference), height_z = as.numeric(scale(HEIGHT)) (mean 0, sd 1 over the 403 rows, written with 15 significant digits and used as read back: the term is height_z, not scale(HEIGHT)).",
  "brood_location_laplace: TICKS ~ YEAR + height_z + (1 | BROOD) + (1 | LOCATION), glmer Laplace and glmmTMB; location_laplace (glmer and glmmTMB) / location_agq10 (glmer): one random effect, nAGQ = 1 and 10 (AGQ needs a single scalar random effect in lme4)."
))
meta$data <- list(file = "grouseticks.csv", rows = nrow(gt), columns = I(names(gt)),
                  factor_levels = levels_of(gt, c("YEAR")))
meta$controls <- list(glmer = glmer_ctrl_meta, glmmTMB = tmb_ctrl_meta)
write_fixture(list(meta = meta, models = list(brood_location_laplace = mb_gt2,
                                              location_laplace = mb_gt1,
                                              location_agq10 = mb_gt1_agq)), "grouseticks.json")

# =============================================================================================
# NB helpers (glmer.nb vs glmmTMB nbinom2)

# maximize laplace_ref (observed or expected information) over (beta, log SD, log theta) with
# nlminb (finite-difference gradient), from `start`
nb_ref_max <- function(formula, data, start, info) {
  lf <- glFormula(as.formula(formula), data = data, family = poisson())
  bn <- names(start$beta)
  gn <- names(start$sd)
  unpack <- function(x) list(beta = setNames(x[seq_along(bn)], bn),
                             sd = setNames(exp(x[length(bn) + seq_along(gn)]), gn),
                             nb_theta = exp(x[[length(x)]]))
  fn <- function(x) -laplace_ref(formula, data, NULL, unpack(x), info, lf = lf)
  x0 <- c(unname(start$beta), log(unname(start$sd)), log(start$nb_theta))
  o <- nlminb(x0, fn, control = list(rel.tol = 1e-15, x.tol = 1e-12, eval.max = 1e4, iter.max = 1e4))
  p <- unpack(o$par)
  list(info = info, loglik = -o$objective, beta = as.list(p$beta), sd = as.list(p$sd),
       nb_theta = p$nb_theta, convergence = o$convergence, message = o$message,
       evaluations = as.list(o$evaluations))
}

# profile log-likelihood in theta: glmmTMB (betad fixed with map) and lme4 (glmer with
# family = negative.binomial(theta), tight bobyqa)
nb_theta_profile <- function(formula, data, thetas, tmb_start) {
  rows(do.call(rbind, lapply(thetas, function(th) {
    ct <- safe(glmmTMB(as.formula(formula), data = data, family = nbinom2,
                       start = list(beta = unname(tmb_start$beta), betad = log(th),
                                    theta = log(unname(tmb_start$sd))),
                       map = list(betad = factor(NA)), control = tmb_controls$tight$ctrl))
    c4 <- safe(glmer(as.formula(formula), data = data, family = MASS::negative.binomial(th),
                     control = glmer_controls$tight_bobyqa$ctrl))
    data.frame(theta = th,
               loglik_glmmTMB = if (is.null(ct$value)) NA_real_ else -ct$value$fit$objective,
               loglik_lme4 = if (is.null(c4$value)) NA_real_ else as.numeric(logLik(c4$value)))
  })))
}

nb_compare <- function(formula, data, g4, gt, ref_max = FALSE, profile_thetas = NULL) {
  out <- list()
  if (!have_tmb) return(out)
  p4d <- params_lme4(g4$fits$default)
  p4t <- params_lme4(best_tight(g4))
  ptd <- params_tmb(gt$fits$default)
  ptt <- params_tmb(gt$fits$tight)
  # glmmTMB restarted at glmer.nb's (best tight) estimates, tight control
  st <- list(beta = unname(p4t$beta), betad = log(p4t$nb_theta),
             theta = log(unname(p4t$sd[names(VarCorr(gt$fits$tight)$cond)])))
  cap <- safe(glmmTMB(as.formula(formula), data = data, family = nbinom2, start = st,
                      control = tmb_controls$tight$ctrl))
  out$glmmTMB_tight_from_glmer_nb_start <- tmb_record(cap, "tight_start_at_glmer_nb",
    paste(tmb_controls$tight$note, "+ start = glmer.nb best tight estimates (beta, betad = log(theta), theta = log(SD))"))
  sets <- list(glmer_nb_default = p4d, glmer_nb_best_tight = p4t,
               glmmTMB_default = ptd, glmmTMB_tight = ptt)
  if (!is.null(cap$value)) sets$glmmTMB_tight_from_glmer_nb_start <- params_tmb(cap$value)
  out$cross_likelihood <- cross_likelihood(formula, data, NULL, sets, gt$fits$tight)
  ev <- out$cross_likelihood$evaluations
  names(ev) <- vapply(ev, `[[`, "", "parameters_from")
  out$summary <- list(
    note = "glmer.nb maximizes lme4's Laplace likelihood over (SD, beta) for fixed theta and theta by optimize() of that profile; glmmTMB maximizes TMB's Laplace likelihood jointly. Both use Var = mu + mu^2 / theta and the full NB log density. The two Laplace approximations differ for NB2 (log link is not canonical): lme4's log-determinant uses the expected (Fisher) information mu theta / (mu + theta), TMB's the observed information (y + theta) theta mu / (mu + theta)^2 (see cross_likelihood, laplace_ref). So each package's estimates maximize its own likelihood: maximizer_under_glmmTMB_likelihood / maximizer_under_lme4_likelihood. common_* = glmmTMB's objective, lme4_* = lme4's devfun (tolPwrss 1e-10).",
    reported_loglik_glmer_nb_best_tight = as.numeric(logLik(best_tight(g4))),
    reported_loglik_glmmTMB_tight = as.numeric(logLik(gt$fits$tight)),
    objective_loglik_glmmTMB_tight = -gt$fits$tight$fit$objective,
    theta_glmer_nb_best_tight = p4t$nb_theta, theta_glmmTMB_tight = ptt$nb_theta,
    theta_rel_diff = abs(p4t$nb_theta - ptt$nb_theta) / ptt$nb_theta,
    sd_glmer_nb_best_tight = as.list(p4t$sd), sd_glmmTMB_tight = as.list(ptt$sd),
    max_abs_fixef_diff = max(abs(p4t$beta - ptt$beta)),
    common_loglik_at_glmer_nb = ev$glmer_nb_best_tight$loglik_glmmTMB_obj,
    common_loglik_at_glmmTMB = ev$glmmTMB_tight$loglik_glmmTMB_obj,
    lme4_loglik_at_glmer_nb = ev$glmer_nb_best_tight$loglik_lme4_devfun,
    lme4_loglik_at_glmmTMB = ev$glmmTMB_tight$loglik_lme4_devfun,
    maximizer_under_glmmTMB_likelihood = out$cross_likelihood$best_under_glmmTMB,
    maximizer_under_lme4_likelihood = out$cross_likelihood$best_under_lme4
  )
  if (ref_max) {
    out$reference_maxima <- list(
      note = "laplace_ref maximized with nlminb from the glmmTMB tight estimates: observed = the function glmmTMB maximizes, expected = the function glmer.nb maximizes (up to lme4's ~1e-6 PIRLS / log-determinant differences, see cross_likelihood).",
      observed = nb_ref_max(formula, data, ptt, "observed"),
      expected = nb_ref_max(formula, data, ptt, "expected"))
  }
  if (!is.null(profile_thetas)) {
    out$theta_profile <- list(
      note = "Profile log-likelihood over theta (other parameters maximized): loglik_glmmTMB = glmmTMB nbinom2 with betad fixed at log(theta) (map), tight control; loglik_lme4 = glmer(family = negative.binomial(theta)), tight bobyqa. As theta -> infinity both tend to the Poisson GLMM.",
      profile = nb_theta_profile(formula, data, profile_thetas, ptt))
  }
  out
}

# =============================================================================================
# Salamanders
cat("salamanders\n")
sal <- glmmTMB::Salamanders
site_levels <- levels(sal$site)
mined_levels <- levels(sal$mined)
spp_levels <- levels(sal$spp)
sal <- data.frame(site = as.character(sal$site), mined = as.character(sal$mined), cover = sal$cover,
                  sample = sal$sample, DOP = sal$DOP, Wtemp = sal$Wtemp, DOY = sal$DOY,
                  spp = as.character(sal$spp), count = as.integer(sal$count), stringsAsFactors = FALSE)
sal <- write_data(sal, "salamanders.csv")
sal$site <- factor(sal$site, levels = site_levels)
sal$mined <- factor(sal$mined, levels = mined_levels)
sal$spp <- factor(sal$spp, levels = spp_levels)
f_sal_nb <- "count ~ mined + (1 | site)"
f_sal_po <- "count ~ mined + spp + (1 | site)"
sal_nb4 <- fit_glmer_all(f_sal_nb, sal, NULL, nAGQ = 1, nb = TRUE)
sal_nbt <- fit_tmb_all(f_sal_nb, sal, nbinom2())
sal_po4 <- fit_glmer_all(f_sal_po, sal, poisson(), nAGQ = 1)
sal_pot <- fit_tmb_all(f_sal_po, sal, poisson())
mb_sal_nb <- model_block("nb_mined", "salamanders", f_sal_nb, "negative binomial (NB2), log link", 1,
                         sal_nb4, sal_nbt,
                         note = "lme4: glmer.nb; glmmTMB: family = nbinom2. theta: glmer.nb nb_theta (MASS), glmmTMB sigma = nb_theta; Var = mu + mu^2 / theta in both.")
nbc <- nb_compare(f_sal_nb, sal, sal_nb4, sal_nbt, ref_max = TRUE,
                  profile_thetas = c(0.3, 0.5, 0.6, 0.639, 0.64, 0.7, 1, 2))
mb_sal_nb$fits$glmmTMB_tight_from_glmer_nb_start <- nbc$glmmTMB_tight_from_glmer_nb_start
mb_sal_nb$cross_likelihood <- nbc$cross_likelihood
mb_sal_nb$glmer_nb_vs_glmmTMB <- nbc$summary
mb_sal_nb$reference_maxima <- nbc$reference_maxima
mb_sal_nb$theta_profile <- nbc$theta_profile
mb_sal_po <- model_block("poisson_mined_spp", "salamanders", f_sal_po, "poisson(log)", 1, sal_po4, sal_pot)
mb_sal_po$cross_likelihood <- std_cross(f_sal_po, sal, poisson(), sal_po4, sal_pot)
for (mb in list(mb_sal_nb, mb_sal_po)) add_summary("salamanders.json", mb)
meta <- meta_for(c(
  "salamanders.csv: glmmTMB::Salamanders (644 rows; 23 sites x 7 species x 4 samples): count, site, mined, spp and the unused scaled covariates cover, DOP, Wtemp, DOY, sample.",
  "Factor levels are the data set's own (not sorted): mined yes, no (reference yes, term minedno, as in the glmmTMB documentation); spp GP, PR, DM, EC-A, EC-L, DES-L, DF (reference GP, terms sppPR, ..., sppEC-A); site R-1, ..., in glmmTMB's order (only the order of conditional modes depends on it).",
  "nb_mined: count ~ mined + (1 | site), glmer.nb (three controls; tol of the outer theta search 5e-5 by default, 1e-10 tight) and glmmTMB nbinom2 (default, tight, tight restarted at glmer.nb's estimates). glmer_nb_vs_glmmTMB summarises the comparison.",
  "poisson_mined_spp: count ~ mined + spp + (1 | site), glmer and glmmTMB."
))
meta$data <- list(file = "salamanders.csv", rows = nrow(sal), columns = I(names(sal)),
                  factor_levels = levels_of(sal, c("mined", "spp", "site")))
meta$controls <- list(glmer = glmer_ctrl_meta, glmer_nb_tol = as.list(nb_tol), glmmTMB = tmb_ctrl_meta)
write_fixture(list(meta = meta, models = list(nb_mined = mb_sal_nb, poisson_mined_spp = mb_sal_po)),
              "salamanders.json")

# =============================================================================================
# trial-small admissions per participant per inter-wave period (see the header for the rules)
cat("admissions_periods\n")
ts_dir <- "tests/fixtures/trial-small/export"
toml <- readLines(file.path(ts_dir, "study.toml"))
arms <- eval(parse(text = sub("^arms\\s*=\\s*\\[(.*)\\]\\s*$", "c(\\1)", grep("^arms\\s*=", toml, value = TRUE))))
wave_labels <- sub('^label\\s*=\\s*"(.*)"\\s*$', "\\1", grep("^label\\s*=", toml, value = TRUE))
wave_months <- as.numeric(sub("^months\\s*=\\s*", "", grep("^months\\s*=", toml, value = TRUE)))
stopifnot(length(wave_labels) == length(wave_months), length(wave_months) >= 2)
nominal <- wave_months * 365.25 / 12
K <- length(nominal) - 1
periods <- data.frame(period = paste0(wave_labels[-length(wave_labels)], "_", wave_labels[-1]),
                      first_day = floor(nominal[-length(nominal)]) + 1,
                      last_day = floor(nominal[-1]), stringsAsFactors = FALSE)
periods$period_days <- periods$last_day - periods$first_day + 1
pp <- read.csv(file.path(ts_dir, "participants.csv"), stringsAsFactors = FALSE)
adm <- read.csv(file.path(ts_dir, "admissions.csv"), stringsAsFactors = FALSE)
stopifnot(all(adm$participant_id %in% pp$participant_id), !anyNA(pp$randomized_on), all(pp$arm %in% arms))
rand <- setNames(as.Date(pp$randomized_on), pp$participant_id)
adm$a <- as.integer(as.Date(adm$admitted_on) - rand[adm$participant_id])
adm$e <- ifelse(is.na(adm$discharged_on) | adm$discharged_on == "", NA_integer_,
                as.integer(as.Date(adm$discharged_on) - rand[adm$participant_id]))
tab <- do.call(rbind, lapply(seq_len(nrow(pp)), function(i) {
  id <- pp$participant_id[i]
  s <- adm[adm$participant_id == id, ]
  do.call(rbind, lapply(seq_len(K), function(k) {
    lo <- periods$first_day[k]
    hi <- periods$last_day[k]
    last_occ <- ifelse(is.na(s$e), Inf, s$e - 1)
    bd <- sum(pmax(0, pmin(last_occ, hi) - pmax(s$a, lo) + 1))
    data.frame(participant_id = id, site_id = pp$site_id[i], arm = pp$arm[i],
               period = periods$period[k], first_day = lo, last_day = hi,
               period_days = periods$period_days[k], bed_days = as.integer(bd),
               exposure_days = as.integer(periods$period_days[k] - bd),
               admissions = sum(s$a >= lo & s$a <= hi), stringsAsFactors = FALSE)
  }))
}))
tab$exposure <- tab$exposure_days / 365.25
stopifnot(all(tab$exposure_days > 0))
edge <- list(
  admissions_on_randomization_day = sum(adm$a == 0),
  admissions_before_randomization = sum(adm$a < 0),
  admissions_after_last_period = sum(adm$a > max(periods$last_day)),
  open_stays = sum(is.na(adm$e)),
  open_stays_started_within_periods = sum(is.na(adm$e) & adm$a >= 1 & adm$a <= max(periods$last_day)),
  stays_running_into_a_period_from_before = sum(sapply(seq_len(K), function(k) {
    lo <- periods$first_day[k]
    sum(adm$a < lo & (is.na(adm$e) | adm$e - 1 >= lo))
  })),
  rows_with_bed_days = sum(tab$bed_days > 0),
  total_admissions_counted = sum(tab$admissions),
  min_exposure_days = min(tab$exposure_days)
)
ap <- write_data(tab, "admissions_periods.csv")
ap$arm <- factor(ap$arm, levels = arms)
ap$period <- factor(ap$period, levels = periods$period)
ap$participant_id <- factor(ap$participant_id)
f_ap <- "admissions ~ arm * period + offset(log(exposure)) + (1 | participant_id)"
ap_nbt <- fit_tmb_all(f_ap, ap, nbinom2())
ap_po4 <- fit_glmer_all(f_ap, ap, poisson(), nAGQ = 1)
ap_nb4 <- fit_glmer_all(f_ap, ap, NULL, nAGQ = 1, nb = TRUE)
ap_pot <- fit_tmb_all(f_ap, ap, poisson())
mb_ap_nb <- model_block("nb", "admissions_periods", f_ap, "negative binomial (NB2), log link", 1,
                        ap_nb4, ap_nbt,
                        note = "glmmTMB nbinom2 (requested) and glmer.nb (for comparison); Var = mu + mu^2 / theta in both.")
nbc <- nb_compare(f_ap, ap, ap_nb4, ap_nbt,
                  profile_thetas = c(0.5, 1, 3, 10, 30, 100, 1e3, 1e4, 1e5, 1e6))
mb_ap_nb$fits$glmmTMB_tight_from_glmer_nb_start <- nbc$glmmTMB_tight_from_glmer_nb_start
mb_ap_nb$cross_likelihood <- nbc$cross_likelihood
mb_ap_nb$glmer_nb_vs_glmmTMB <- nbc$summary
mb_ap_nb$theta_profile <- nbc$theta_profile
mb_ap_nb$boundary <- list(
  note = "The NB model is at the Poisson boundary: the profile log-likelihood increases monotonically in theta towards the Poisson GLMM's (the simulated frailty is constant per participant, so the random intercept absorbs the overdispersion). glmmTMB stops at a huge theta (nlminb false convergence (8), non-positive-definite Hessian, logLik() NA, no SE for betad; restarted from glmer.nb's estimates it stops at another huge theta with a gradient of 4e-4); glmer.nb stops at a finite theta inside its search interval log(theta0) +- 3. lme4's finite-difference Hessian SEs there are unreliable (tight_nloptwrap: 0.005 for every coefficient; glmer.nb SEs also treat theta as fixed). The meaningful target is the Poisson fit (poisson model): fixed effects agree with it to 1e-4, the SD to 1e-4; an implementation should report theta -> infinity / the Poisson limit, not a finite theta. NB log-likelihoods at theta > 1e6 carry ~1e-6 rounding noise (lgamma differences).",
  poisson_loglik_glmmTMB_tight = -ap_pot$fits$tight$fit$objective,
  poisson_loglik_glmer_best_tight = as.numeric(logLik(best_tight(ap_po4))))
mb_ap_po <- model_block("poisson", "admissions_periods", f_ap, "poisson(log)", 1, ap_po4, ap_pot,
                        note = "glmer Poisson (requested) and glmmTMB Poisson (for comparison).")
mb_ap_po$cross_likelihood <- std_cross(f_ap, ap, poisson(), ap_po4, ap_pot)
for (mb in list(mb_ap_nb, mb_ap_po)) add_summary("admissions_periods.json", mb)
meta <- meta_for(c(
  "admissions_periods.csv: built from tests/fixtures/trial-small/export (study.toml waves, participants.csv randomized_on, admissions.csv) as documented in the header of tests/r/glmm.R and in `construction` below; one row per participant (120) per period between consecutive waves (2).",
  "Columns: participant_id, site_id, arm, period, first_day, last_day (days after randomization, inclusive), period_days, bed_days, exposure_days = period_days - bed_days, admissions (admissions started in the period), exposure = exposure_days / 365.25 (years; written with 15 significant digits and used as read back).",
  "Factors: arm TAU, IMR (study.toml order, TAU reference); period T0_T1, T1_T2; participant_id (random intercept, 120 levels).",
  "Model: admissions ~ arm * period + offset(log(exposure)) + (1 | participant_id): nb = glmmTMB nbinom2 (+ glmer.nb), poisson = glmer (+ glmmTMB)."
))
meta$data <- list(file = "admissions_periods.csv", rows = nrow(ap), columns = I(names(tab)),
                  factor_levels = levels_of(ap, c("arm", "period")))
meta$construction <- list(
  source = I(c(file.path(ts_dir, "study.toml"), file.path(ts_dir, "participants.csv"), file.path(ts_dir, "admissions.csv"))),
  waves = rows(data.frame(label = wave_labels, months = wave_months, nominal_day = nominal)),
  periods = rows(periods),
  rules = I(c(
    "d = date - randomized_on in days",
    "wave nominal day = months x 365.25 / 12; period k = integer days d with nominal_{k-1} < d <= nominal_k",
    "admissions = admissions with admitted_on day in the period",
    "bed_days = days of the period in hospital; a stay occupies days admitted .. discharged - 1; an open stay (empty discharged_on) runs to the end of the period",
    "exposure_days = period_days - bed_days; exposure = exposure_days / 365.25",
    "no export date: everyone followed to the last wave's day; all participant x period rows kept (zeros included)"
  )),
  edge_cases = edge,
  totals_by_arm_period = rows(aggregate(cbind(admissions, exposure_days, bed_days) ~ arm + period,
                                        data = tab, FUN = sum))
)
meta$controls <- list(glmer = glmer_ctrl_meta, glmer_nb_tol = as.list(nb_tol), glmmTMB = tmb_ctrl_meta)
write_fixture(list(meta = meta, models = list(nb = mb_ap_nb, poisson = mb_ap_po)),
              "admissions_periods.json")

# =============================================================================================
sm <- do.call(rbind, summary_rows)
cat("\ndefault vs tight (loglik_minus_best = loglik - highest loglik of the same package and model)\n")
print(sm, digits = 6, row.names = FALSE)
write_fixture(list(meta = make_meta("tests/r/glmm.R", pkgs, c(
  "One row per fit: loglik_minus_best = loglik - the highest loglik among that package's fits of the model; fixef_diff_se = max |estimate - best estimate| / best se; se_rel, sd_rel, nb_theta_rel = max relative differences from the best fit.")),
  rows = rows(sm)), "default_vs_tight.json")
