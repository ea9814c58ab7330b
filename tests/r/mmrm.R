# Golden values for MMRM (issue 4): nlme::gls with residual covariance structures by wave on the
# simulated trial of tests/r/lmm_trial.R (tests/fixtures/r/trial_long.csv), REML and ML, with
# emmeans contrasts IMR - CAU per wave; nlme::lme with a residual variance per arm (varIdent).
# Run from the repository root after lmm_trial.R:  Rscript tests/r/mmrm.R  -> tests/fixtures/r/mmrm.json
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)

waves <- c("T1", "T2", "T3")
# natural = FALSE: nlme's apVar (approximate covariance of the variance parameters) is then on the
# same unconstrained scale as coef(modelStruct), which emmeans needs for its analytic Satterthwaite
# df; with the default natural = TRUE, corSymm fits fall back to a stochastic 'appx-satterthwaite'.
ctl <- glsControl(natural = FALSE)
d <- read.csv(file.path(fixture_dir, "trial_long.csv"), stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("CAU", "IMR"))
d$wave <- factor(d$wave, levels = waves)
d$id <- factor(d$id, levels = sort(unique(d$id)))
d <- d[order(d$id, d$widx), ]

gls_cov <- function(fit, data) {
  # residual covariance by wave for a participant observed at every wave
  ids <- names(which(table(droplevels(data$id)) == 3))
  vc <- tryCatch(getVarCov(fit, individual = ids[1]), error = function(e) NULL)
  if (is.null(vc)) return(NULL)
  vc <- unclass(vc)
  attr(vc, "group.levels") <- NULL
  dimnames(vc) <- list(waves, waves)
  list(waves = I(waves), covariance = unname(lapply(seq_len(3), function(i) I(unname(vc[i, ])))),
       correlation = unname(lapply(seq_len(3), function(i) I(unname(cov2cor(vc)[i, ])))),
       sd = I(unname(sqrt(diag(vc)))))
}

emm_gls <- function(fit, data) {
  out <- list()
  for (mode in c("satterthwaite", "kenward-roger", "df.error")) {
    cap <- tryCatch(capture({
      e <- emmeans(fit, ~ arm | wave, mode = mode, data = data)
      es <- as.data.frame(summary(e, infer = c(TRUE, TRUE)))
      cs <- as.data.frame(summary(contrast(e, method = "revpairwise"), infer = c(TRUE, TRUE)))
      list(
        emmeans = rows(data.frame(arm = as.character(es$arm), wave = as.character(es$wave),
                                  emmean = es$emmean, se = es$SE, df = es$df,
                                  lower_cl = es$lower.CL, upper_cl = es$upper.CL, stringsAsFactors = FALSE)),
        contrasts = rows(data.frame(wave = as.character(cs$wave), contrast = as.character(cs$contrast),
                                    estimate = cs$estimate, se = cs$SE, df = cs$df,
                                    lower_cl = cs$lower.CL, upper_cl = cs$upper.CL,
                                    t = cs$t.ratio,
                                    p = cs$p.value, stringsAsFactors = FALSE))
      )
    }), error = function(e) list(value = list(error = conditionMessage(e)), warnings = character(0), messages = character(0)))
    r <- cap$value
    r$warnings <- I(cap$warnings)
    r$messages <- I(cap$messages)
    out[[gsub("[-.]", "_", mode)]] <- r
  }
  out
}

gls_record <- function(name, fit, call_text, data, emm = TRUE) {
  tt <- summary(fit)$tTable
  ll <- logLik(fit)
  ms <- fit$modelStruct
  rec <- list(
    name = name, call = call_text, method = fit$method, nobs = fit$dims$N,
    coefficients = rows(data.frame(term = rownames(tt), estimate = tt[, "Value"], se = tt[, "Std.Error"],
                                   t = tt[, "t-value"], p = tt[, "p-value"], stringsAsFactors = FALSE)),
    vcov = unname(lapply(seq_len(nrow(vcov(fit))), function(i) I(unname(vcov(fit)[i, ])))),
    sigma = fit$sigma,
    loglik = as.numeric(ll), loglik_df = attr(ll, "df"), aic = AIC(fit), bic = BIC(fit),
    df_residual = fit$dims$N - fit$dims$p,
    corstruct = if (!is.null(ms$corStruct)) I(unname(coef(ms$corStruct, unconstrained = FALSE))) else NULL,
    varstruct_ratios = if (!is.null(ms$varStruct)) as.list(coef(ms$varStruct, unconstrained = FALSE, allCoef = TRUE)) else NULL,
    residual_covariance = gls_cov(fit, data)
  )
  if (emm) rec$emmeans <- emm_gls(fit, data)
  rec
}

