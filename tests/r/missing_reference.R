# Golden values for reference-based imputation by CONDITIONAL MEAN imputation with JACKKNIFE
# inference (issue 17): Wolbers, Noci, Delmar, Gower-Page, Yiu, Bartlett (2022), "Standard and
# reference-based conditional mean imputation", Pharmaceutical Statistics 21:1246-1257
# (rbmi: method_condmean(type = "jackknife")), with the reference-based strategies of
# Carpenter, Roger & Kenward (2013), J Biopharm Stat 23:1352-1371, section 4.
# rbmi itself is not installed here (not in Debian); the method is written from rbmi's
# "Statistical Specifications" vignette and its source (insightsengineering/rbmi, commit
# c872d4ac, R/strategies.R, R/ancova.R, R/pool.R, R/delta.R), every step below cites it.
#
# Run from the repository root:  Rscript tests/r/missing_reference.R   (~1-2 min: 201 gls fits)
# Writes tests/fixtures/missing/data.csv (simulated, fixed seed; then read back and fitted as read)
# and tests/fixtures/missing/reference.json. See tests/fixtures/missing/README.md.
source("tests/r/common.R")
fixture_dir <- "tests/fixtures/missing"
dir.create(fixture_dir, showWarnings = FALSE, recursive = TRUE)
suppressPackageStartupMessages(library(nlme))
source("tests/r/mmrm_linear_inference.R")  # accurate Satterthwaite / KR for the MAR MMRM record

waves <- c("T1", "T2", "T3")
J <- length(waves)

## ---- 1. Data ---------------------------------------------------------------------------------------
## 200 participants, 100 per arm (TAU = reference/control, IMR = intervention), baseline T0 as a
## covariate, follow-up T1..T3 from a trivariate normal around a linear baseline effect.
## Outcome: higher = better. Dropout (monotone) depends on the last observed value (MAR):
##   before T1 (no follow-up at all) with prob 0.04; after T1 and after T2 with a logistic hazard
##   in the last observed value (~12% each). Intermittent missing: 8 participants observed at T3 get
##   T1 or T2 set missing; 2 participants (one per arm) who dropped out before T3 get T1 set missing as well
##   (intermittent + dropout). Values rounded to 2 decimals; missing y written as an empty field.
simulate_data <- function() {
  set.seed(20261217)
  n <- 200
  id <- sprintf("P%03d", seq_len(n))
  arm <- rep(c("TAU", "IMR"), each = n / 2)
  baseline <- round(rnorm(n, 50, 10), 2)
  mu <- rbind(TAU = c(52, 53, 54), IMR = c(54, 57, 59))  # at baseline 50
  sds <- c(8, 9, 10)
  cr <- matrix(c(1, .6, .45, .6, 1, .65, .45, .65, 1), 3)
  S <- cr * outer(sds, sds)
  E <- matrix(rnorm(n * J), n) %*% chol(S)
  Y <- mu[arm, ] + 0.6 * (baseline - 50) + E
  Y <- round(Y, 2)
  last <- rep(J, n)  # last observed wave (0 = none)
  u0 <- runif(n); u1 <- runif(n); u2 <- runif(n)
  for (i in seq_len(n)) {
    if (u0[i] < 0.04) { last[i] <- 0; next }
    if (u1[i] < plogis(-2.6 - 0.08 * (Y[i, 1] - 55))) { last[i] <- 1; next }
    if (u2[i] < plogis(-2.6 - 0.08 * (Y[i, 2] - 57))) { last[i] <- 2; next }
  }
  M <- matrix(FALSE, n, J)
  for (i in seq_len(n)) if (last[i] < J) M[i, (last[i] + 1):J] <- TRUE
  comp <- which(last == J)
  inter <- sample(comp, 8)
  M[cbind(inter, sample(1:2, 8, replace = TRUE))] <- TRUE
  two <- c(sample(which(last == 2 & arm == "TAU"), 1), sample(which(last == 2 & arm == "IMR"), 1))
  M[cbind(two, 1)] <- TRUE
  Y[M] <- NA
  d <- data.frame(participant_id = rep(id, each = J), arm = rep(arm, each = J),
                  wave = rep(waves, n), y = as.vector(t(Y)), baseline = rep(baseline, each = J),
                  stringsAsFactors = FALSE)
  d
}
csv <- file.path(fixture_dir, "data.csv")
write.csv(simulate_data(), csv, row.names = FALSE, na = "")
cat("wrote", csv, "\n")

