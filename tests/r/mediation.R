# Golden values for the mediation analyses on a simulated 3-wave dataset:
# (1) change-score regressions (lm) with baseline covariates, indirect effects with Sobel SE,
#     bootstrap (boot) and Monte Carlo CIs; (2) multi-wave within-person model with person-mean
#     centring (lmerTest::lmer per path); (3) random-slopes version stacking the M and Y equations
#     (nlme::lme with a residual variance per equation), average indirect effect a*b + cov(a_j, b_j).
# Run from the repository root:  Rscript tests/r/mediation.R
# Writes tests/fixtures/r/mediation_long.csv (the data) and tests/fixtures/r/mediation.json.
source("tests/r/common.R")
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(nlme)
  library(boot)
  library(MASS)
})

## ---- simulate ------------------------------------------------------------------------------
set.seed(6060)
n <- 300
waves <- c("T1", "T2", "T3")
ab_cov <- matrix(c(0.12^2, 0.4 * 0.12 * 0.15, 0.4 * 0.12 * 0.15, 0.15^2), 2)
ab <- MASS::mvrnorm(n, c(0, 0), ab_cov)
a_j <- -0.30 + ab[, 1]      # X -> M1 (within person)
b_j <- -0.40 + ab[, 2]      # M1 -> Y (within person)
xb <- rnorm(n, 3, 0.5); m1b <- rnorm(n, 1.2, 0.5); m2b <- rnorm(n, 2.5, 0.5); yb <- rnorm(n, 60, 8)
long <- do.call(rbind, lapply(1:n, function(i) {
  tr <- c(0, 0.15, 0.25)
  xw <- rnorm(3, 0, 0.45) + tr
  x <- xb[i] + xw
  m1 <- m1b[i] - 0.2 * xb[i] + a_j[i] * xw + rnorm(3, 0, 0.3)
  m2 <- m2b[i] + 0.25 * xw + rnorm(3, 0, 0.35)
  y <- yb[i] + 2.5 * xw + 6 * b_j[i] * (m1 - m1b[i] + 0.2 * xb[i]) + 3 * (m2 - m2b[i]) + rnorm(3, 0, 4)
  data.frame(id = sprintf("M%03d", i), wave = waves, x = round(x, 3), m1 = round(m1, 3),
             m2 = round(m2, 3), y = round(y, 2), stringsAsFactors = FALSE)
}))
for (v in c("x", "m1", "m2", "y")) long[[v]][runif(nrow(long)) < 0.04] <- NA
write.csv(long, file.path(fixture_dir, "mediation_long.csv"), row.names = FALSE, na = "")
d <- read.csv(file.path(fixture_dir, "mediation_long.csv"), stringsAsFactors = FALSE)
d$wave <- factor(d$wave, levels = waves)
d$id <- factor(d$id, levels = sort(unique(d$id)))

## ---- (1) change scores ----------------------------------------------------------------------
w1 <- d[d$wave == "T1", c("id", "x", "m1", "m2", "y")]
w3 <- d[d$wave == "T3", c("id", "x", "m1", "m2", "y")]
names(w1)[-1] <- paste0(names(w1)[-1], "_0"); names(w3)[-1] <- paste0(names(w3)[-1], "_last")
wide <- merge(w1, w3, by = "id")
wide$d_x <- wide$x_last - wide$x_0; wide$d_m1 <- wide$m1_last - wide$m1_0
wide$d_m2 <- wide$m2_last - wide$m2_0; wide$d_y <- wide$y_last - wide$y_0
cc <- wide[complete.cases(wide), ]
f_a1 <- d_m1 ~ d_x + x_0 + m1_0
f_a2 <- d_m2 ~ d_x + x_0 + m2_0
f_b <- d_y ~ d_x + d_m1 + d_m2 + x_0 + m1_0 + m2_0 + y_0
f_c <- d_y ~ d_x + x_0 + y_0
lm_rec <- function(f, data) {
  m <- lm(f, data = data); s <- summary(m); cm <- s$coefficients
  list(formula = paste(deparse(f), collapse = ""), nobs = nobs(m), df_residual = m$df.residual,
       sigma = s$sigma, r_squared = s$r.squared, adj_r_squared = s$adj.r.squared,
       coefficients = rows(data.frame(term = rownames(cm), estimate = cm[, 1], se = cm[, 2],
                                      t = cm[, 3], p = cm[, 4], stringsAsFactors = FALSE)),
       vcov = unname(lapply(seq_len(nrow(vcov(m))), function(i) I(unname(vcov(m)[i, ])))))
}
fit_paths <- function(data) {
  ma1 <- lm(f_a1, data); ma2 <- lm(f_a2, data); mb <- lm(f_b, data); mc <- lm(f_c, data)
  c(a1 = coef(ma1)[["d_x"]], a2 = coef(ma2)[["d_x"]], b1 = coef(mb)[["d_m1"]], b2 = coef(mb)[["d_m2"]],
    c_prime = coef(mb)[["d_x"]], c = coef(mc)[["d_x"]])
}
ma1 <- lm(f_a1, cc); ma2 <- lm(f_a2, cc); mb <- lm(f_b, cc); mc <- lm(f_c, cc)
se <- function(m, t) sqrt(vcov(m)[t, t])
est <- fit_paths(cc)
ses <- c(a1 = se(ma1, "d_x"), a2 = se(ma2, "d_x"), b1 = se(mb, "d_m1"), b2 = se(mb, "d_m2"),
         c_prime = se(mb, "d_x"), c = se(mc, "d_x"))
