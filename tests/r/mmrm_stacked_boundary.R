# The stacked random-slope model (tests/r/mediation.R section (3)) on trial-small's SFS mediator:
# a boundary fit with local maxima (herstel's first optimizer runs stopped at -1940.48 and
# -1940.43). tests/fixtures/mmrm/stacked_trial_small_sfs.csv is the stacked data as herstel's
# mediation code builds it from tests/fixtures/mmrm/trial_small_scored.csv (columns as in
# mediation.R; waves T0-T2, T0 the reference). Records nlme's REML logLik from its default start
# and the best REML logLik of six random starts of a direct maximization (BFGS, Nelder-Mead, BFGS)
# of the same criterion (G = L L', log residual SDs).
# Run from the repository root:  Rscript tests/r/mmrm_stacked_boundary.R
#   -> tests/fixtures/mmrm/stacked_trial_small_sfs.json  (~1.5 min)
source("tests/r/common.R")
fixture_dir <- "tests/fixtures/mmrm"
suppressPackageStartupMessages(library(nlme))
st <- read.csv(file.path(fixture_dir, "stacked_trial_small_sfs.csv"), stringsAsFactors = FALSE)
st$dv <- factor(st$dv, levels = c("m", "y")); st$id <- factor(st$id)
sf <- z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_T1 + m_T2 + y_T1 + y_T2
f <- tryCatch(lme(sf, data = st, random = list(id = pdSymm(~ 0 + m_int + y_int + a_x + b_m)),
         weights = varIdent(form = ~ 1 | dv), method = "REML",
         control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, msMaxEval = 2000)), error = function(e) e)
nlme_ll <- if (inherits(f, "error")) NA else as.numeric(logLik(f))
cat("nlme default logLik", nlme_ll, "\n")
X <- model.matrix(sf, st); y <- st$z; Z <- as.matrix(st[, c("m_int", "y_int", "a_x", "b_m")])
blocks <- split(seq_len(nrow(X)), st$id, drop = TRUE)
ll <- function(G, sds) {
  N <- nrow(X); p <- ncol(X); XVX <- matrix(0, p, p); XVy <- numeric(p); yVy <- 0; ld <- 0
  for (b in blocks) {
    Zi <- Z[b, , drop = FALSE]; V <- Zi %*% G %*% t(Zi) + diag(sds[as.integer(st$dv[b])]^2, length(b))
    R <- chol(V); ld <- ld + 2 * sum(log(diag(R))); Vi <- chol2inv(R); Xi <- X[b, , drop = FALSE]
    XVX <- XVX + crossprod(Xi, Vi %*% Xi); XVy <- XVy + crossprod(Xi, Vi %*% y[b]); yVy <- yVy + as.numeric(crossprod(y[b], Vi %*% y[b]))
  }
  beta <- solve(XVX, XVy); -0.5 * ((N - p) * log(2 * pi) + ld + as.numeric(determinant(XVX)$modulus) + yVy - sum(XVy * beta))
}
unpack <- function(th) { L <- matrix(0, 4, 4); L[lower.tri(L, diag = TRUE)] <- th[1:10]; list(G = L %*% t(L), sds = exp(th[11:12])) }
f2 <- function(th) { u <- unpack(th); r <- tryCatch(-2 * ll(u$G, u$sds), error = function(e) 1e10); r }
set.seed(1); best <- Inf; all <- numeric(0)
for (s in 1:6) {
  th <- c(rnorm(10, 0, 1) * c(3, 0, 0, 0, 10, 0, 0, 2, 0, 0.5) + c(5, 0,0,0, 10, 0,0, 2, 0, 0.5), log(5), log(15))
  o <- optim(th, f2, method = "BFGS", control = list(maxit = 3000, reltol = 1e-12))
  o <- optim(o$par, f2, method = "Nelder-Mead", control = list(maxit = 20000, reltol = 1e-14))
  o <- optim(o$par, f2, method = "BFGS", control = list(maxit = 3000, reltol = 1e-14))
  cat("start", s, "logLik", sprintf("%.6f", -o$value / 2), "\n"); best <- min(best, o$value); all <- c(all, -o$value / 2)
}
cat("best", sprintf("%.6f", -best / 2), "\n")
meta <- make_meta("tests/r/mmrm_stacked_boundary.R", c("nlme", "jsonlite"), c(
  "REML; lme(z ~ 0 + m_int + y_int + a_x + b_m + cp_x + m_xb + y_xb + y_mb + m_T1 + m_T2 + y_T1 + y_T2, random = list(id = pdSymm(~ 0 + m_int + y_int + a_x + b_m)), weights = varIdent(form = ~ 1 | dv)).",
  "loglik_max: best of the random starts (all agree to 1e-6); loglik_nlme_default: nlme from its default start."))
write_fixture(list(meta = meta, nobs = nrow(st), loglik_nlme_default = nlme_ll, loglik_max = -best / 2,
                   loglik_starts = I(all)), "stacked_trial_small_sfs.json")