specs <- list(
  unstructured = list(
    call = "gls(y ~ arm * wave, correlation = corSymm(form = ~ widx | id), weights = varIdent(form = ~ 1 | wave))",
    fit = function(m) gls(y ~ arm * wave, data = d, correlation = corSymm(form = ~ widx | id),
                          weights = varIdent(form = ~ 1 | wave), method = m, control = ctl)),
  compound_symmetry = list(
    call = "gls(y ~ arm * wave, correlation = corCompSymm(form = ~ widx | id))",
    fit = function(m) gls(y ~ arm * wave, data = d, correlation = corCompSymm(form = ~ widx | id), method = m, control = ctl)),
  heterogeneous_cs = list(
    call = "gls(y ~ arm * wave, correlation = corCompSymm(form = ~ widx | id), weights = varIdent(form = ~ 1 | wave))",
    fit = function(m) gls(y ~ arm * wave, data = d, correlation = corCompSymm(form = ~ widx | id),
                          weights = varIdent(form = ~ 1 | wave), method = m, control = ctl)),
  ar1 = list(
    call = "gls(y ~ arm * wave, correlation = corAR1(form = ~ widx | id))",
    fit = function(m) gls(y ~ arm * wave, data = d, correlation = corAR1(form = ~ widx | id), method = m, control = ctl)),
  heterogeneous_ar1 = list(
    call = "gls(y ~ arm * wave, correlation = corAR1(form = ~ widx | id), weights = varIdent(form = ~ 1 | wave))",
    fit = function(m) gls(y ~ arm * wave, data = d, correlation = corAR1(form = ~ widx | id),
                          weights = varIdent(form = ~ 1 | wave), method = m, control = ctl)),
  toeplitz = list(
    call = "gls(y ~ arm * wave, correlation = corARMA(form = ~ widx | id, p = 2))",
    fit = function(m) gls(y ~ arm * wave, data = d, correlation = corARMA(form = ~ widx | id, p = 2), method = m, control = ctl)),
  heterogeneous_toeplitz = list(
    call = "gls(y ~ arm * wave, correlation = corARMA(form = ~ widx | id, p = 2), weights = varIdent(form = ~ 1 | wave))",
    fit = function(m) gls(y ~ arm * wave, data = d, correlation = corARMA(form = ~ widx | id, p = 2),
                          weights = varIdent(form = ~ 1 | wave), method = m, control = ctl))
)

gls_fits <- list()
for (nm in names(specs)) {
  for (m in c("REML", "ML")) {
    cap <- capture(specs[[nm]]$fit(m))
    rec <- gls_record(nm, cap$value, specs[[nm]]$call, d)
    rec$warnings <- I(cap$warnings)
    gls_fits[[paste0(nm, "__", tolower(m))]] <- rec
    cat(nm, m, "\n")
  }
}


