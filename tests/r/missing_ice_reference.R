# Golden values for the missing-data sensitivity analysis with the intercurrent event (ICE) taken
# from a DROPOUT DATE and for PER-ARM deltas (issue 17, points 2 and 3): conditional mean imputation
# with jackknife (Wolbers et al. 2022, Pharm Stat 21:1246; rbmi method_condmean(type = "jackknife")),
# reference-based strategies of Carpenter, Roger & Kenward (2013), section 4.3.
#
# Same data as tests/r/missing_reference.R (tests/fixtures/missing/data.csv, read as is), plus a
# participants table tests/fixtures/missing/ice.csv (written here, fixed seed): randomized_on and
# discontinued_on (empty = no ICE) for every participant. Waves T1, T2, T3 at 6, 12, 18 months; the
# export has no assessment dates, so a wave's date is the nominal one, randomized_on +
# round(months x 30.4375) days. A wave is post-ICE when its date is after discontinued_on; every
# later wave too. Rules (rbmi vignette("stat_specs"), "Intercurrent events"; rbmi's data_ice):
#   * MAR: observed post-ICE values are kept (rbmi's default for MAR strategies): the imputation
#     model and the analysis are those of tests/r/missing_reference.R (its MAR numbers hold).
#   * J2R, CR, CIR and every delta-adjusted analysis (MAR too): observed post-ICE values are set
#     aside ("excluded from the imputation model and imputed"); the imputation model is refitted
#     to the remaining data, post-ICE values imputed by the strategy, delta added to them.
#   * Missing values of participants without an ICE (or before it): MAR.
# Deltas (score units, wave T3, strategies JR and MAR, rbmi apply_delta: added after imputation,
# before the analysis, in the full data and every jackknife sample):
#   multipliers: IMR post-ICE values + delta, TAU post-ICE values + 0.5 delta; grid -15..5 by 0.5
#   fixed:       IMR + delta, TAU + (-2) at every grid point; grid -15..5 by 0.5
#   grid2d:      IMR + d_IMR (-12..4 by 2), TAU + d_TAU (-4..4 by 2), every cell
# Tipping point: the first grid interval from delta = 0 (towards the side that shrinks the contrast)
# where p crosses 0.05, linear interpolation in p; exact: root of p(delta) = 0.05 there.
#
# The model-fitting functions (gls + Newton polish of the REML optimum, strategies, conditional
# mean, ANCOVA) are those of tests/r/missing_reference.R, evaluated from its section 2-3 text
# (between "ctl <- glsControl" and "## ---- 4."), so both references use one implementation.
#
# Run from the repository root:  Rscript tests/r/missing_ice_reference.R   (~1-2 min: 201 gls fits)
# Writes tests/fixtures/missing/ice.csv and tests/fixtures/missing/ice_reference.json.
source("tests/r/common.R")
fixture_dir <- "tests/fixtures/missing"
suppressPackageStartupMessages(library(nlme))

waves <- c("T1", "T2", "T3")
months <- c(6, 12, 18)
J <- length(waves)

## ---- 1. Data and the ICE dates -----------------------------------------------------------------------
d <- read.csv(file.path(fixture_dir, "data.csv"), stringsAsFactors = FALSE, na.strings = "")
d$arm <- factor(d$arm, levels = c("TAU", "IMR"))
d$wave <- factor(d$wave, levels = waves)
d$widx <- as.integer(d$wave)
d$id <- factor(d$participant_id, levels = sort(unique(d$participant_id)))
d <- d[order(d$id, d$widx), ]
ids <- levels(d$id)
n <- length(ids)
pp <- d[d$widx == 1, c("participant_id", "arm", "baseline")]
Y_obs <- matrix(d$y, n, J, byrow = TRUE, dimnames = list(ids, waves))

set.seed(20261218)
rand <- as.Date("2024-01-01") + sample(0:365, n, replace = TRUE)
disc <- rep(NA_character_, n)
who <- sort(sample(n, 60))
# discontinuation between 1 and 21 months after randomization (some after T3: no ICE in follow-up)
disc[who] <- format(rand[who] + round(runif(60, 30, 21 * 30.4375)))
disc[who[1:2]] <- "NA"   # written as NA: no ICE
ice_tab <- data.frame(participant_id = ids, randomized_on = format(rand), discontinued_on = disc,
                      stringsAsFactors = FALSE)
write.csv(ice_tab, file.path(fixture_dir, "ice.csv"), row.names = FALSE, na = "")
cat("wrote", file.path(fixture_dir, "ice.csv"), "\n")
ice_tab <- read.csv(file.path(fixture_dir, "ice.csv"), stringsAsFactors = FALSE,
                    na.strings = c("", "NA"))