d <- read.csv(csv, stringsAsFactors = FALSE, na.strings = "")
d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
d$wave <- factor(d$wave, levels = waves)
d$widx <- as.integer(d$wave)
d$id <- factor(d$participant_id, levels = sort(unique(d$participant_id)))
d <- d[order(d$id, d$widx), ]
ids <- levels(d$id)
n <- length(ids)
# participant-level data (rows in ids order)
pp <- d[d$widx == 1, c("participant_id", "arm", "baseline")]
Ymat <- matrix(d$y, n, J, byrow = TRUE, dimnames = list(ids, waves))
# ICE = dropout: first visit after the last observed value (rbmi's data_ice visit); participants whose
# last wave is observed have no ICE (Inf). Missing values before the ICE are intermittent (MAR).
last_obs <- apply(!is.na(Ymat), 1, function(o) if (any(o)) max(which(o)) else 0L)
ice <- ifelse(last_obs < J, last_obs + 1L, Inf)
post_ice <- outer(ice, seq_len(J), "<=")   # n x J: TRUE at and after the ICE visit
dimnames(post_ice) <- list(ids, waves)

## ---- 2. The MMRM (imputation model = MAR analysis model) -------------------------------------------
## y ~ baseline + arm * wave, unstructured covariance by wave per participant, COMMON to both arms
## (rbmi's default same_cov = TRUE), REML (rbmi's default: method_condmean(REML = TRUE); the mmrm
## package's "us" REML fit is the same model as gls corSymm + varIdent). Fitted to the observed rows
## only (no observed post-ICE data exist here: dropout ICEs). Tight tolerances.
ctl <- glsControl(tolerance = 1e-10, msTol = 1e-10, msMaxIter = 1000, maxIter = 1000,
                  returnObject = TRUE, natural = FALSE)
form_main <- y ~ baseline + arm * wave
fit_mmrm <- function(dobs, form = form_main) {
  gls(form, data = dobs, correlation = corSymm(form = ~ widx | id),
      weights = varIdent(form = ~ 1 | wave), method = "REML", control = ctl, na.action = na.fail)
}
gls_sigma <- function(fit) {
  # Sigma = sigma^2 diag(s) R diag(s), s = varIdent ratios by wave (T1 = 1), R from corSymm
  s <- coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)[waves]
  rho <- coef(fit$modelStruct$corStruct, unconstrained = FALSE)  # (1,2), (1,3), (2,3)
  R <- diag(J); R[lower.tri(R)] <- rho; R <- R + t(R) - diag(J)
  S <- fit$sigma^2 * R * outer(s, s)
  dimnames(S) <- list(waves, waves)
  S
}

## ---- 3. Marginal imputation means per strategy -----------------------------------------------------
## mu_i = X_i(own arm) beta, mu_ref,i = X_i(arm = TAU) beta at waves T1..T3, X with the participant's
## baseline (rbmi stat_specs "Marginal imputation distribution ... reference-based": the reference
## mean is the model prediction with the group set to the reference and the subject's covariates).
## t~ = ice (first visit affected by the ICE), J = 3. Strategies (rbmi R/strategies.R; Carpenter et
## al. 2013 section 4.3; rbmi stat_specs):
##   MAR: mu~ = mu_i
##   JR (J2R): mu~ = (mu_i[1..t~-1], mu_ref[t~..J])                       (all mu_ref if t~ = 1)
##   CR:  mu~ = mu_ref (every visit, observed ones too),  Sigma~ = Sigma_ref
##   CIR: mu~ = (mu_i[1..t~-1], mu_i[t~-1] + (mu_ref[t] - mu_ref[t~-1]) for t >= t~)
##        (rbmi: all mu_ref if t~ = 1, i.e. no visit before the ICE; baseline is a covariate, not a
##        visit, so its own-arm "last value" does not exist)
## Covariance: JR/CIR use Sigma~11 = Sigma_i,11, Sigma~21 = Sigma_ref,21 Sigma_ref,11^-1 Sigma_i,11,
## Sigma~22 = Sigma_ref,22 - Sigma_ref,21 Sigma_ref,11^-1 (Sigma_ref,11 - Sigma_i,11) Sigma_ref,11^-1
## Sigma_ref,12; with the common covariance (Sigma_i = Sigma_ref = Sigma) this is Sigma itself
## (rbmi compute_sigma returns sigma_ref when identical). So Sigma~ = Sigma for every strategy here.
## For the reference arm (TAU) mu_ref = mu_i, so every strategy equals MAR.
strategy_mean <- function(strategy, mu_own, mu_ref, t_ice) {
  if (strategy == "MAR" || is.infinite(t_ice)) return(mu_own)
  if (strategy == "CR") return(mu_ref)
  if (t_ice == 1) return(mu_ref)
  pre <- seq_len(t_ice - 1); post <- t_ice:J
  m <- mu_own
  if (strategy == "JR") m[post] <- mu_ref[post]
  if (strategy == "CIR") m[post] <- mu_own[t_ice - 1] + (mu_ref[post] - mu_ref[t_ice - 1])
  m
}
## Conditional mean imputation (rbmi stat_specs "Imputation of missing outcome data"):
##   E(Y_? | Y_!) = mu~_? + Sigma~_?! Sigma~_!!^-1 (Y_! - mu~_!)   (mu~_? if nothing observed)
cond_mean <- function(y, m, S) {
  mis <- is.na(y); if (!any(mis)) return(y)
  out <- y
  if (all(mis)) { out[mis] <- m[mis]; return(out) }
  o <- !mis
  out[mis] <- m[mis] + S[mis, o, drop = FALSE] %*% solve(S[o, o, drop = FALSE], y[o] - m[o])
  out
}
strategies <- c("MAR", "JR", "CR", "CIR")