## ---- Kenward-Roger for gls (emmeans 1.8.4 has none; the mmrm package is not installable here) ----
## pbkrtest's own KR code applied to the gls fit: pbkrtest:::vcovAdj_internal(Phi, SigmaG, X) with
## Phi = vcov(gls), Sigma = the fitted block-diagonal residual covariance (one block per participant,
## rows in data order) and G = dSigma/dgamma for a LINEAR covariance parametrization gamma
## (pbkrtest, like lme4 models, assumes Sigma = sum gamma_k G_k and ignores second derivatives):
##   unstructured: gamma = the 6 covariance elements s11, s21, s31, s22, s32, s33 (G = E_ab + E_ba);
##   compound symmetry: gamma = (between-wave covariance, residual variance) (G = J per block, I);
##   toeplitz: gamma = (c0, c1, c2) covariances at lag 0, 1, 2 of the wave index;
##   unstructured by arm: 6 elements per arm.
## df per contrast: pbkrtest::Lb_ddf(L, Phi, PhiA); SE = sqrt(L PhiA L'). This is what emmeans and
## lmerTest do for lmer fits. Validated below: compound symmetry gls vs pbkrtest on the equivalent
## lmer(y ~ arm * wave + (1 | id)) fit (kr_validation).
kr_sigmaG <- function(fit, data, structure, by = NULL) {
  vc <- unclass(getVarCov(fit, individual = names(which(table(droplevels(data$id)) == 3))[1]))
  attr(vc, "group.levels") <- NULL
  n <- nrow(data)
  blocks <- split(seq_len(n), data$id, drop = TRUE)
  mk <- function(f) {  # f(w1, w2) -> value for a pair of wave indices within a participant
    M <- matrix(0, n, n)
    for (b in blocks) {
      w <- data$widx[b]
      M[b, b] <- outer(w, w, Vectorize(f))
    }
    Matrix::Matrix(M, sparse = TRUE)
  }
  if (structure == "unstructured") {
    pairs <- list(c(1, 1), c(2, 1), c(3, 1), c(2, 2), c(3, 2), c(3, 3))
    G <- lapply(pairs, function(ab) mk(function(i, j) as.numeric((i == ab[1] && j == ab[2]) || (i == ab[2] && j == ab[1]))))
    gamma <- sapply(pairs, function(ab) vc[ab[1], ab[2]])
    names(gamma) <- sapply(pairs, function(ab) sprintf("s%d%d", ab[1], ab[2]))
  } else if (structure == "compound_symmetry") {
    G <- list(mk(function(i, j) 1), Matrix::Diagonal(n))
    gamma <- c(tau = vc[1, 2], sigma2 = vc[1, 1] - vc[1, 2])
  } else if (structure == "toeplitz") {
    G <- lapply(0:2, function(l) mk(function(i, j) as.numeric(abs(i - j) == l)))
    gamma <- c(c0 = vc[1, 1], c1 = vc[1, 2], c2 = vc[1, 3])
  } else stop("no linear parametrization for ", structure)
  Sigma <- Reduce(`+`, Map(`*`, gamma, G))
  list(SigmaG = list(Sigma = Sigma, G = G, n.ggamma = length(G)), gamma = gamma)
}
kr_contrasts <- function(beta, Phi, PhiA) {
  # rows: IMR - CAU at T1, T2, T3 (treatment coding: (Intercept), armIMR, waveT2, waveT3, armIMR:waveT2, armIMR:waveT3)
  Ls <- list(T1 = c(0, 1, 0, 0, 0, 0), T2 = c(0, 1, 0, 0, 1, 0), T3 = c(0, 1, 0, 0, 0, 1))
  rows(do.call(rbind, lapply(names(Ls), function(w) {
    L <- matrix(Ls[[w]], nrow = 1)
    est <- sum(L * beta); se <- sqrt(as.numeric(L %*% PhiA %*% t(L)))
    df <- pbkrtest::Lb_ddf(L, Phi, PhiA)
    data.frame(wave = w, contrast = "IMR - CAU", estimate = est, se = se, df = df,
               lower_cl = est - qt(0.975, df) * se, upper_cl = est + qt(0.975, df) * se,
               t = est / se, p = 2 * pt(-abs(est / se), df), stringsAsFactors = FALSE)
  })))
}
kr_coefs <- function(beta, Phi, PhiA) {
  rows(do.call(rbind, lapply(seq_along(beta), function(k) {
    L <- matrix(0, 1, length(beta)); L[k] <- 1
    se <- sqrt(PhiA[k, k]); df <- pbkrtest::Lb_ddf(L, Phi, PhiA)
    data.frame(term = names(beta)[k], estimate = beta[[k]], se = se, df = df, t = beta[[k]] / se,
               p = 2 * pt(-abs(beta[[k]] / se), df), stringsAsFactors = FALSE)
  })))
}
kr_record <- function(fit, data, structure) {
  sg <- kr_sigmaG(fit, data, structure)
  X <- model.matrix(~ arm * wave, data)
  Phi <- as.matrix(vcov(fit))
  # sanity: (X' Sigma^-1 X)^-1 reproduces vcov(gls)
  chk <- max(abs(as.matrix(solve(t(X) %*% solve(sg$SigmaG$Sigma, X))) - Phi)) / max(abs(Phi))
  PhiA <- pbkrtest:::vcovAdj_internal(Phi, sg$SigmaG, X)
  P <- attr(PhiA, "P"); W <- attr(PhiA, "W")
  PhiA <- as.matrix(PhiA); attr(PhiA, "P") <- P; attr(PhiA, "W") <- W
  beta <- coef(fit)
  list(
    parametrization = structure, gamma = as.list(sg$gamma),
    vcov_check_rel = chk,
    vcov_adjusted = unname(lapply(seq_len(nrow(PhiA)), function(i) I(unname(PhiA[i, 1:ncol(PhiA)])))),
    coefficients = kr_coefs(beta, Phi, PhiA),
    contrasts = kr_contrasts(beta, Phi, PhiA)
  )
}
kr <- list()
for (nm in c("unstructured", "compound_symmetry", "toeplitz")) {
  kr[[nm]] <- kr_record(specs[[nm]]$fit("REML"), d, nm)
  cat("KR", nm, "\n")
}
# validation against pbkrtest on the equivalent lmer fit (compound symmetry with rho > 0 = random intercept)
suppressPackageStartupMessages(library(lmerTest))
lm_cs <- lmerTest::lmer(y ~ arm * wave + (1 | id), data = d, REML = TRUE)
PhiA_l <- pbkrtest::vcovAdj(lm_cs)
Phi_l <- as.matrix(vcov(lm_cs))
kr_validation <- list(
  note = "compound_symmetry via this script's gls route vs pbkrtest::vcovAdj + Lb_ddf on lmer(y ~ arm * wave + (1 | id)) (REML); they differ only by the two optimizers' convergence (~1e-6).",
  lmer_contrasts = kr_contrasts(lme4::fixef(lm_cs), Phi_l, PhiA_l),
  gls_contrasts = kr[["compound_symmetry"]]$contrasts
)