stopifnot(identical(ice_tab$participant_id, ids))
wave_date <- outer(as.numeric(as.Date(ice_tab$randomized_on)), round(months * 30.4375), "+")
ice_date <- as.numeric(as.Date(ice_tab$discontinued_on))
# first follow-up wave whose date is after the ICE date; Inf = no ICE (no date, or after T3)
ice <- vapply(seq_len(n), function(i) {
  if (is.na(ice_date[i])) return(Inf)
  k <- which(wave_date[i, ] > ice_date[i])
  if (length(k)) min(k) else Inf
}, 0)
ice_after_last <- !is.na(ice_date) & is.infinite(ice)
post_ice <- outer(ice, seq_len(J), "<=")
dimnames(post_ice) <- list(ids, waves)
set_aside <- post_ice & !is.na(Y_obs)

## ---- 2. The functions of missing_reference.R ------------------------------------------------------------
src <- readLines("tests/r/missing_reference.R")
a <- grep("^ctl <- glsControl", src); b <- grep("^## ---- 4\\.", src) - 1
stopifnot(length(a) == 1, length(b) == 1, b > a)
eval(parse(text = src[a:b]))

## The data with the post-ICE values set aside: what every non-MAR and every delta analysis uses.
d$y[as.vector(t(set_aside))] <- NA
Ymat <- Y_obs; Ymat[set_aside] <- NA
stopifnot(all(is.na(matrix(d$y, n, J, byrow = TRUE)) == is.na(Ymat)))

jack <- function(point, th) {
  se <- sqrt((length(th) - 1) / length(th) * sum((th - mean(th))^2))
  z <- point / se
  list(est = point, se = se, lower = point - qnorm(0.975) * se, upper = point + qnorm(0.975) * se,
       z = z, p = 2 * pnorm(-abs(z)))
}
## shift of post-ICE values: IMR by d_imr, TAU by d_tau (score units)
add_delta2 <- function(Yc, sel, d_imr, d_tau) {
  arm <- pp$arm[sel]
  sh <- post_ice[sel, , drop = FALSE] * ifelse(arm == "IMR", d_imr, d_tau)
  Yc + sh
}
deltas <- seq(-15, 5, by = 0.5)
ax_imr <- seq(-12, 4, by = 2); ax_tau <- seq(-4, 4, by = 2)
variants <- list(
  multipliers = function(dl) c(dl, 0.5 * dl),
  fixed = function(dl) c(dl, -2)
)
delta_strats <- c("JR", "MAR")

run <- function(sel, pars) {
  out <- list(est = list(), d1 = list(), d2 = list())
  for (s in strategies) {
    ci <- impute(pars, sel, s)$completed
    out$est[[s]] <- analyse(ci, sel)$trt
    if (s %in% delta_strats) {
      out$d1[[s]] <- lapply(variants, function(v) vapply(deltas, function(dl) {
        sh <- v(dl); analyse(add_delta2(ci, sel, sh[1], sh[2]), sel)$trt[J] }, 0))
      out$d2[[s]] <- outer(ax_imr, ax_tau, Vectorize(function(di, dt)
        analyse(add_delta2(ci, sel, di, dt), sel)$trt[J]))
    }
  }
  out
}

## ---- 3. Full data, jackknife ----------------------------------------------------------------------------
t0 <- Sys.time()
all_sel <- seq_len(n)
P <- fit_pars(all_sel)
full <- run(all_sel, P)
jk <- vector("list", n)
grad <- numeric(n)
for (i in seq_len(n)) {
  sel <- setdiff(all_sel, i)
  Pi <- fit_pars(sel, H = P$polish$H)
  grad[i] <- Pi$polish$max_abs_gradient
  jk[[i]] <- run(sel, Pi)
}
elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
cat(sprintf("jackknife done in %.1f s\n", elapsed))