## nlme's optimizer stops short of the exact REML maximum even with these tolerances (max |gradient|
## of the REML deviance ~5e-5 on the covariance elements, covariance elements off by ~1e-5 relative),
## which moves estimates by ~3e-6. Every fit (full data and each jackknife sample) is therefore
## POLISHED by Newton steps on the REML deviance in the linear unstructured parametrization
## gamma = (s11, s21, s31, s22, s32, s33) (lower triangle by column):
##   dev(gamma) = sum_i log|S_i| + r' S^-1 r + log|X' S^-1 X|,  r = y - X beta_GLS(gamma),
##   d dev / d Sigma_ab = sum over participants of [S_i^-1 - S_i^-1 (r_i r_i' + X_i Phi X_i') S_i^-1]_ab
##   (embedded at the participant's observed waves; Phi = (X' S^-1 X)^-1), times 2 off the diagonal;
## Hessian by central differences of that analytic gradient (full-data fit; the jackknife fits reuse
## the full-data Hessian, a quasi-Newton iteration that converges linearly at rate ~1/n).
## The recorded gradient after polishing is ~1e-10 or below; beta = GLS at the polished Sigma.
## (dev is the deviance of tests/r/mmrm_linear_inference.R lin_dev; nlme's REML log-likelihood at the
## polished optimum = gls logLik + (dev_gls - dev_polished) / 2.)
reml_prep <- function(dd, form) {
  X <- model.matrix(delete.response(terms(form)), dd)
  blocks <- split(seq_len(nrow(dd)), droplevels(dd$id))
  w <- lapply(blocks, function(b) dd$widx[b])
  list(X = X, y = dd$y, blocks = blocks, w = w, key = vapply(w, paste, "", collapse = ","))
}
gamma_of <- function(S) S[lower.tri(S, diag = TRUE)]
sigma_of <- function(g) { S <- matrix(0, J, J); S[lower.tri(S, diag = TRUE)] <- g; S <- S + t(S) - diag(diag(S)); dimnames(S) <- list(waves, waves); S }
reml_eval <- function(pr, S, grad = TRUE) {
  keys <- unique(pr$key)
  Sinv <- lapply(setNames(nm = keys), function(k) { w <- pr$w[[match(k, pr$key)]]; solve(S[w, w, drop = FALSE]) })
  ldet <- vapply(setNames(nm = keys), function(k) { w <- pr$w[[match(k, pr$key)]]; as.numeric(determinant(S[w, w, drop = FALSE])$modulus) }, 0)
  p <- ncol(pr$X); XtSX <- matrix(0, p, p); XtSy <- numeric(p)
  for (i in seq_along(pr$blocks)) {
    b <- pr$blocks[[i]]; Si <- Sinv[[pr$key[i]]]; Xi <- pr$X[b, , drop = FALSE]
    XtSX <- XtSX + crossprod(Xi, Si %*% Xi); XtSy <- XtSy + crossprod(Xi, Si %*% pr$y[b])
  }
  Phi <- solve(XtSX); beta <- as.numeric(Phi %*% XtSy); names(beta) <- colnames(pr$X)
  dev <- as.numeric(determinant(XtSX)$modulus); M <- matrix(0, J, J)
  for (i in seq_along(pr$blocks)) {
    b <- pr$blocks[[i]]; Si <- Sinv[[pr$key[i]]]; Xi <- pr$X[b, , drop = FALSE]; w <- pr$w[[i]]
    r <- pr$y[b] - Xi %*% beta; Sr <- Si %*% r
    dev <- dev + ldet[[pr$key[i]]] + sum(r * Sr)
    if (grad) M[w, w] <- M[w, w] + Si - tcrossprod(Sr) - Si %*% Xi %*% Phi %*% t(Xi) %*% Si
  }
  G <- 2 * M; diag(G) <- diag(M)
  list(dev = dev, beta = beta, Phi = Phi, grad = G[lower.tri(G, diag = TRUE)])
}
num_hessian <- function(pr, g) {
  k <- length(g); H <- matrix(0, k, k)
  for (a in seq_len(k)) {
    h <- 1e-5 * abs(g[a]); e <- numeric(k); e[a] <- h
    H[, a] <- (reml_eval(pr, sigma_of(g + e))$grad - reml_eval(pr, sigma_of(g - e))$grad) / (2 * h)
  }
  (H + t(H)) / 2
}
H_full <- NULL
polish <- function(pr, S0, H = NULL) {
  g <- gamma_of(S0); ev0 <- reml_eval(pr, S0)
  ev <- ev0; it <- 0
  repeat {
    Hk <- if (is.null(H)) num_hessian(pr, g) else H
    step <- solve(Hk, ev$grad); g <- g - step; it <- it + 1
    ev <- reml_eval(pr, sigma_of(g))
    if (max(abs(step)) < 1e-11 * max(abs(g)) || it >= 60) break
  }
  list(Sigma = sigma_of(g), beta = ev$beta, Phi = ev$Phi, dev = ev$dev, dev_gls = ev0$dev,
       max_abs_gradient_gls = max(abs(ev0$grad)), max_abs_gradient = max(abs(ev$grad)), iterations = it,
       H = if (is.null(H)) num_hessian(pr, g) else NULL)
}