sdv <- sapply(cc[, c("d_x", "d_m1", "d_m2", "d_y")], sd)
std <- c(a1 = est[["a1"]] * sdv[["d_x"]] / sdv[["d_m1"]], a2 = est[["a2"]] * sdv[["d_x"]] / sdv[["d_m2"]],
         b1 = est[["b1"]] * sdv[["d_m1"]] / sdv[["d_y"]], b2 = est[["b2"]] * sdv[["d_m2"]] / sdv[["d_y"]],
         c_prime = est[["c_prime"]] * sdv[["d_x"]] / sdv[["d_y"]], c = est[["c"]] * sdv[["d_x"]] / sdv[["d_y"]])
cov_b12 <- vcov(mb)["d_m1", "d_m2"]
ind <- c(a1b1 = est[["a1"]] * est[["b1"]], a2b2 = est[["a2"]] * est[["b2"]])
ind["sum"] <- ind[["a1b1"]] + ind[["a2b2"]]
sob <- c(a1b1 = sqrt(est[["a1"]]^2 * ses[["b1"]]^2 + est[["b1"]]^2 * ses[["a1"]]^2),
         a2b2 = sqrt(est[["a2"]]^2 * ses[["b2"]]^2 + est[["b2"]]^2 * ses[["a2"]]^2))