## unstructured covariance separately per arm: the mean model arm * wave is saturated within arm and
## the covariance parameters are separate, so the likelihood factorizes into one gls per arm.
by_arm <- list()
for (m in c("REML", "ML")) {
  parts <- list()
  for (a in levels(d$arm)) {
    da <- d[d$arm == a, ]
    da$arm <- droplevels(da$arm)
    fa <- gls(y ~ wave, data = da, correlation = corSymm(form = ~ widx | id),
              weights = varIdent(form = ~ 1 | wave), method = m, control = ctl)
    ecap <- capture(as.data.frame(summary(emmeans(fa, ~ wave, mode = "satterthwaite", data = da), infer = c(TRUE, TRUE))))
    ea <- ecap$value
    if (length(ecap$messages)) stop("per-arm emmeans: ", paste(ecap$messages, collapse = "; "))
    parts[[a]] <- list(fit = fa, emm = ea, rec = gls_record(paste0("unstructured_", a), fa,
      "gls(y ~ wave, correlation = corSymm(form = ~ widx | id), weights = varIdent(form = ~ 1 | wave)) on the rows of one arm", da, emm = FALSE))
    parts[[a]]$rec$emmeans_satterthwaite <- rows(data.frame(wave = as.character(ea$wave), emmean = ea$emmean,
                                                           se = ea$SE, df = ea$df, stringsAsFactors = FALSE))
  }
  bc <- coef(parts$CAU$fit); bi <- coef(parts$IMR$fit)
  # map (CAU: a, b2, b3; IMR: a, b2, b3) to arm * wave treatment coefficients
  M <- rbind(c(1, 0, 0, 0, 0, 0), c(-1, 0, 0, 1, 0, 0), c(0, 1, 0, 0, 0, 0), c(0, 0, 1, 0, 0, 0),
             c(0, -1, 0, 0, 1, 0), c(0, 0, -1, 0, 0, 1))
  V <- matrix(0, 6, 6); V[1:3, 1:3] <- vcov(parts$CAU$fit); V[4:6, 4:6] <- vcov(parts$IMR$fit)
  beta <- as.vector(M %*% c(bc, bi)); vb <- M %*% V %*% t(M)
  ec <- parts$CAU$emm; ei <- parts$IMR$emm
  v1 <- ec$SE^2; v2 <- ei$SE^2
  est <- ei$emmean - ec$emmean; se <- sqrt(v1 + v2)
  dfw <- (v1 + v2)^2 / (v1^2 / ec$df + v2^2 / ei$df)
  by_arm[[tolower(m)]] <- list(
    method = m,
    per_arm = list(CAU = parts$CAU$rec, IMR = parts$IMR$rec),
    loglik = as.numeric(logLik(parts$CAU$fit)) + as.numeric(logLik(parts$IMR$fit)),
    loglik_df = attr(logLik(parts$CAU$fit), "df") + attr(logLik(parts$IMR$fit), "df"),
    coefficients = rows(data.frame(term = c("(Intercept)", "armIMR", "waveT2", "waveT3", "armIMR:waveT2", "armIMR:waveT3"),
                                   estimate = beta, se = sqrt(diag(vb)), stringsAsFactors = FALSE)),
    contrasts_satterthwaite = rows(data.frame(wave = waves, contrast = "IMR - CAU", estimate = est, se = se,
                                              df = dfw, t = est / se, p = 2 * pt(-abs(est / se), dfw),
                                              stringsAsFactors = FALSE))
  )
}
by_arm$aic_reml <- -2 * by_arm$reml$loglik + 2 * by_arm$reml$loglik_df
by_arm$note <- "Unstructured covariance per arm: two independent gls fits (one per arm, y ~ wave, corSymm + varIdent). Joint loglik = sum (also for REML: the arm * wave treatment coding is a unimodular reparametrization of the per-arm cell means, so log|X'V^-1 X| is unchanged). Joint coefficients and vcov mapped from the per-arm fits. Contrast df: Satterthwaite per arm (emmeans mode = 'satterthwaite' on each per-arm fit) combined by Welch's formula (v1 + v2)^2 / (v1^2/df1 + v2^2/df2), which is the joint Satterthwaite df because the variance parameters of the two arms are independent (block-diagonal information)."