## Fit + polish + means for a set of participants (sel = indices into ids)
fit_pars <- function(sel, form = form_main, H = NULL) {
  dd <- d[d$id %in% ids[sel] & !is.na(d$y), ]
  dd$id <- droplevels(dd$id)
  cap <- capture(fit_mmrm(dd, form))
  fit <- cap$value
  pr <- reml_prep(dd, form)
  pol <- polish(pr, gls_sigma(fit), H)
  beta <- pol$beta
  grid <- d[d$id %in% ids[sel], ]
  Xo <- model.matrix(delete.response(terms(form)), grid)
  gr <- grid; gr$arm <- factor("TAU", levels = levels(d$arm))
  Xr <- model.matrix(delete.response(terms(form)), gr)
  list(fit = fit, polish = pol, beta = beta, Sigma = pol$Sigma, Sigma_gls = gls_sigma(fit),
       warnings = cap$warnings,
       mu_own = matrix(Xo %*% beta, ncol = J, byrow = TRUE, dimnames = list(ids[sel], waves)),
       mu_ref = matrix(Xr %*% beta, ncol = J, byrow = TRUE, dimnames = list(ids[sel], waves)))
}
## Impute every participant in sel under a strategy; returns the completed n_sel x J matrix and the
## per-participant mean vectors mu~.
impute <- function(pars, sel, strategy) {
  Yc <- Ymat[sel, , drop = FALSE]; Mt <- Yc
  for (k in seq_along(sel)) {
    m <- strategy_mean(strategy, pars$mu_own[k, ], pars$mu_ref[k, ], ice[sel[k]])
    Mt[k, ] <- m
    Yc[k, ] <- cond_mean(Ymat[sel[k], ], m, pars$Sigma)
  }
  list(completed = Yc, mean = Mt)
}
## delta adjustment (rbmi R/delta.R apply_delta: a fixed value added to the imputed outcome after
## the imputation and before the analysis, here delta at every post-ICE visit of IMR participants;
## intermittent (pre-ICE, MAR) imputations and the TAU arm are not shifted).
add_delta <- function(Yc, sel, delta) {
  sh <- post_ice[sel, , drop = FALSE] & (pp$arm[sel] == "IMR")
  Yc + delta * sh
}
## Analysis: rbmi ancova(): per visit lm(y ~ group + baseline) on the completed data, treatment
## effect = coefficient of the group (IMR vs TAU); lsm_ref / lsm_alt = rbmi lsmeans with the default
## weights = "counterfactual" = mean over all participants of the prediction with group set to
## TAU / IMR (= prediction at the mean baseline for this linear model).
analyse <- function(Yc, sel) {
  g <- as.numeric(pp$arm[sel] == "IMR"); b <- pp$baseline[sel]
  X <- cbind(1, g, b)
  B <- solve(crossprod(X), crossprod(X, Yc))  # 3 x J
  res <- Yc - X %*% B
  dfr <- nrow(X) - 3
  s2 <- colSums(res^2) / dfr
  XtXi <- solve(crossprod(X))
  list(trt = B[2, ], se_lm = sqrt(s2 * XtXi[2, 2]), df = dfr,
       lsm_ref = B[1, ] + B[3, ] * mean(b), lsm_alt = B[1, ] + B[2, ] + B[3, ] * mean(b))
}

## ---- 4. Full-data fit, imputation, analysis ---------------------------------------------------------
all_sel <- seq_len(n)
t0 <- Sys.time()
P <- fit_pars(all_sel)
fit <- P$fit
imp <- setNames(lapply(strategies, function(s) impute(P, all_sel, s)), strategies)
est <- lapply(imp, function(x) analyse(x$completed, all_sel))

deltas <- seq(-15, 5, by = 0.5)
delta_strats <- c("JR", "MAR")
est_delta <- lapply(setNames(nm = delta_strats), function(s)
  vapply(deltas, function(dl) analyse(add_delta(imp[[s]]$completed, all_sel, dl), all_sel)$trt[J], 0))