## ---- 4. Records -------------------------------------------------------------------------------------------
est_rec <- lapply(setNames(nm = strategies), function(s) rows(do.call(rbind, lapply(seq_len(J), function(w) {
  j <- jack(full$est[[s]][w], vapply(jk, function(x) x$est[[s]][w], 0))
  data.frame(wave = waves[w], estimate = j$est, se_jackknife = j$se, lower_95 = j$lower,
             upper_95 = j$upper, p = j$p, stringsAsFactors = FALSE)
}))))
tip <- function(dl, p, dir) {
  k0 <- which(dl == 0); k <- k0
  repeat {
    kn <- k + dir
    if (kn < 1 || kn > length(dl)) return(NA_real_)
    if ((p[k] - 0.05) * (p[kn] - 0.05) <= 0 && p[k] != p[kn])
      return(dl[k] + (0.05 - p[k]) * (dl[kn] - dl[k]) / (p[kn] - p[k]))
    k <- kn
  }
}
## one 1-D grid: estimates e (length of dl), leave-one-out estimates th (n x length(dl)); linear in
## delta, so the exact root uses the line through the first two grid points
grid_rec <- function(dl, e, th) {
  tab <- do.call(rbind, lapply(seq_along(dl), function(k) {
    j <- jack(e[k], th[, k])
    data.frame(delta = dl[k], estimate = j$est, se_jackknife = j$se, lower_95 = j$lower,
               upper_95 = j$upper, p = j$p, stringsAsFactors = FALSE)
  }))
  k0 <- which(dl == 0)
  slope <- (e[2] - e[1]) / (dl[2] - dl[1])
  dir <- if (e[k0] * slope > 0) -1 else 1
  ti <- if (tab$p[k0] < 0.05) tip(dl, tab$p, dir) else NA_real_
  pfun <- function(x) {
    ee <- e[1] + (x - dl[1]) * slope
    tt <- th[, 1] + (x - dl[1]) * (th[, 2] - th[, 1]) / (dl[2] - dl[1])
    jack(ee, tt)$p - 0.05
  }
  te <- if (is.na(ti)) NA_real_ else uniroot(pfun, ti + c(-0.5, 0.5), tol = 1e-12)$root
  list(table = rows(tab), tipping_delta_interpolated = ti, tipping_delta_exact = te)
}
delta_rec <- lapply(setNames(nm = delta_strats), function(s) {
  one_d <- lapply(setNames(nm = names(variants)), function(v) {
    th <- t(vapply(jk, function(x) x$d1[[s]][[v]], numeric(length(deltas))))
    grid_rec(deltas, full$d1[[s]][[v]], th)
  })
  two_d <- lapply(seq_along(ax_tau), function(c) {
    th <- t(vapply(jk, function(x) x$d2[[s]][, c], numeric(length(ax_imr))))
    c(list(delta_tau = ax_tau[c]), grid_rec(ax_imr, full$d2[[s]][, c], th))
  })
  c(one_d, list(grid2d = list(imr_deltas = I(ax_imr), tau_deltas = I(ax_tau), columns = two_d)))
})
counts <- rows(do.call(rbind, lapply(c("TAU", "IMR"), function(a) {
  k <- pp$arm == a
  data.frame(arm = a, with_ice = sum(is.finite(ice[k])), post_ice_observed = sum(set_aside[k, ]),
             ice_after_last_wave = sum(ice_after_last[k]),
             ice_t1 = sum(ice[k] == 1), ice_t2 = sum(ice[k] == 2), ice_t3 = sum(ice[k] == 3),
             stringsAsFactors = FALSE)
})))
meta <- make_meta("tests/r/missing_ice_reference.R", c("nlme", "jsonlite"), c(
  "Data: data.csv as in missing_reference.R; ice.csv: randomized_on, discontinued_on (empty or NA = no ICE). Waves T1, T2, T3 at 6, 12, 18 months; nominal wave date = randomized_on + round(months * 30.4375) days; ICE wave = first wave whose date > discontinued_on (none if after T3).",
  "MAR keeps observed post-ICE values (= missing_reference.R's MAR). JR, CR, CIR and all delta analyses: post-ICE observed values set aside (removed from the imputation model, imputed); the model refitted; jackknife over all 200 participants on those data.",
  "estimates: every strategy on the data with the post-ICE values set aside; its MAR row is the MAR of the delta analyses (delta = 0), not the reported MAR, which keeps them (= missing_reference.R's MAR estimates).",
  "Deltas in score units at T3 for JR and MAR: multipliers (IMR + delta, TAU + 0.5 delta), fixed (IMR + delta, TAU - 2), grid2d (IMR -12..4 by 2 x TAU -4..4 by 2; per TAU delta a 1-D grid over the IMR delta).",
  "Tipping: from delta = 0 in the direction that shrinks the contrast, first grid interval where p crosses 0.05, linear interpolation in p; exact: uniroot of p(delta) - 0.05 (estimates linear in delta)."
))
out <- list(
  meta = meta,
  data = list(counts = counts, set_aside_total = sum(set_aside),
              ice_visit = I(ifelse(is.finite(ice), waves[pmin(ice, J)], "none"))),
  mmrm_set_aside = list(covariance = lapply(seq_len(J), function(i) I(unname(P$Sigma[i, ]))),
                        coefficients = as.list(P$beta),
                        max_abs_gradient = P$polish$max_abs_gradient,
                        max_abs_gradient_jackknife = max(grad)),
  estimates = est_rec,
  delta = delta_rec,
  elapsed_seconds = elapsed
)
write_fixture(out, "ice_reference.json")