## lme with a random intercept and a residual variance per arm
lme_fits <- list()
for (m in c("REML", "ML")) {
  cap <- capture(lme(y ~ arm * wave, random = ~ 1 | id, weights = varIdent(form = ~ 1 | arm),
                     data = d, method = m, control = lmeControl(natural = FALSE)))
  f <- cap$value
  tt <- summary(f)$tTable
  ll <- logLik(f)
  vcr <- VarCorr(f)
  emm <- list()
  for (mode in c("containment", "satterthwaite", "asymptotic")) {
    r <- tryCatch({
      e <- emmeans(f, ~ arm | wave, mode = mode, data = d)
      cs <- as.data.frame(summary(contrast(e, method = "revpairwise"), infer = c(TRUE, TRUE)))
      rows(data.frame(wave = as.character(cs$wave), contrast = as.character(cs$contrast),
                      estimate = cs$estimate, se = cs$SE, df = cs$df, stringsAsFactors = FALSE))
    }, error = function(e) list(error = conditionMessage(e)))
    emm[[mode]] <- r
  }
  lme_fits[[tolower(m)]] <- list(
    call = "lme(y ~ arm * wave, random = ~ 1 | id, weights = varIdent(form = ~ 1 | arm))",
    method = m, nobs = f$dims$N,
    coefficients = rows(data.frame(term = rownames(tt), estimate = tt[, "Value"], se = tt[, "Std.Error"],
                                   df = tt[, "DF"], t = tt[, "t-value"], p = tt[, "p-value"],
                                   stringsAsFactors = FALSE)),
    sigma = f$sigma,
    residual_sd_by_arm = as.list(f$sigma * coef(f$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)),
    varident_ratios = as.list(coef(f$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)),
    random_intercept_sd = as.numeric(vcr["(Intercept)", "StdDev"]),
    loglik = as.numeric(ll), loglik_df = attr(ll, "df"), aic = AIC(f), bic = BIC(f),
    emmeans_contrasts = emm,
    warnings = I(cap$warnings)
  )
}