sob["sum"] <- sqrt(sob[["a1b1"]]^2 + sob[["a2b2"]]^2 + 2 * est[["a1"]] * est[["a2"]] * cov_b12)
std_ind <- c(a1b1 = std[["a1"]] * std[["b1"]], a2b2 = std[["a2"]] * std[["b2"]])
std_ind["sum"] <- std_ind[["a1b1"]] + std_ind[["a2b2"]]
# bootstrap: resample participants (rows of the complete-case wide table)
set.seed(2024)
bt <- boot(cc, function(data, idx) {
  p <- fit_paths(data[idx, ]); c(p[["a1"]] * p[["b1"]], p[["a2"]] * p[["b2"]], p[["a1"]] * p[["b1"]] + p[["a2"]] * p[["b2"]])
}, R = 5000)
boot_ci <- lapply(1:3, function(i) { ci <- boot.ci(bt, type = "perc", index = i)$percent; c(ci[4], ci[5]) })
# Monte Carlo: a1, a2 independent normals; (b1, b2) bivariate normal with the b-model vcov
set.seed(1)
nmc <- 1e5
a1s <- rnorm(nmc, est[["a1"]], ses[["a1"]])
a2s <- rnorm(nmc, est[["a2"]], ses[["a2"]])
bs <- MASS::mvrnorm(nmc, c(est[["b1"]], est[["b2"]]), vcov(mb)[c("d_m1", "d_m2"), c("d_m1", "d_m2")])
mc_draws <- cbind(a1s * bs[, 1], a2s * bs[, 2], a1s * bs[, 1] + a2s * bs[, 2])
mc_ci <- lapply(1:3, function(i) unname(quantile(mc_draws[, i], c(0.025, 0.975))))
change <- list(
  n_participants = nlevels(d$id), n_used = nrow(cc), n_excluded = nlevels(d$id) - nrow(cc),
  models = list(a1_model = lm_rec(f_a1, cc), a2_model = lm_rec(f_a2, cc), b_model = lm_rec(f_b, cc),
                total_model = lm_rec(f_c, cc)),
  sd_analysis_sample = as.list(sdv),
  paths = rows(data.frame(path = names(est), estimate = unname(est), se = unname(ses),
                          std_estimate = unname(std), stringsAsFactors = FALSE)),
  indirect = lapply(1:3, function(i) list(
    effect = names(ind)[i], estimate = unname(ind[i]), sobel_se = unname(sob[i]),
    std_estimate = unname(std_ind[i]),
    bootstrap = list(conf_low = boot_ci[[i]][1], conf_high = boot_ci[[i]][2], R = 5000,
                     sd = sd(bt$t[, i])),
    monte_carlo = list(conf_low = mc_ci[[i]][1], conf_high = mc_ci[[i]][2], draws = nmc))),
  bootstrap_rng = "set.seed(2024); boot(cc, statistic, R = 5000) resampling rows (participants) of the complete-case wide table; percentile CI boot.ci(type = 'perc')",
  mc_rng = "set.seed(1); a1 = rnorm(1e5, a1, se_a1); a2 = rnorm(1e5, a2, se_a2); (b1, b2) = MASS::mvrnorm(1e5, c(b1, b2), vcov of b model); 2.5% and 97.5% quantiles (type 7)",
  sobel_note = "Sobel SE of a*b: sqrt(a^2 se_b^2 + b^2 se_a^2); of the sum: sqrt(se_a1b1^2 + se_a2b2^2 + 2 a1 a2 cov(b1, b2)) (a1, a2 from separate regressions taken as independent)",
  std_note = "std_estimate = coefficient x sd(predictor) / sd(outcome) on the analysis sample (sd_analysis_sample); standardized indirect = product of standardized paths"
)

## ---- (2) multi-wave within-person model ------------------------------------------------------
pm <- function(v) ave(d[[v]], d$id, FUN = function(z) mean(z, na.rm = TRUE))
for (v in c("x", "m1", "m2", "y")) {
  d[[paste0(v, "_b")]] <- pm(v)
  d[[paste0(v, "_w")]] <- d[[v]] - d[[paste0(v, "_b")]]
}
wf <- list(
  a1 = "m1 ~ x_w + x_b + wave + (1 | id)",
  a2 = "m2 ~ x_w + x_b + wave + (1 | id)",
  b = "y ~ x_w + m1_w + m2_w + x_b + m1_b + m2_b + wave + (1 | id)",
  c = "y ~ x_w + x_b + wave + (1 | id)"
)
wfits <- list(); wm <- list()
for (nm in names(wf)) {
  r <- lmer_record(paste0("within__", nm), wf[[nm]], d, REML = TRUE, dataset = "mediation_long",
                   csv = "mediation_long.csv", anova3 = FALSE)
  wfits[[nm]] <- r$record; wm[[nm]] <- r$model
}
g <- function(m, t) {
  cm <- summary(m)$coefficients
  c(estimate = cm[t, "Estimate"], se = cm[t, "Std. Error"], df = cm[t, "df"])
}
wp <- rbind(a1 = g(wm$a1, "x_w"), a2 = g(wm$a2, "x_w"), b1 = g(wm$b, "m1_w"), b2 = g(wm$b, "m2_w"),
            c_prime = g(wm$b, "x_w"), c = g(wm$c, "x_w"))