## ---- 5. Jackknife: leave each participant out, refit the imputation model, re-impute, re-analyse ----
jk_trt <- array(NA_real_, c(n, length(strategies), J), list(ids, strategies, waves))
jk_ref <- jk_alt <- jk_trt
jk_delta <- lapply(setNames(nm = delta_strats), function(s) matrix(NA_real_, n, length(deltas)))
jk_warn <- character(0)
jk_loglik <- jk_dev <- jk_grad <- jk_grad_gls <- jk_iter <- numeric(n)
for (i in seq_len(n)) {
  sel <- setdiff(all_sel, i)
  Pi <- fit_pars(sel, H = P$polish$H)
  jk_loglik[i] <- as.numeric(logLik(Pi$fit))
  jk_dev[i] <- Pi$polish$dev; jk_grad[i] <- Pi$polish$max_abs_gradient
  jk_grad_gls[i] <- Pi$polish$max_abs_gradient_gls; jk_iter[i] <- Pi$polish$iterations
  if (length(Pi$warnings)) jk_warn <- c(jk_warn, paste(ids[i], Pi$warnings))
  for (s in strategies) {
    ci <- impute(Pi, sel, s)$completed
    a <- analyse(ci, sel)
    jk_trt[i, s, ] <- a$trt; jk_ref[i, s, ] <- a$lsm_ref; jk_alt[i, s, ] <- a$lsm_alt
    if (s %in% delta_strats)
      jk_delta[[s]][i, ] <- vapply(deltas, function(dl) analyse(add_delta(ci, sel, dl), sel)$trt[J], 0)
  }
}
elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
cat(sprintf("jackknife done in %.1f s\n", elapsed))

## rbmi R/pool.R pool_internal.jackknife: point = full-data estimate; se = sqrt((n-1)/n sum (theta_-i -
## mean theta_-i)^2); CI = point -/+ qnorm(0.975) se; p = 2 pnorm(-|point / se|) (normal, no df).
jack <- function(point, th) {
  se <- sqrt((length(th) - 1) / length(th) * sum((th - mean(th))^2))
  z <- point / se
  list(est = point, se = se, lower = point - qnorm(0.975) * se, upper = point + qnorm(0.975) * se,
       z = z, p = 2 * pnorm(-abs(z)), jackknife_mean = mean(th))
}

## ---- 6. Records ---------------------------------------------------------------------------------------
mat_rows <- function(M) unname(lapply(seq_len(nrow(M)), function(i) I(unname(M[i, ]))))
Sig <- P$Sigma
tt <- summary(fit)$tTable
ll <- logLik(fit)
beta <- P$beta   # polished (GLS at the polished Sigma); gls's own coef(fit) are recorded beside
L_w <- lapply(setNames(seq_len(J), waves), function(w) {
  L <- setNames(numeric(length(beta)), names(beta)); L["armIMR"] <- 1
  if (w > 1) L[paste0("armIMR:wave", waves[w])] <- 1
  L
})
V <- P$polish$Phi   # (X' Sigma^-1 X)^-1 at the polished Sigma (REML gls vcov has no N/(N-p) factor)
mmrm_contrasts <- do.call(rbind, lapply(waves, function(w) {
  L <- L_w[[w]]; e <- sum(L * beta); se <- sqrt(as.numeric(L %*% V %*% L))
  data.frame(wave = w, estimate = e, se = se, stringsAsFactors = FALSE)
}))
dobs <- d[!is.na(d$y), ]; dobs$id <- droplevels(dobs$id)
lin <- tryCatch(lin_infer(lin_setup_fit(fit, dobs, "unstructured", ~ baseline + arm * wave),
                          lapply(L_w, unname), "IMR - TAU", TRUE),
                error = function(e) list(error = conditionMessage(e)))

mmrm_rec <- list(
  formula = "y ~ baseline + arm * wave",
  call = "gls(y ~ baseline + arm * wave, correlation = corSymm(form = ~ widx | id), weights = varIdent(form = ~ 1 | wave), method = 'REML', control = glsControl(tolerance = 1e-10, msTol = 1e-10, msMaxIter = 1000, maxIter = 1000, natural = FALSE)) on the observed rows",
  method = "REML", nobs = fit$dims$N, n_participants_with_data = nlevels(dobs$id),
  note = "coefficients, vcov_beta, covariance, contrasts: at the POLISHED REML optimum (see polish() in the script); gls: what nlme::gls itself returned",
  coefficients = rows(data.frame(term = names(beta), estimate = unname(beta), se = sqrt(diag(V)),
                                 stringsAsFactors = FALSE)),
  vcov_beta = mat_rows(V),
  covariance = list(waves = I(waves), matrix = mat_rows(Sig), sd = I(unname(sqrt(diag(Sig)))),
                    correlation = mat_rows(cov2cor(Sig))),
  reml_deviance = P$polish$dev,
  reml_loglik = as.numeric(ll) + (P$polish$dev_gls - P$polish$dev) / 2,
  reml_criterion = -2 * (as.numeric(ll) + (P$polish$dev_gls - P$polish$dev) / 2),
  loglik_df = attr(ll, "df"),
  reml_loglik_note = "nlme REML log-likelihood = -(reml_deviance + (N - p) log(2 pi)) / 2 (checked against logLik(gls) at the gls optimum to 1e-12); reml_deviance = sum log|S_i| + r'S^-1 r + log|X'S^-1 X|",
  polish = list(max_abs_gradient_gls = P$polish$max_abs_gradient_gls, max_abs_gradient = P$polish$max_abs_gradient,
                iterations = P$polish$iterations, deviance_gls = P$polish$dev_gls, deviance = P$polish$dev,
                max_abs_sigma_change = max(abs(P$Sigma - P$Sigma_gls)),
                max_abs_beta_change = max(abs(P$beta - coef(fit)))),
  gls = list(
    coefficients = rows(data.frame(term = rownames(tt), estimate = tt[, "Value"], se = tt[, "Std.Error"],
                                   stringsAsFactors = FALSE)),
    sigma = fit$sigma,
    correlations_12_13_23 = I(unname(coef(fit$modelStruct$corStruct, unconstrained = FALSE))),
    varident_ratios = as.list(coef(fit$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)[waves]),
    covariance = mat_rows(P$Sigma_gls),
    covariance_getVarCov_check = max(abs(unclass(getVarCov(fit, individual = names(which(table(dobs$id) == J))[1])) - P$Sigma_gls)),
    loglik_reml = as.numeric(ll), reml_criterion = -2 * as.numeric(ll)),
  contrasts_IMR_minus_TAU = rows(mmrm_contrasts),
  linear_inference = lin
)