meta <- make_meta("tests/r/mmrm.R", c("nlme", "emmeans", "jsonlite"), c(
  "Data: tests/fixtures/r/trial_long.csv (from tests/r/lmm_trial.R), rows with y observed (missed waves absent), sorted by id then wave; arm levels CAU, IMR; wave levels T1, T2, T3; widx = 1, 2, 3 = wave index (the position in corSymm / corAR1 / corARMA).",
  "gls fits (nlme): REML and ML (suffix __reml / __ml). coefficients: nlme summary tTable (t and p with N - p residual df). sigma = residual SD of the reference wave T1; varstruct_ratios = SD ratio per wave relative to T1 (allCoef); corstruct = correlation parameters (corSymm: the lower triangle by column, i.e. r12, r13, r23; corAR1: phi; corCompSymm: rho; corARMA: phi1, phi2).",
  "residual_covariance: getVarCov(fit) for a participant observed at all three waves; rows/columns T1, T2, T3.",
  "Toeplitz: nlme has no Toeplitz structure; for 3 equally spaced waves corARMA(p = 2) on the wave index is exactly the (homogeneous) Toeplitz structure (AR(2) autocorrelations (rho1, rho2) range over every positive-definite 3 x 3 Toeplitz correlation matrix; in general AR(T - 1) <-> Toeplitz of size T via the partial autocorrelations). heterogeneous_toeplitz adds varIdent by wave. The R mmrm package (which has toep/toeph and KR) is not in Debian bookworm.",
  "emmeans on gls: emmeans(fit, ~ arm | wave, mode = ...) with contrast 'revpairwise' = 'IMR - CAU' per wave; modes satterthwaite (emmeans' analytic Satterthwaite: df = 2 (l'Vl)^2 / (g' A g), A = nlme apVar, g = gradient of l'V(theta)l; fits use glsControl(natural = FALSE) so that A and g are on the same scale and emmeans does not fall back to its stochastic 'appx-satterthwaite'), df_error (N - p - number of variance parameters). emmeans 1.8.4 has no Kenward-Roger mode for gls: kenward_roger records emmeans' error text.",
  "unstructured_by_arm: see its note.",
  "kenward_roger (REML fits unstructured, compound_symmetry, toeplitz): Kenward-Roger computed with pbkrtest's own functions (pbkrtest:::vcovAdj_internal on the fitted block-diagonal Sigma with G = dSigma/dgamma for a linear covariance parametrization gamma, see gamma; pbkrtest::Lb_ddf for df), as emmeans/lmerTest do for lmer. The linear parametrization makes the second-derivative term of Kenward & Roger (1997) vanish, so this is the full KR (as SAS DDFM=KR for TYPE=UN/CS/TOEP). Not given for AR1/CSH/AR1H/heterogeneous Toeplitz (nonlinear: KR depends on the parametrization there). coefficients: KR-adjusted SE and df per term; contrasts: IMR - CAU per wave with 95% CI. vcov_check_rel: max relative difference between (X' Sigma^-1 X)^-1 from the rebuilt Sigma and vcov(gls). kr_validation compares the compound-symmetry route with pbkrtest on the equivalent lmer fit.",
  "lme_varident_arm: nlme::lme(y ~ arm * wave, random = ~ 1 | id, weights = varIdent(form = ~ 1 | arm)); coefficients with nlme's containment (inner-outer) DF; residual_sd_by_arm = sigma * ratio."
))
write_fixture(list(meta = meta, gls = gls_fits, kenward_roger = kr, kr_validation = kr_validation, unstructured_by_arm = by_arm, lme_varident_arm = lme_fits), "mmrm.json")
