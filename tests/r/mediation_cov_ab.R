# Golden values for the sampling variance of cov(a_j, b_j), the random-slope covariance of the
# stacked M1 and Y equations of tests/r/mediation.R (Bauer, Preacher & Gil 2006), which enters the
# SE of the average indirect effect a*b + cov(a_j, b_j).
# Two routes at the REML fit recorded in mediation.json ("random_slopes"/"fits"/"reml"):
#  (1) nlme: the fit restarted from the recorded estimates (niterEM = 0), its apVar (inverse
#      Hessian of the restricted log-likelihood in nlme's natural parametrization: log SDs,
#      log((1 + r) / (1 - r)) correlations, log sigma, log varIdent ratio; fdHess), carried to
#      cov(a_j, b_j) = sd_a sd_b r_ab by the delta method (numDeriv::jacobian);
#  (2) the inverse of numDeriv::hessian (Richardson) of the restricted log-likelihood written out
#      (V_i = Z_i G Z_i' + diag(sigma_eq^2), beta profiled, nlme's REML constant) in the natural
#      parameters gamma = (lower triangle of G row by row, sigma_m^2, sigma_y^2), at the recorded
#      estimates.
# Run from the repository root:  Rscript tests/r/mediation_cov_ab.R
# Reads tests/fixtures/mediation/{mediation_long.csv, mediation.json};
# writes tests/fixtures/mediation/mediation_cov_ab.json.
suppressPackageStartupMessages({
  library(nlme)
  library(numDeriv)
  library(jsonlite)
})
fx <- "tests/fixtures/mediation"
rec <- fromJSON(file.path(fx, "mediation.json"), simplifyVector = TRUE)$random_slopes$fits$reml
d <- read.csv(file.path(fx, "mediation_long.csv"), stringsAsFactors = FALSE)
waves <- c("T1", "T2", "T3")
d$wave <- factor(d$wave, levels = waves)
d$id <- factor(d$id, levels = sort(unique(d$id)))
pm <- function(v) ave(d[[v]], d$id, FUN = function(z) mean(z, na.rm = TRUE))
for (v in c("x", "m1", "m2", "y")) {
  d[[paste0(v, "_b")]] <- pm(v)
  d[[paste0(v, "_w")]] <- d[[v]] - d[[paste0(v, "_b")]]
}
# Stacking exactly as tests/r/mediation.R.
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
re <- c("m_int", "y_int", "a_x", "b_m")
G0 <- matrix(unlist(rec$random_effects_covariance), 4, 4, byrow = TRUE, dimnames = list(re, re))
s0 <- c(m = rec$residual_sd_by_equation$m, y = rec$residual_sd_by_equation$y)

## (1) nlme apVar ---------------------------------------------------------------------------
fit <- lme(sf, data = st, random = list(id = pdSymm(G0 / s0[["m"]]^2, form = ~ 0 + m_int + y_int + a_x + b_m)),
           weights = varIdent(value = c(y = s0[["y"]] / s0[["m"]]), form = ~ 1 | dv), method = "REML",
           control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 0, msMaxEval = 2000,
                              returnObject = TRUE))  # started at the optimum: nlminb reports "false convergence"
av <- fit$apVar
apvar_note <- if (is.character(av)) av else "ok"
# cov(a_x, b_m) from the natural parameters: sd's are exp(.), correlations (exp(z) - 1) / (exp(z) + 1).
cov_ab_of <- function(p) {
  sd_a <- exp(p[["reStruct.id.sd(a_x)"]])
  sd_b <- exp(p[["reStruct.id.sd(b_m)"]])
  zc <- p[["reStruct.id.cor(a_x,b_m)"]]
  sd_a * sd_b * (exp(zc) - 1) / (exp(zc) + 1)
}
if (is.character(av)) {
  cov_ab_nlme <- getVarCov(fit)["a_x", "b_m"]
  var_apvar <- NA
} else {
  pars <- attr(av, "Pars")
  cov_ab_nlme <- cov_ab_of(pars)
  J <- jacobian(function(p) { names(p) <- names(pars); cov_ab_of(p) }, pars)
  var_apvar <- as.numeric(J %*% av %*% t(J))
}

## (2) numDeriv Hessian of the restricted log-likelihood in gamma ----------------------------
X <- model.matrix(sf, st)
Zc <- as.matrix(st[, re])
zz <- st$z
eq <- as.integer(st$dv)
rows <- split(seq_len(nrow(st)), st$id)
rows <- rows[vapply(rows, length, 1L) > 0]
p <- ncol(X); N <- nrow(X)
tri <- do.call(rbind, lapply(1:4, function(i) cbind(i, 1:i)))  # row-wise lower triangle
G_of <- function(g) {
  G <- matrix(0, 4, 4)
  for (k in seq_len(nrow(tri))) { G[tri[k, 1], tri[k, 2]] <- g[k]; G[tri[k, 2], tri[k, 1]] <- g[k] }
  G
}
reml_ll <- function(g) {
  G <- G_of(g[1:10]); s2 <- g[11:12]
  Q <- matrix(0, p + 1, p + 1); ldv <- 0
  for (r in rows) {
    Zi <- Zc[r, , drop = FALSE]
    V <- Zi %*% G %*% t(Zi) + diag(s2[eq[r]], length(r))
    R <- chol(V)
    ldv <- ldv + 2 * sum(log(diag(R)))
    W <- backsolve(R, cbind(X[r, , drop = FALSE], zz[r]), transpose = TRUE)
    Q <- Q + crossprod(W)
  }
  Rx <- chol(Q[1:p, 1:p])
  beta <- backsolve(Rx, backsolve(Rx, Q[1:p, p + 1], transpose = TRUE))
  rss <- Q[p + 1, p + 1] - sum(Q[1:p, p + 1] * beta)
  -0.5 * ((N - p) * log(2 * pi) + ldv + 2 * sum(log(diag(Rx))) + rss)
}
g0 <- c(G0[tri], s0^2)
ll0 <- reml_ll(g0)
H <- hessian(reml_ll, g0)
Vg <- solve(-H)
k_ab <- which(tri[, 1] == 4 & tri[, 2] == 3)  # G[b_m, a_x]
out <- list(
  meta = list(
    script = "tests/r/mediation_cov_ab.R", r_version = R.version.string,
    packages = list(nlme = as.character(packageVersion("nlme")),
                    numDeriv = as.character(packageVersion("numDeriv"))),
    generated = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
    note = "gamma = (G11, G21, G22, G31, G32, G33, G41, .., G44, sigma_m^2, sigma_y^2), G over (m_int, y_int, a_x, b_m); cov(a_j, b_j) = G43 (gamma index 8, 0-based)"
  ),
  loglik_at_recorded = ll0,
  loglik_recorded = rec$loglik,
  nlme_refit_loglik = as.numeric(logLik(fit)),
  cov_ab = G0["a_x", "b_m"],
  cov_ab_nlme_refit = cov_ab_nlme,
  var_cov_ab_apvar = var_apvar,
  apvar_note = apvar_note,
  var_cov_ab_numderiv = Vg[k_ab, k_ab],
  gamma = g0,
  gamma_vcov_numderiv = unname(lapply(seq_len(nrow(Vg)), function(i) I(Vg[i, ])))
)
write_json(out, file.path(fx, "mediation_cov_ab.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null")
cat("var(cov_ab): apVar", if (is.na(var_apvar)) apvar_note else var_apvar, " numDeriv", Vg[k_ab, k_ab], "\n")
cat("eigenvalues of -H:", signif(eigen(-H, only.values = TRUE)$values, 4), "\n")