# arm means per wave at the mean baseline (model means) and per strategy: the mean over the arm's
# participants of mu~_i (the marginal imputation mean), and of the completed data
bbar <- mean(pp$baseline)
nd <- expand.grid(wave = factor(waves, levels = waves), arm = factor(c("TAU", "IMR"), levels = c("TAU", "IMR")))
nd$baseline <- bbar
Xm <- model.matrix(~ baseline + arm * wave, nd)
model_means <- data.frame(arm = as.character(nd$arm), wave = as.character(nd$wave), baseline = bbar,
                          mean = as.numeric(Xm %*% beta), stringsAsFactors = FALSE)
strategy_means <- do.call(rbind, lapply(strategies, function(s) do.call(rbind, lapply(c("TAU", "IMR"), function(a) {
  k <- pp$arm == a
  data.frame(strategy = s, arm = a, wave = waves, mean_mu_tilde = colMeans(imp[[s]]$mean[k, , drop = FALSE]),
             mean_mu_tilde_post_ice = vapply(seq_len(J), function(w) {
               kk <- k & post_ice[, w]; if (any(kk)) mean(imp[[s]]$mean[kk, w]) else NA_real_ }, 0),
             mean_completed = colMeans(imp[[s]]$completed[k, , drop = FALSE]), stringsAsFactors = FALSE)
}))))

# every imputed cell
mis_cells <- which(is.na(Ymat), arr.ind = TRUE)
mis_cells <- mis_cells[order(mis_cells[, 1], mis_cells[, 2]), , drop = FALSE]
imputed_table <- data.frame(participant_id = ids[mis_cells[, 1]], arm = as.character(pp$arm[mis_cells[, 1]]),
                            wave = waves[mis_cells[, 2]], post_ice = post_ice[mis_cells],
                            stringsAsFactors = FALSE)
for (s in strategies) imputed_table[[s]] <- imp[[s]]$completed[mis_cells]

# named participants: one of each pattern
pattern <- apply(Ymat, 1, function(y) paste(ifelse(is.na(y), "-", "o"), collapse = ""))
pick <- function(a, pat) { k <- which(pp$arm == a & pattern == pat); if (length(k)) k[1] else NULL }
named <- unlist(list(pick("TAU", "ooo"), pick("IMR", "ooo"), pick("TAU", "o--"), pick("IMR", "o--"),
                     pick("TAU", "oo-"), pick("IMR", "oo-"), pick("TAU", "---"), pick("IMR", "---"),
                     pick("IMR", "-oo"), pick("TAU", "-oo"), pick("IMR", "o-o"), pick("TAU", "o-o"),
                     pick("IMR", "-o-"), pick("TAU", "-o-")))
named_rec <- lapply(unname(named), function(k) list(
  participant_id = ids[k], arm = as.character(pp$arm[k]), baseline = pp$baseline[k], pattern = pattern[k],
  y = I(unname(Ymat[k, ])), ice_visit = if (is.finite(ice[k])) waves[ice[k]] else NULL,
  mu_own = I(unname(P$mu_own[k, ])), mu_ref = I(unname(P$mu_ref[k, ])),
  strategies = lapply(setNames(nm = strategies), function(s) list(
    mu_tilde = I(unname(imp[[s]]$mean[k, ])), completed = I(unname(imp[[s]]$completed[k, ]))))))

