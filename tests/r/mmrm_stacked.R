# The stacked random-slope mediation model of tests/r/mediation.R (mediation.json
# `random_slopes`, copied to tests/fixtures/mmrm/mediation_random_slopes.json) at its exact
# REML / ML maximum. nlme's recorded fits sit on a flat ridge: their gradient is not zero and a
# point with a higher likelihood exists (G[b_m, b_m] 1.9714 vs 1.9702, cov(a_j, b_j) -0.15810 vs
# -0.15802, logLik higher by 6e-8); nlme with tighter tolerances stops with "false convergence".
# Here the same likelihood, V_i = Z_i G Z_i' + diag(sigma_eq^2) with the REML/ML criterion of
# nlme (checked: equal to nlme's logLik at nlme's estimates to 1e-12), is maximized directly:
# BFGS on (log-Cholesky of G, log sigma_m, log sigma_y) from nlme's estimates, then Newton steps
# with numDeriv derivatives until the gradient vanishes.
# Run from the repository root:  Rscript tests/r/mmrm_stacked.R -> tests/fixtures/mmrm/mmrm_stacked.json
source("tests/r/common.R")
fixture_dir <- "tests/fixtures/mmrm"
suppressPackageStartupMessages({library(nlme); library(numDeriv)})
d <- read.csv(file.path(fixture_dir, "mediation_long.csv"), stringsAsFactors = FALSE)
d$wave <- factor(d$wave, levels = c("T1","T2","T3")); d$id <- factor(d$id, levels = sort(unique(d$id)))
pm <- function(v) ave(d[[v]], d$id, FUN = function(z) mean(z, na.rm = TRUE))
for (v in c("x", "m1", "m2", "y")) { d[[paste0(v, "_b")]] <- pm(v); d[[paste0(v, "_w")]] <- d[[v]] - d[[paste0(v, "_b")]] }
dm <- d[!is.na(d$m1) & !is.na(d$x), ]; dy <- d[!is.na(d$y) & !is.na(d$m1) & !is.na(d$x), ]
mk <- function(dd, eq) {
  one <- as.numeric(eq == "m"); two <- as.numeric(eq == "y")
  data.frame(id = dd$id, dv = eq, z = if (eq == "m") dd$m1 else dd$y, m_int = one, y_int = two,
             a_x = one * dd$x_w, m_xb = one * dd$x_b, b_m = two * dd$m1_w, cp_x = two * dd$x_w, y_mb = two * dd$m1_b, y_xb = two * dd$x_b,
             m_T2 = one * (dd$wave == "T2"), m_T3 = one * (dd$wave == "T3"), y_T2 = two * (dd$wave == "T2"), y_T3 = two * (dd$wave == "T3"))
}
st <- rbind(mk(dm, "m"), mk(dy, "y")); st$dv <- factor(st$dv, levels = c("m", "y")); st <- st[order(st$id, st$dv), ]
sf <- z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_T2 + m_T3 + y_T2 + y_T3
g <- fromJSON("tests/fixtures/mmrm/mediation_random_slopes.json")$random_slopes$fits

