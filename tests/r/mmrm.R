# Golden values for MMRM: nlme::gls with residual covariance structures by wave on the
# simulated trial of tests/r/lmm_trial.R (tests/fixtures/r/trial_long.csv), REML and ML, with
# emmeans contrasts IMR - CAU per wave; nlme::lme with a residual variance per arm (varIdent).
# Run from the repository root after lmm_trial.R:  Rscript tests/r/mmrm.R  -> tests/fixtures/mmrm/mmrm.json
source("tests/r/common.R")
# Inputs (copies) are read from and outputs written to the MMRM fixture folder.
fixture_dir <- "tests/fixtures/mmrm"
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
  wv <- levels(data$wave)
  nw <- length(wv)
  ids <- names(which(table(droplevels(data$id)) == nw))
  vc <- tryCatch(getVarCov(fit, individual = ids[1]), error = function(e) NULL)
  if (is.null(vc)) return(NULL)
  vc <- unclass(vc)
  attr(vc, "group.levels") <- NULL
  dimnames(vc) <- list(wv, wv)
  list(waves = I(wv), covariance = unname(lapply(seq_len(nw), function(i) I(unname(vc[i, ])))),
       correlation = unname(lapply(seq_len(nw), function(i) I(unname(cov2cor(vc)[i, ])))),
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


source("tests/r/mmrm_linear_inference.R")
# rows: IMR - CAU at T1, T2, T3 (treatment coding: (Intercept), armIMR, waveT2, waveT3, armIMR:waveT2, armIMR:waveT3)
trial_L <- list(T1 = c(0, 1, 0, 0, 0, 0), T2 = c(0, 1, 0, 0, 1, 0), T3 = c(0, 1, 0, 0, 0, 1))
linear_inference <- list()
for (nm in c("unstructured", "compound_symmetry", "toeplitz")) {
  linear_inference[[nm]] <- list(
    reml = lin_infer(lin_setup_fit(specs[[nm]]$fit("REML"), d, nm, ~ arm * wave), trial_L, "IMR - CAU", TRUE),
    ml = lin_infer(lin_setup_fit(specs[[nm]]$fit("ML"), d, nm, ~ arm * wave), trial_L, "IMR - CAU", FALSE))
  cat("linear inference", nm, "\n")
}
# validation against lmerTest / pbkrtest on the equivalent lmer fit (compound symmetry with rho > 0 = random intercept)
suppressPackageStartupMessages(library(lmerTest))
lm_cs <- lmerTest::lmer(y ~ arm * wave + (1 | id), data = d, REML = TRUE)
PhiA_l <- pbkrtest::vcovAdj(lm_cs)
Phi_l <- as.matrix(vcov(lm_cs))
kr_validation <- list(
  note = "linear_inference.compound_symmetry.reml vs lmer(y ~ arm * wave + (1 | id)) (REML): KR by pbkrtest::vcovAdj + Lb_ddf on the lmer fit, Satterthwaite by emmeans/lmerTest; they differ only by the optimizers' convergence.",
  lmer_kenward_roger = kr_contrasts(lme4::fixef(lm_cs), Phi_l, PhiA_l, trial_L, "IMR - CAU"),
  lmer_satterthwaite = {
    em <- as.data.frame(summary(contrast(emmeans(lm_cs, ~ arm | wave, lmer.df = "satterthwaite"), "revpairwise")))
    rows(data.frame(wave = as.character(em$wave), estimate = em$estimate, se = em$SE, df = em$df, stringsAsFactors = FALSE))
  },
  gls_kenward_roger = linear_inference$compound_symmetry$reml$kenward_roger$contrasts,
  gls_satterthwaite = linear_inference$compound_symmetry$reml$contrasts_satterthwaite
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
  st_by <- lin_setup(list(CAU = full_cov(parts$CAU$fit, droplevels(d[d$arm == "CAU", ])),
                          IMR = full_cov(parts$IMR$fit, droplevels(d[d$arm == "IMR", ]))),
                     d, "unstructured", ~ arm * wave, d$y, by = as.character(d$arm))
  by_arm[[tolower(m)]] <- list(
    method = m,
    linear_inference = lin_infer(st_by, trial_L, "IMR - CAU", m == "REML"),
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
by_arm$note <- "Unstructured covariance per arm: two independent gls fits (one per arm, y ~ wave, corSymm + varIdent). Joint loglik = sum (also for REML: the arm * wave treatment coding is a unimodular reparametrization of the per-arm cell means, so log|X'V^-1 X| is unchanged). Joint coefficients and vcov mapped from the per-arm fits. linear_inference: the joint model (12 covariance elements, 6 per arm; the by-arm blocks of Sigma) with accurate Satterthwaite and, for REML, Kenward-Roger as for the other structures: the targets. contrasts_satterthwaite: Satterthwaite per arm (emmeans mode = 'satterthwaite' on each per-arm fit, so with emmeans' apVar inaccuracy) combined by Welch's formula (v1 + v2)^2 / (v1^2/df1 + v2^2/df2), which is the joint Satterthwaite df because the variance parameters of the two arms are independent (block-diagonal information)."

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


## ---- a public dataset: nlme::Orthodont (27 children x ages 8, 10, 12, 14; complete) ----------
## distance ~ sex * wave, sex levels Female, Male (sorted; Female reference), wave T1..T4 = age 8..14.
data("Orthodont", package = "nlme")
o <- data.frame(id = as.character(Orthodont$Subject), sex = as.character(Orthodont$Sex),
                age = Orthodont$age, widx = as.integer((Orthodont$age - 8) / 2 + 1),
                wave = paste0("T", (Orthodont$age - 8) / 2 + 1), distance = Orthodont$distance,
                stringsAsFactors = FALSE)
o <- o[order(o$id, o$widx), ]
write.csv(o, file.path(fixture_dir, "orthodont.csv"), row.names = FALSE)
o <- read.csv(file.path(fixture_dir, "orthodont.csv"), stringsAsFactors = FALSE)
o$sex <- factor(o$sex, levels = c("Female", "Male"))
o$wave <- factor(o$wave, levels = paste0("T", 1:4))
o$id <- factor(o$id, levels = sort(unique(o$id)))
ospecs <- list(
  unstructured = function(m) gls(distance ~ sex * wave, data = o, correlation = corSymm(form = ~ widx | id),
                                 weights = varIdent(form = ~ 1 | wave), method = m, control = ctl),
  compound_symmetry = function(m) gls(distance ~ sex * wave, data = o, correlation = corCompSymm(form = ~ widx | id),
                                      method = m, control = ctl),
  ar1 = function(m) gls(distance ~ sex * wave, data = o, correlation = corAR1(form = ~ widx | id), method = m, control = ctl),
  toeplitz = function(m) gls(distance ~ sex * wave, data = o, correlation = corARMA(form = ~ widx | id, p = 3),
                             method = m, control = ctl)
)
o_L <- list(T1 = c(0, 1, 0, 0, 0, 0, 0, 0), T2 = c(0, 1, 0, 0, 0, 1, 0, 0),
            T3 = c(0, 1, 0, 0, 0, 0, 1, 0), T4 = c(0, 1, 0, 0, 0, 0, 0, 1))
orthodont <- list()
for (nm in names(ospecs)) {
  for (m in c("REML", "ML")) {
    cap <- capture(ospecs[[nm]](m))
    fit <- cap$value
    rec <- gls_record(nm, fit, deparse(ospecs[[nm]])[2], o, emm = FALSE)
    rec$call <- paste(trimws(deparse(body(ospecs[[nm]]))), collapse = " ")
    rec$warnings <- I(cap$warnings)
    ecap <- capture({
      e <- emmeans(fit, ~ sex | wave, mode = "satterthwaite", data = o)
      cs <- as.data.frame(summary(contrast(e, method = "revpairwise"), infer = c(TRUE, TRUE)))
    })
    rec$contrasts_satterthwaite <- rows(data.frame(wave = as.character(cs$wave), contrast = as.character(cs$contrast),
                                                  estimate = cs$estimate, se = cs$SE, df = cs$df,
                                                  lower_cl = cs$lower.CL, upper_cl = cs$upper.CL, t = cs$t.ratio,
                                                  p = cs$p.value, stringsAsFactors = FALSE))
    rec$emmeans_messages <- I(ecap$messages)
    if (nm != "ar1")
      rec$linear_inference <- lin_infer(lin_setup_fit(fit, o, nm, ~ sex * wave), o_L, "Male - Female", m == "REML")
    orthodont[[paste0(nm, "__", tolower(m))]] <- rec
    cat("Orthodont", nm, m, "\n")
  }
}

meta <- make_meta("tests/r/mmrm.R", c("nlme", "emmeans", "jsonlite"), c(
  "Data: tests/fixtures/r/trial_long.csv (from tests/r/lmm_trial.R), rows with y observed (missed waves absent), sorted by id then wave; arm levels CAU, IMR; wave levels T1, T2, T3; widx = 1, 2, 3 = wave index (the position in corSymm / corAR1 / corARMA).",
  "gls fits (nlme): REML and ML (suffix __reml / __ml). coefficients: nlme summary tTable (t and p with N - p residual df). sigma = residual SD of the reference wave T1; varstruct_ratios = SD ratio per wave relative to T1 (allCoef); corstruct = correlation parameters (corSymm: the lower triangle by column, i.e. r12, r13, r23; corAR1: phi; corCompSymm: rho; corARMA: phi1, phi2).",
  "nlme quirk: for method = 'ML' gls reports vcov (and so coefficient SEs, emmeans SEs) with sigma^2 scaled by N / (N - p), i.e. sqrt(N / (N - p)) times the ML standard errors (X'S^-1 X)^-1 at the ML estimate (compound_symmetry__ml: ratio^2 = 1.0112994 = 537/531; lmer's ML fit of the same model gives the unscaled SEs). The ML loglik, AIC, BIC and coefficients are not affected. linear_inference.*.ml reports the unscaled ML SEs.",
  "residual_covariance: getVarCov(fit) for a participant observed at all three waves; rows/columns T1, T2, T3.",
  "Toeplitz: nlme has no Toeplitz structure; for 3 equally spaced waves corARMA(p = 2) on the wave index is exactly the (homogeneous) Toeplitz structure (AR(2) autocorrelations (rho1, rho2) range over every positive-definite 3 x 3 Toeplitz correlation matrix; in general AR(T - 1) <-> Toeplitz of size T via the partial autocorrelations). heterogeneous_toeplitz adds varIdent by wave. The R mmrm package (which has toep/toeph and KR) is not in Debian bookworm.",
  "emmeans on gls: emmeans(fit, ~ arm | wave, mode = ...) with contrast 'revpairwise' = 'IMR - CAU' per wave; modes satterthwaite (emmeans' analytic Satterthwaite: df = 2 (l'Vl)^2 / (g' A g), A = nlme apVar, g = gradient of l'V(theta)l; fits use glsControl(natural = FALSE) so that A and g are on the same scale and emmeans does not fall back to its stochastic 'appx-satterthwaite'), df_error (N - p - number of variance parameters). emmeans 1.8.4 has no Kenward-Roger mode for gls: kenward_roger records emmeans' error text.",
  "unstructured_by_arm: see its note.",
  "linear_inference.<unstructured|compound_symmetry|toeplitz>.<reml|ml> (trial) and orthodont.<fit>.linear_inference: inference on the linear covariance parametrization gamma (see the comment block in the script): gamma_gls read from the gls fit, gamma after Newton polishing of the deviance (deviance_gls vs deviance, max_abs_gradient_* show the gain; polishing moves estimates by ~1e-5 relative at most); coefficients with se and satterthwaite_df; contrasts_satterthwaite (IMR - CAU or Male - Female per wave, 95% CI). Satterthwaite = lmerTest's definition (A = 2 H^-1 of the deviance; gradient, Hessian and dPhi/dgamma analytic, see tests/r/mmrm_linear_inference.R; hessian_check = relative difference to numDeriv with d = 1e-3), invariant to the parametrization: the Satterthwaite target. emmeans' own gls Satterthwaite (gls.<fit>.emmeans.satterthwaite) rests on nlme's numerical apVar and is off by up to a few percent: on Orthodont's balanced complete UN REML fit the exact df of each per-wave contrast is n - 2 = 25; emmeans gives 24.8-25.7, linear_inference 25 (the earlier numDeriv Richardson Hessian with d = 0.1 gave 24.995-24.999); on the trial UN REML fit emmeans 186.5 vs 194.6.",
  "orthodont: the public nlme::Orthodont data (orthodont.csv: id, sex, age, widx, wave, distance; 27 children, ages 8-14 as waves T1-T4, complete), distance ~ sex * wave (sex levels Female, Male; Female reference): unstructured, compound_symmetry, ar1, toeplitz (corARMA(p = 3) = Toeplitz for 4 equally spaced waves), REML and ML; contrasts_satterthwaite = emmeans 'Male - Female' per wave; kenward_roger as below for the REML unstructured, compound_symmetry and toeplitz fits.",
  "linear_inference.*.reml.kenward_roger: Kenward-Roger with pbkrtest's own code (pbkrtest:::vcovAdj_internal on the n x n block-diagonal Sigma at the polished gamma with G_k = dSigma/dgamma_k; pbkrtest::Lb_ddf per contrast; se = sqrt(L PhiA L')): the full KR because the parametrization is linear (as SAS DDFM=KR for UN/CS/TOEP). Not given for AR1/CSH/AR1H/heterogeneous Toeplitz (nonlinear: KR depends on the parametrization there; mmrm's 'Kenward-Roger' vs 'Kenward-Roger-Linear'). On Orthodont UN (balanced, complete) KR df = 25 exactly. kr_validation: the compound-symmetry route vs lmerTest/pbkrtest on the equivalent lmer fit.",
  "lme_varident_arm: nlme::lme(y ~ arm * wave, random = ~ 1 | id, weights = varIdent(form = ~ 1 | arm)); coefficients with nlme's containment (inner-outer) DF; residual_sd_by_arm = sigma * ratio."
))
write_fixture(list(meta = meta, orthodont = orthodont, gls = gls_fits, linear_inference = linear_inference, kr_validation = kr_validation, unstructured_by_arm = by_arm, lme_varident_arm = lme_fits), "mmrm.json")