estimates <- lapply(setNames(nm = strategies), function(s) rows(do.call(rbind, lapply(seq_len(J), function(w) {
  jt <- jack(est[[s]]$trt[w], jk_trt[, s, w]); jr <- jack(est[[s]]$lsm_ref[w], jk_ref[, s, w])
  ja <- jack(est[[s]]$lsm_alt[w], jk_alt[, s, w])
  data.frame(wave = waves[w], estimate = jt$est, se_jackknife = jt$se, lower_95 = jt$lower,
             upper_95 = jt$upper, z = jt$z, p = jt$p, jackknife_mean = jt$jackknife_mean,
             se_lm_naive = est[[s]]$se_lm[w],
             lsm_ref = jr$est, lsm_ref_se_jackknife = jr$se, lsm_alt = ja$est, lsm_alt_se_jackknife = ja$se,
             stringsAsFactors = FALSE)
}))))

# delta grid and tipping point at the last wave
tip <- function(dl, p) {
  # from delta = 0 towards the unfavourable (negative) side: first grid interval where p crosses 0.05
  k0 <- which(dl == 0)
  for (k in seq(k0, 2, by = -1)) {
    if ((p[k] - 0.05) * (p[k - 1] - 0.05) <= 0 && p[k] != p[k - 1])
      return(dl[k] + (0.05 - p[k]) * (dl[k - 1] - dl[k]) / (p[k - 1] - p[k]))
  }
  NA_real_
}
delta_rec <- lapply(setNames(nm = delta_strats), function(s) {
  tab <- do.call(rbind, lapply(seq_along(deltas), function(k) {
    j <- jack(est_delta[[s]][k], jk_delta[[s]][, k])
    data.frame(delta = deltas[k], estimate = j$est, se_jackknife = j$se, lower_95 = j$lower,
               upper_95 = j$upper, z = j$z, p = j$p, stringsAsFactors = FALSE)
  }))
  # exact: estimate and every jackknife estimate are linear in delta, so p(delta) is smooth; root of
  # p(delta) = 0.05 on the interpolated grid interval
  pfun <- function(dl) {
    e <- analyse(add_delta(imp[[s]]$completed, all_sel, dl), all_sel)$trt[J]
    th <- jk_delta[[s]][, 1] + (dl - deltas[1]) * (jk_delta[[s]][, 2] - jk_delta[[s]][, 1]) / (deltas[2] - deltas[1])
    jack(e, th)$p - 0.05
  }
  ti <- tip(tab$delta, tab$p)
  te <- if (is.na(ti)) NA_real_ else uniroot(pfun, ti + c(-0.5, 0.5), tol = 1e-12)$root
  list(wave = waves[J], table = rows(tab), tipping_delta_interpolated = ti, tipping_delta_exact = te)
})

## ---- 7. MAR conditional mean vs MMRM ---------------------------------------------------------------
## Wolbers et al. 2022 (section 2.4 / appendix) and rbmi: with MAR conditional mean imputation the
## completed-data residual r = (r_o, Sigma_mo Sigma_oo^-1 r_o) satisfies Sigma^-1 r = (Sigma_oo^-1 r_o, 0),
## so the GLS estimate beta_hat solves the complete-data GLS equations on the completed data. If the
## MMRM has the SAME covariates at every visit (visit-specific baseline effect: baseline * wave), the
## complete-data GLS is per-visit OLS (seemingly unrelated regressions with identical regressors), so
## ANCOVA on the conditional-mean-completed data equals the MMRM contrast EXACTLY. With the common
## baseline slope of y ~ baseline + arm * wave it is only approximately equal. Both are recorded.
check_main <- data.frame(wave = waves, mmrm = mmrm_contrasts$estimate, condmean_mar_ancova = est$MAR$trt,
                         stringsAsFactors = FALSE)
check_main$difference <- check_main$condmean_mar_ancova - check_main$mmrm
form_int <- y ~ baseline * wave + arm * wave
P2 <- fit_pars(all_sel, form_int)
b2 <- P2$beta
imp2 <- impute(P2, all_sel, "MAR")
e2 <- analyse(imp2$completed, all_sel)
mm2 <- vapply(seq_len(J), function(w) b2[["armIMR"]] + if (w > 1) b2[[paste0("wave", waves[w], ":armIMR")]] else 0, 0)
check_int <- data.frame(wave = waves, mmrm = mm2, condmean_mar_ancova = e2$trt, stringsAsFactors = FALSE)
check_int$difference <- check_int$condmean_mar_ancova - check_int$mmrm