X <- model.matrix(sf, st); y <- st$z; Z <- as.matrix(st[, c("m_int", "y_int", "a_x", "b_m")])
blocks <- split(seq_len(nrow(X)), st$id, drop = TRUE)
gls_at <- function(G, sds, reml) {
  N <- nrow(X); p <- ncol(X)
  XVX <- matrix(0, p, p); XVy <- numeric(p); yVy <- 0; ld <- 0
  for (b in blocks) {
    Zi <- Z[b, , drop = FALSE]
    V <- Zi %*% G %*% t(Zi) + diag(sds[as.integer(st$dv[b])]^2, length(b))
    R <- chol(V); ld <- ld + 2 * sum(log(diag(R)))
    Vi <- chol2inv(R); Xi <- X[b, , drop = FALSE]
    XVX <- XVX + crossprod(Xi, Vi %*% Xi); XVy <- XVy + crossprod(Xi, Vi %*% y[b])
    yVy <- yVy + as.numeric(crossprod(y[b], Vi %*% y[b]))
  }
  beta <- solve(XVX, XVy); rss <- yVy - sum(XVy * beta)
  dev <- if (reml) (N - p) * log(2 * pi) + ld + as.numeric(determinant(XVX)$modulus) + rss
         else N * log(2 * pi) + ld + rss
  list(loglik = -dev / 2, beta = as.numeric(beta), vcov = solve(XVX))
}
unpack <- function(th) {
  L <- matrix(0, 4, 4); L[lower.tri(L, diag = TRUE)] <- th[1:10]; diag(L) <- exp(diag(L))
  list(G = L %*% t(L), sds = exp(th[11:12]))
}
pack <- function(G, sds) {
  L <- t(chol(G)); diag(L) <- log(diag(L)); c(L[lower.tri(L, diag = TRUE)], log(sds))
}
rec <- fromJSON(file.path(fixture_dir, "mediation_random_slopes.json"))$random_slopes$fits
out <- list()
for (meth in c("REML", "ML")) {
  reml <- meth == "REML"
  r <- rec[[tolower(meth)]]
  G0 <- r$random_effects_covariance; s0 <- unlist(r$residual_sd_by_equation)
  f <- function(th) { u <- unpack(th); -2 * gls_at(u$G, u$sds, reml)$loglik }
  th <- pack(G0, s0)
  o <- optim(th, f, method = "BFGS", control = list(reltol = 1e-15, maxit = 2000))
  th <- o$par
  for (it in 1:10) {
    g <- numDeriv::grad(f, th, method.args = list(d = 1e-4))
    H <- numDeriv::hessian(f, th, method.args = list(d = 1e-3))
    step <- solve(H, g)
    if (f(th - step) <= f(th) + 1e-9) th <- th - step
    if (max(abs(step)) < 1e-10) break
  }
  u <- unpack(th); at <- gls_at(u$G, u$sds, reml)
  grad <- numDeriv::grad(f, th, method.args = list(d = 1e-4))
  terms <- colnames(X)
  out[[tolower(meth)]] <- list(
    method = meth,
    loglik_nlme_recorded = r$loglik,
    loglik_at_nlme_estimates = gls_at(G0, s0, reml)$loglik,
    loglik = at$loglik,
    max_abs_gradient_theta = max(abs(grad)),
    coefficients = rows(data.frame(term = terms, estimate = at$beta, se = sqrt(diag(at$vcov)),
                                   stringsAsFactors = FALSE)),
    random_effects_terms = I(colnames(Z)),
    random_effects_covariance = unname(lapply(1:4, function(i) I(unname(u$G[i, ])))),
    residual_sd_by_equation = list(m = u$sds[[1]], y = u$sds[[2]]),
    average_indirect = at$beta[[which(terms == "a_x")]] * at$beta[[which(terms == "b_m")]] + u$G[3, 4]
  )
  cat(meth, sprintf("%.10f (nlme %.10f)", at$loglik, r$loglik), "grad", max(abs(grad)), "\n")
}
meta <- make_meta("tests/r/mmrm_stacked.R", c("nlme", "numDeriv", "jsonlite"), c(
  "Data: mediation_long.csv (copy of tests/fixtures/r/mediation_long.csv), stacked as tests/r/mediation.R section (3).",
  "Fits: the exact maximum of nlme's lme REML/ML criterion for lme(z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_T2 + m_T3 + y_T2 + y_T3, random = list(id = pdSymm(~ 0 + m_int + y_int + a_x + b_m)), weights = varIdent(form = ~ 1 | dv)); see the header of the script. se = sqrt(diag((X'V^-1 X)^-1)) without nlme's ML N / (N - p) scaling.",
  "loglik_at_nlme_estimates reproduces nlme's recorded logLik (same criterion); loglik is higher (nlme stops on a flat ridge)."
))
write_fixture(c(list(meta = meta), out), "mmrm_stacked.json")