wi <- function(a, b) {
  e <- wp[a, "estimate"] * wp[b, "estimate"]
  s <- sqrt(wp[a, "estimate"]^2 * wp[b, "se"]^2 + wp[b, "estimate"]^2 * wp[a, "se"]^2)
  list(estimate = e, sobel_se = s, z = e / s, p = 2 * pnorm(-abs(e / s)))
}
set.seed(1)
mcw <- rnorm(nmc, wp["a1", "estimate"], wp["a1", "se"]) * rnorm(nmc, wp["b1", "estimate"], wp["b1", "se"])
within <- list(
  description = "Person-mean centring (Zhang, Zyphur & Preacher 2009): v_b = mean of v over the waves where v is observed (per participant, before rows are dropped), v_w = v - v_b; each lmer uses the rows with its own variables observed; REML; Satterthwaite df.",
  fits = wfits,
  paths = rows(data.frame(path = rownames(wp), estimate = wp[, "estimate"], se = wp[, "se"], df = wp[, "df"],
                          stringsAsFactors = FALSE)),
  indirect = list(a1b1 = c(wi("a1", "b1"), list(monte_carlo = list(conf_low = unname(quantile(mcw, 0.025)),
                                                                    conf_high = unname(quantile(mcw, 0.975)),
                                                                    draws = nmc))),
                  a2b2 = wi("a2", "b2")),
  mc_rng = "set.seed(1); rnorm(1e5, a1, se_a1) * rnorm(1e5, b1, se_b1) (a draws first, then b); quantiles type 7"
)

## ---- (3) random slopes: stacked M1 and Y equations (nlme::lme, varIdent by equation) --------
dm <- d[!is.na(d$m1) & !is.na(d$x), ]
dy <- d[!is.na(d$y) & !is.na(d$m1) & !is.na(d$x), ]
mk <- function(dd, eq) {
  one <- as.numeric(eq == "m"); two <- as.numeric(eq == "y")
  data.frame(id = dd$id, dv = eq, z = if (eq == "m") dd$m1 else dd$y,
             m_int = one, y_int = two,
             a_x = one * dd$x_w, m_xb = one * dd$x_b,
             b_m = two * dd$m1_w, cp_x = two * dd$x_w, y_mb = two * dd$m1_b, y_xb = two * dd$x_b,
             m_T2 = one * (dd$wave == "T2"), m_T3 = one * (dd$wave == "T3"),
             y_T2 = two * (dd$wave == "T2"), y_T3 = two * (dd$wave == "T3"), stringsAsFactors = FALSE)
}
st <- rbind(mk(dm, "m"), mk(dy, "y"))
st$dv <- factor(st$dv, levels = c("m", "y"))
st <- st[order(st$id, st$dv), ]
sf <- z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_T2 + m_T3 + y_T2 + y_T3
# nlme's default start (EM iterations from a diagonal guess) stops on a flat ridge below the REML
# maximum for this weakly identified model (3 waves, 4 random effects per person). glmmTMB
# (us(...) random term, dispformula = ~ 0 + dv: the same model) reaches a higher likelihood; nlme
# started from glmmTMB's estimates stays there. The recorded fit is the nlme fit with the higher
# likelihood of the two starts (default_start_loglik shows the other).
suppressPackageStartupMessages(library(glmmTMB))
rs_fixed <- z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_T2 + m_T3 + y_T2 + y_T3
g_reml <- glmmTMB(update(rs_fixed, . ~ . + us(0 + m_int + y_int + a_x + b_m | id)), dispformula = ~ 0 + dv,
                  data = st, REML = TRUE)