## ---- 8. Write ------------------------------------------------------------------------------------------
summ <- list(
  n = n, n_per_arm = as.list(table(pp$arm)),
  observed_per_wave = as.list(colSums(!is.na(Ymat))),
  missing_per_arm_wave = rows(do.call(rbind, lapply(c("TAU", "IMR"), function(a) data.frame(arm = a, wave = waves,
    missing = colSums(is.na(Ymat[pp$arm == a, ])), post_ice = colSums(post_ice[pp$arm == a, ]), stringsAsFactors = FALSE)))),
  patterns = as.list(table(pattern)),
  ice_visit_counts = rows(as.data.frame(table(arm = pp$arm, ice_visit = ifelse(is.finite(ice), waves[pmin(ice, J)], "none")),
                                        stringsAsFactors = FALSE)),
  participants_with_ice = sum(is.finite(ice)),
  intermittent_missing_cells = sum(is.na(Ymat) & !post_ice)
)
meta <- make_meta("tests/r/missing_reference.R", c("nlme", "pbkrtest", "numDeriv", "jsonlite"), c(
  "Data: data.csv (simulated, set.seed(20261217)), read back with na.strings = ''; arm levels TAU (reference), IMR; wave T1, T2, T3; widx = as.integer(wave); rows sorted by participant_id then wave.",
  "ICE = dropout: ice_visit = first wave after the last observed y (none if T3 observed). Missing y before the ICE = intermittent, imputed under MAR for every strategy; missing y at/after the ICE imputed by the strategy.",
  "Imputation model = MMRM y ~ baseline + arm * wave, unstructured covariance COMMON to both arms (rbmi same_cov = TRUE), REML (rbmi default), nlme::gls corSymm(~ widx | id) + varIdent(~ 1 | wave), glsControl(tolerance = 1e-10, msTol = 1e-10, msMaxIter = 1000, maxIter = 1000, natural = FALSE), observed rows only.",
  "mu_own = X(own arm, baseline) beta, mu_ref = X(arm = TAU, baseline) beta. MAR: mu_own. JR: mu_own before the ICE visit, mu_ref from it. CR: mu_ref at all visits (IMR). CIR: mu_own before the ICE, mu_own[t~-1] + mu_ref[t] - mu_ref[t~-1] from it. JR/CIR/CR with t~ = T1 (no observed follow-up): mu_ref. Covariance Sigma for all (common). TAU: all strategies = MAR.",
  "Conditional mean: y_m = mu~_m + Sigma_mo Sigma_oo^-1 (y_o - mu~_o); = mu~_m if nothing observed.",
  "Analysis (rbmi ancova): at each wave lm(y ~ arm + baseline) on the completed data of all participants; estimate = coefficient of IMR. lsm_ref / lsm_alt: prediction at the mean baseline with arm TAU / IMR (rbmi lsmeans weights = 'counterfactual'). se_lm_naive: the lm SE on the completed data (NOT valid inference; recorded only).",
  "Jackknife (rbmi pool_internal.jackknife): leave one participant out, refit the MMRM, re-impute, re-analyse; se = sqrt((n-1)/n sum (theta_-i - mean)^2); CI = estimate -/+ qnorm(0.975) se around the FULL-data estimate; z = estimate / se; p = 2 pnorm(-|z|). n = 200 leave-outs including the participants with no observed follow-up (they change only the ANCOVA).",
  "Delta: delta (outcome units) added to every imputed post-ICE value in the IMR arm (not to intermittent imputations, not to TAU), after imputation and before the analysis, in the full data and in every jackknife sample; grid -15 to 5 by 0.5; wave T3; strategies JR and MAR. tipping_delta_interpolated: going from delta = 0 downwards, the first grid interval where p crosses 0.05, linear interpolation in p; tipping_delta_exact: root of p(delta) = 0.05.",
  "JSON: 15 significant digits (jsonlite digits = NA); vectors in wave order T1, T2, T3; matrices as arrays of rows."
))
jk_rec <- list(
  left_out = I(ids),
  gls_loglik_reml = I(jk_loglik),
  reml_deviance_polished = I(jk_dev),
  max_abs_gradient_gls = max(jk_grad_gls),
  max_abs_gradient_polished = max(jk_grad),
  polish_iterations_max = max(jk_iter),
  warnings = I(jk_warn),
  estimates = lapply(setNames(nm = strategies), function(s) lapply(setNames(nm = waves), function(w) I(unname(jk_trt[, s, w])))),
  delta_at_zero_check = max(abs(jk_delta$JR[, deltas == 0] - jk_trt[, "JR", J])),
  elapsed_seconds_all = elapsed
)
out <- list(
  meta = meta,
  data = summ,
  mmrm = mmrm_rec,
  model_means_at_mean_baseline = rows(model_means),
  strategy_means = rows(strategy_means),
  named_participants = named_rec,
  imputed = rows(imputed_table),
  estimates = estimates,
  jackknife = jk_rec,
  delta = delta_rec,
  mar_equals_mmrm_check = list(
    main_model = list(formula = "y ~ baseline + arm * wave", table = rows(check_main),
                      max_abs_difference = max(abs(check_main$difference)),
                      note = "approximately equal only: common baseline slope across waves"),
    visit_specific_baseline = list(formula = "y ~ baseline * wave + arm * wave",
                                   reml_deviance = P2$polish$dev, max_abs_gradient = P2$polish$max_abs_gradient,
                                   coefficients = as.list(b2),
                                   covariance = mat_rows(P2$Sigma), table = rows(check_int),
                                   max_abs_difference = max(abs(check_int$difference)),
                                   note = "exactly equal (up to rounding): same regressors at every wave")
  )
)
write_fixture(out, "reference.json")
