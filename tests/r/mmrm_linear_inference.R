# Inference for gls fits on a LINEAR covariance parametrization (sourced by mmrm.R and
# mmrm_trial_small.R): accurate Satterthwaite df and Kenward-Roger with pbkrtest's own code.
# Supersedes tests/r/linear_inference.R: the Hessian of the deviance, its gradient and the
# gradient of L Phi L' are ANALYTIC here (V = sum gamma_k G_k, P = V^-1 - V^-1 X Phi X' V^-1):
#   REML: d_k = tr(P G_k) - y'P G_k P y,  H_kl = -tr(P G_k P G_l) + 2 y'P G_k P G_l P y
#   ML:   V^-1 in place of P in the traces,  dPhi/dgamma_k = Phi X'V^-1 G_k V^-1 X Phi.
# numDeriv's default Richardson steps (d = 0.1, i.e. 10% of each gamma) made individual Hessian
# entries wrong by up to 0.5% (trial-small mhrm UN: df 117.11 instead of 118.13; Orthodont CS ML
# 49.7654 instead of 49.7642); numDeriv with d = 1e-3 is kept as a check (hessian_check).
suppressPackageStartupMessages({
  library(nlme)
  library(pbkrtest)
  library(numDeriv)
})

## ---- Kenward-Roger and accurate Satterthwaite for gls --------------------------------------------
## emmeans 1.8.4 has no Kenward-Roger for gls, its gls Satterthwaite rests on nlme's numerical apVar
## (errors of a few percent, see meta), and the mmrm package is not installable here. So, for the
## structures that are LINEAR in a covariance parametrization gamma (Sigma_full = sum gamma_k G_k):
##   unstructured: gamma = the covariance elements s11, s21, ..., sTT (lower triangle by column);
##   compound_symmetry: gamma = (tau = common covariance, sigma2 = variance - covariance);
##   toeplitz: gamma = (c0, c1, ..., c_{T-1}) covariances at lag 0, 1, ... of the wave index,
## 1. gamma is read from the gls fit and polished by Newton steps on the REML (ML) deviance
##    d(gamma) = log|S| [+ log|X'S^-1 X|] + r'S^-1 r (S block-diagonal, block of participant i =
##    Sigma_full at the waves i was observed, r = GLS residuals), derivatives by numDeriv (Richardson);
## 2. Satterthwaite (the lmerTest definition): A = 2 H^-1 (H = Hessian of d), f = L Phi(gamma) L',
##    Phi = (X'S^-1 X)^-1, df = 2 f^2 / (g'A g), g = grad f; invariant to the parametrization;
## 3. Kenward-Roger with pbkrtest's own code: pbkrtest:::vcovAdj_internal(Phi, SigmaG, X) with the
##    n x n S and G_k = dS/dgamma_k, df per contrast pbkrtest::Lb_ddf(L, Phi, PhiA), SE = sqrt(L PhiA L').
##    The linear parametrization makes KR's second-derivative term vanish, as in SAS DDFM=KR for
##    TYPE=UN/CS/TOEP. Validated against pbkrtest on the equivalent lmer fit (kr_validation).
lin_G <- function(structure, nw) {
  E <- function(a, b) { M <- matrix(0, nw, nw); M[a, b] <- 1; M[b, a] <- 1; M }
  if (structure == "unstructured") {
    G <- list(); nms <- character(0)
    for (b in seq_len(nw)) for (a in b:nw) { G[[length(G) + 1]] <- E(a, b); nms <- c(nms, sprintf("s%d%d", a, b)) }
  } else if (structure == "compound_symmetry") {
    G <- list(matrix(1, nw, nw), diag(nw)); nms <- c("tau", "sigma2")
  } else if (structure == "toeplitz") {
    G <- lapply(0:(nw - 1), function(l) (abs(outer(1:nw, 1:nw, "-")) == l) * 1); nms <- paste0("c", 0:(nw - 1))
  } else stop("no linear parametrization for ", structure)
  names(G) <- nms
  G
}
lin_gamma <- function(vc, structure) {
  nw <- nrow(vc)
  if (structure == "unstructured") {
    g <- c(); for (b in seq_len(nw)) for (a in b:nw) g <- c(g, vc[a, b]); g
  } else if (structure == "compound_symmetry") c(vc[1, 2], vc[1, 1] - vc[1, 2])
  else vc[1, ]
}
full_cov <- function(fit, data) {
  nw <- max(data$widx)
  vc <- unclass(getVarCov(fit, individual = names(which(table(droplevels(data$id)) == nw))[1]))
  attr(vc, "group.levels") <- NULL
  vc
}
# vcs: named list level -> T x T covariance; by: level of each row (one covariance per level).
lin_setup <- function(vcs, data, structure, xform, y, by = rep(names(vcs)[1], nrow(data))) {
  nw <- max(data$widx)
  Gs <- list(); glev <- character(0); gamma <- numeric(0)
  for (lev in names(vcs)) {
    G1 <- lin_G(structure, nw)
    pre <- if (length(vcs) > 1) paste0(lev, ".") else ""
    Gs <- c(Gs, setNames(G1, paste0(pre, names(G1))))
    glev <- c(glev, rep(lev, length(G1)))
    gamma <- c(gamma, setNames(lin_gamma(vcs[[lev]], structure), paste0(pre, names(G1))))
  }
  X <- model.matrix(xform, data)
  blocks <- split(seq_len(nrow(data)), data$id, drop = TRUE)
  key <- vapply(blocks, function(b) paste(by[b[1]], paste(data$widx[b], collapse = ",")), "")
  groups <- lapply(split(blocks, key), function(bs) list(lev = by[bs[[1]][1]], w = data$widx[bs[[1]]],
                                                         rows = do.call(rbind, bs)))
  list(nw = nw, Gs = Gs, glev = glev, gamma = gamma, X = X, y = y, by = by, blocks = blocks,
       groups = groups, data = data, structure = structure)
}
lin_setup_fit <- function(fit, data, structure, xform)
  lin_setup(list(all = full_cov(fit, data)), data, structure, xform, as.numeric(nlme::getResponse(fit)))