gG <- VarCorr(g_reml)$cond$id; attributes(gG)[c("stddev", "correlation", "blockCode")] <- NULL
g_sd <- sqrt(exp(fixef(g_reml)$disp))
rs <- list()
for (meth in c("REML", "ML")) {
  ctl <- lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, msMaxEval = 2000)
  cap_def <- capture(lme(sf, data = st, random = list(id = pdSymm(~ 0 + m_int + y_int + a_x + b_m)),
                         weights = varIdent(form = ~ 1 | dv), method = meth, control = ctl))
  cap_st <- capture(lme(sf, data = st, random = list(id = pdSymm(gG / g_sd[["dvm"]]^2, form = ~ 0 + m_int + y_int + a_x + b_m)),
                        weights = varIdent(value = c(y = g_sd[["dvy"]] / g_sd[["dvm"]]), form = ~ 1 | dv),
                        method = meth, control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 0, msMaxEval = 2000)))
  use_start <- as.numeric(logLik(cap_st$value)) > as.numeric(logLik(cap_def$value))
  cap <- if (use_start) cap_st else cap_def
  f <- cap$value
  tt <- summary(f)$tTable
  G <- unclass(getVarCov(f))
  a <- fixef(f)[["a_x"]]; b <- fixef(f)[["b_m"]]; cab <- G["a_x", "b_m"]
  ll <- logLik(f)
  rs[[tolower(meth)]] <- list(
    method = meth, nobs = f$dims$N, ngroups = f$dims$ngrps[["id"]],
    coefficients = rows(data.frame(term = rownames(tt), estimate = tt[, "Value"], se = tt[, "Std.Error"],
                                   df = tt[, "DF"], t = tt[, "t-value"], p = tt[, "p-value"], stringsAsFactors = FALSE)),
    vcov_a_b = unname(lapply(1:2, function(i) I(unname(vcov(f)[c("a_x", "b_m"), c("a_x", "b_m")][i, ])))),
    random_effects_terms = I(rownames(G)),
    random_effects_covariance = unname(lapply(seq_len(nrow(G)), function(i) I(unname(G[i, ])))),
    sigma = f$sigma,
    varident_ratios = as.list(coef(f$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)),
    residual_sd_by_equation = as.list(f$sigma * coef(f$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)),
    loglik = as.numeric(ll), loglik_df = attr(ll, "df"), aic = AIC(f), bic = BIC(f),
    a = a, b = b, cov_ab = cab, ab = a * b, average_indirect = a * b + cab,
    start = if (use_start) "glmmTMB REML estimates" else "nlme default",
    default_start_loglik = as.numeric(logLik(cap_def$value)),
    glmmtmb_reml_loglik = if (meth == "REML") as.numeric(logLik(g_reml)) else NULL,
    warnings = I(cap$warnings)
  )
}
random_slopes <- list(
  description = "Stacked M and Y equations for the single mediator M1 (Bauer, Preacher & Gil 2006): one row per observed M1 (dv = m, z = m1) and per observed Y with M1 (dv = y, z = y), rows with x observed; columns are the equation indicators m_int, y_int times the predictors: a_x = [dv=m] x_w, b_m = [dv=y] m1_w, cp_x = [dv=y] x_w, m_xb = [dv=m] x_b, y_xb = [dv=y] x_b, y_mb = [dv=y] m1_b, m_T2/m_T3/y_T2/y_T3 wave indicators per equation.",
  call = "lme(z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_T2 + m_T3 + y_T2 + y_T3, random = list(id = pdSymm(~ 0 + m_int + y_int + a_x + b_m)), weights = varIdent(form = ~ 1 | dv), control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, msMaxEval = 2000))",
  start_note = "nlme from its default start stops below the maximum here (flat likelihood: 3 waves, 4 random effects per person); the fit recorded is nlme started from the glmmTMB REML estimates (glmmTMB with us(0 + m_int + y_int + a_x + b_m | id) and dispformula = ~ 0 + dv, the same model), which reaches a higher likelihood and stays there; default_start_loglik is nlme's own result. Compare estimates at ~1e-4 and logLik at 1e-6; a correct optimizer must reach at least loglik.",
  note = "random_effects_covariance: 4 x 4 unstructured covariance of (m_int, y_int, a_x, b_m) per participant (getVarCov); the residuals of the two equations are independent with SD sigma x ratio (varIdent, reference level m). average_indirect = a * b + cov(a_j, b_j).",
  nrow_stacked = nrow(st),
  fits = rs
)

meta <- make_meta("tests/r/mediation.R", c("lme4", "lmerTest", "nlme", "glmmTMB", "boot", "MASS", "jsonlite"), c(
  "Data: mediation_long.csv generated here (set.seed(6060)): 300 participants (M001..) x waves T1, T2, T3 with x (self-management, X), m1 (clinical, M1), m2 (functional, M2), y (personal recovery, Y); about 4% of cells empty (NA). Fitted as read back.",
  "change_scores: last wave T3 minus baseline T1 (d_v), baselines v_0; complete cases over the eight values; lm fits as in the thesis (chapter 7) with the baselines of the variables in each model.",
  "within_person: lmerTest::lmer, REML, Satterthwaite; wave factor (T1 reference).",
  "random_slopes: nlme::lme on the stacked data; see its description and note."
))
meta$data <- list(file = "mediation_long.csv", rows = nrow(d), participants = nlevels(d$id))
write_fixture(list(meta = meta, change_scores = change, within_person = within, random_slopes = random_slopes),
              "mediation.json")