lin_parts <- function(st, gam) {
  Sf <- lapply(setNames(nm = unique(st$glev)), function(lev) {
    k <- which(st$glev == lev)
    Reduce(`+`, Map(`*`, gam[k], st$Gs[k]))
  })
  k <- ncol(st$X); XtSX <- matrix(0, k, k); XtSy <- numeric(k); ytSy <- 0; logdet <- 0
  for (g in st$groups) {
    S <- Sf[[g$lev]][g$w, g$w, drop = FALSE]; R <- chol(S); Li <- backsolve(R, diag(nrow(S)), transpose = TRUE)
    logdet <- logdet + nrow(g$rows) * 2 * sum(log(diag(R)))
    for (i in seq_len(nrow(g$rows))) {
      r <- g$rows[i, ]
      Xs <- Li %*% st$X[r, , drop = FALSE]; ys <- Li %*% st$y[r]
      XtSX <- XtSX + crossprod(Xs); XtSy <- XtSy + crossprod(Xs, ys); ytSy <- ytSy + sum(ys^2)
    }
  }
  beta <- solve(XtSX, XtSy)
  list(logdetS = logdet, XtSX = XtSX, rss = ytSy - sum(XtSy * beta), beta = beta)
}
lin_dev <- function(st, gam, reml) {
  p <- lin_parts(st, gam)
  p$logdetS + p$rss + if (reml) as.numeric(determinant(p$XtSX)$modulus) else 0
}
lin_big <- function(st) {
  n <- nrow(st$X)
  lapply(seq_along(st$Gs), function(k) {
    Gk <- st$Gs[[k]]; lev <- st$glev[[k]]
    M <- matrix(0, n, n)
    for (b in st$blocks) if (st$by[b[1]] == lev) { w <- st$data$widx[b]; M[b, b] <- Gk[w, w] }
    M
  })
}
# Analytic gradient and Hessian of the deviance (dense n x n; n <= a few hundred here).
lin_derivs <- function(st, big, gam, reml) {
  V <- Reduce(`+`, Map(`*`, gam, big)); Vi <- solve(V)
  X <- st$X; y <- st$y
  Phi <- solve(crossprod(X, Vi %*% X))
  P <- Vi - Vi %*% X %*% Phi %*% t(X) %*% Vi
  Pt <- if (reml) P else Vi
  Py <- P %*% y
  k <- length(big)
  PG <- lapply(big, function(G) Pt %*% G)
  GPy <- lapply(big, function(G) G %*% Py)
  grad <- vapply(seq_len(k), function(a) sum(diag(PG[[a]])) - sum(Py * GPy[[a]]), 0)
  H <- matrix(0, k, k)
  for (a in seq_len(k)) for (b in a:k) {
    H[a, b] <- H[b, a] <- -sum(PG[[a]] * t(PG[[b]])) + 2 * as.numeric(t(GPy[[a]]) %*% P %*% GPy[[b]])
  }
  XV <- Vi %*% X
  dPhi <- lapply(big, function(G) Phi %*% crossprod(XV, G %*% XV) %*% Phi)
  list(grad = grad, H = H, Phi = Phi, dPhi = dPhi, beta = as.numeric(Phi %*% crossprod(XV, y)))
}
lin_infer <- function(st, Ls, label, reml) {
  dev <- function(gm) lin_dev(st, gm, reml)
  big <- lin_big(st)
  g0 <- st$gamma; gam <- g0
  for (it in 1:20) {  # Newton polish with the analytic derivatives
    dd <- lin_derivs(st, big, gam, reml)
    step <- solve(dd$H, dd$grad)
    gam <- gam - step
    if (max(abs(step)) < 1e-12 * max(abs(gam))) break
  }
  dd <- lin_derivs(st, big, gam, reml)
  H <- dd$H; A <- 2 * solve(H)
  Hn <- numDeriv::hessian(dev, gam, method.args = list(d = 1e-3, r = 4))
  Phi <- dd$Phi; beta <- setNames(dd$beta, colnames(st$X))
  sat_df <- function(L) {
    g <- vapply(dd$dPhi, function(D) as.numeric(L %*% D %*% L), 0)
    2 * as.numeric(L %*% Phi %*% L)^2 / as.numeric(t(g) %*% A %*% g)
  }
  out <- list(
    method = if (reml) "REML" else "ML", parametrization = st$structure,
    gamma_gls = as.list(g0), gamma = as.list(gam),
    deviance_gls = dev(g0), deviance = dev(gam),
    max_abs_gradient_gls = max(abs(lin_derivs(st, big, g0, reml)$grad)),
    max_abs_gradient = max(abs(dd$grad)),
    hessian_check = max(abs(Hn - H)) / max(abs(H)),
    vcov_gamma = unname(lapply(seq_len(nrow(A)), function(i) I(unname(A[i, ])))),
    coefficients = rows(do.call(rbind, lapply(seq_along(beta), function(k) {
      L <- numeric(length(beta)); L[k] <- 1
      data.frame(term = names(beta)[k], estimate = beta[[k]], se = sqrt(Phi[k, k]),
                 satterthwaite_df = sat_df(L), stringsAsFactors = FALSE)
    }))),
    contrasts_satterthwaite = rows(do.call(rbind, lapply(names(Ls), function(w) {
      L <- Ls[[w]]; est <- sum(L * beta); se <- sqrt(as.numeric(L %*% Phi %*% L)); df <- sat_df(L)
      data.frame(wave = w, contrast = label, estimate = est, se = se, df = df,
                 lower_cl = est - qt(0.975, df) * se, upper_cl = est + qt(0.975, df) * se,
                 t = est / se, p = 2 * pt(-abs(est / se), df), stringsAsFactors = FALSE)
    })))
  )
  if (reml) {
    bigs <- lapply(big, function(M) Matrix::Matrix(M, sparse = TRUE))
    Sigma <- Reduce(`+`, Map(`*`, gam, bigs))
    PhiA <- pbkrtest:::vcovAdj_internal(Phi, list(Sigma = Sigma, G = bigs, n.ggamma = length(bigs)), st$X)
    P <- attr(PhiA, "P"); W <- attr(PhiA, "W")
    PhiA <- as.matrix(PhiA); attr(PhiA, "P") <- P; attr(PhiA, "W") <- W
    out$kenward_roger <- list(
      vcov_adjusted = unname(lapply(seq_len(nrow(PhiA)), function(i) I(unname(PhiA[i, 1:ncol(PhiA)])))),
      coefficients = kr_coefs(beta, Phi, PhiA),
      contrasts = kr_contrasts(beta, Phi, PhiA, Ls, label))
  }
  out
}
kr_contrasts <- function(beta, Phi, PhiA, Ls, label) {
  rows(do.call(rbind, lapply(names(Ls), function(w) {
    L <- matrix(Ls[[w]], nrow = 1)
    est <- sum(L * beta); se <- sqrt(as.numeric(L %*% PhiA %*% t(L)))
    df <- pbkrtest::Lb_ddf(L, Phi, PhiA)
    data.frame(wave = w, contrast = label, estimate = est, se = se, df = df,
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
