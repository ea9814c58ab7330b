# Golden values of the per-period admission analysis ([admissions] model = "per_period", issue 15
# point 3) on trial-small. Run from the repository root:  Rscript tests/r/admissions_per_period.R
# Writes tests/fixtures/admissions_per_period/{periods.csv, reference.json}.
#
# The table (one row per participant x period between consecutive waves) follows
# src/admissions/periods.rs and tests/r/glmm.R: period k = days m_(k-1) < d <= m_k after
# randomization at the nominal days m = months x 365.25 / 12; admissions = admissions starting in
# the period; bed_days = days in hospital in it (admission day counted, discharge day not, an
# open stay to the end); exposure = (period days - bed days) / 365.25 person-years at risk;
# prior = admissions starting 365..1 days before randomization; any_admission = admissions > 0.
# Rows without a day at risk would be left out (none in trial-small).
#
# Models (glmmTMB, tight tolerances: on these data its optimum has a higher log-likelihood than
# glmer's with tight tolerances, by 1.2e-4 for the logistic model; glmer's tight fits are
# recorded beside; the default fits' log-likelihoods too):
#   nb:       glmmTMB(admissions ~ arm * period + prior + offset(log(exposure)) +
#                     (1 | participant_id), family = nbinom2)  (runs to theta = infinity here)
#   poisson:  the same with family = poisson (the NB's limit: the reference for SEs and intervals)
#   logistic: glmmTMB(any_admission ~ arm * period + prior + (1 | participant_id), binomial)
# Effects: emmeans(m, pairwise ~ arm | period) (ratio per period) and emmeans(m, pairwise ~ arm)
# (averaged over period) on the link scale, reversed to intervention/reference, exponentiated.
# Marginal rates and risks: g-computation over the participants' prior counts and integration
# over the random intercept, written out here (rate: exp(sigma^2/2) mean_i exp(x_i'b); risk:
# mean_i of integrate(plogis(x_i'b + sigma z) dnorm(z))), with delta-method SEs from numDeriv
# gradients in (sigma, beta) and glmmTMB's covariance of (sigma, beta) (vcov_sigma_beta).
source("tests/r/common.R")
suppressPackageStartupMessages({library(glmmTMB); library(lme4); library(emmeans); library(numDeriv)})
out_dir <- "tests/fixtures/admissions_per_period"
ts_dir <- "tests/fixtures/trial-small/export"
toml <- readLines(file.path(ts_dir, "study.toml"))
arms <- eval(parse(text = sub("^arms\\s*=\\s*\\[(.*)\\]\\s*$", "c(\\1)", grep("^arms\\s*=", toml, value = TRUE))))
intervention <- arms[length(arms)]
wave_labels <- sub('^label\\s*=\\s*"(.*)"\\s*$', "\\1", grep("^label\\s*=", toml, value = TRUE))
wave_months <- as.numeric(sub("^months\\s*=\\s*", "", grep("^months\\s*=", toml, value = TRUE)))
nominal <- wave_months * 365.25 / 12; K <- length(nominal) - 1
periods <- data.frame(period = paste0(wave_labels[-length(wave_labels)], "_", wave_labels[-1]),
  first_day = floor(nominal[-length(nominal)]) + 1, last_day = floor(nominal[-1]), stringsAsFactors = FALSE)
periods$period_days <- periods$last_day - periods$first_day + 1
pp <- read.csv(file.path(ts_dir, "participants.csv"), stringsAsFactors = FALSE)
adm <- read.csv(file.path(ts_dir, "admissions.csv"), stringsAsFactors = FALSE)
stopifnot(all(adm$participant_id %in% pp$participant_id))
rand <- setNames(as.Date(pp$randomized_on), pp$participant_id)
adm$a <- as.integer(as.Date(adm$admitted_on) - rand[adm$participant_id])
adm$e <- ifelse(is.na(adm$discharged_on) | adm$discharged_on == "", NA_integer_,
                as.integer(as.Date(adm$discharged_on) - rand[adm$participant_id]))
tab <- do.call(rbind, lapply(seq_len(nrow(pp)), function(i) {
  id <- pp$participant_id[i]; s <- adm[adm$participant_id == id, ]
  do.call(rbind, lapply(seq_len(K), function(k) {
    lo <- periods$first_day[k]; hi <- periods$last_day[k]
    last_occ <- ifelse(is.na(s$e), Inf, s$e - 1)
    bd <- sum(pmax(0, pmin(last_occ, hi) - pmax(s$a, lo) + 1))
    data.frame(participant_id = id, arm = pp$arm[i], period = periods$period[k],
      admissions = sum(s$a >= lo & s$a <= hi), bed_days = as.integer(bd),
      days_at_risk = as.integer(periods$period_days[k] - bd),
      prior = sum(s$a >= -365 & s$a <= -1), stringsAsFactors = FALSE)
  }))}))
n_no_risk <- sum(tab$days_at_risk <= 0)
tab <- tab[tab$days_at_risk > 0, ]
tab$any_admission <- as.integer(tab$admissions > 0)
write.csv(tab, file.path(out_dir, "periods.csv"), row.names = FALSE)
tab <- read.csv(file.path(out_dir, "periods.csv"), stringsAsFactors = FALSE)
tab$exposure <- tab$days_at_risk / 365.25
tab$arm <- factor(tab$arm, levels = arms); tab$period <- factor(tab$period, levels = periods$period)

f_nb <- admissions ~ arm * period + prior + offset(log(exposure)) + (1 | participant_id)
f_lo <- any_admission ~ arm * period + prior + (1 | participant_id)
tight_tmb <- glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14))
nb_default <- capture(glmmTMB(f_nb, family = nbinom2, data = tab))
nb <- capture(glmmTMB(f_nb, family = nbinom2, data = tab, control = tight_tmb))
f_po <- admissions ~ arm * period + prior + (1 | participant_id)
tight_glmer <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10, maxfun = 1e5), tolPwrss = 1e-10)
po_glmer <- capture(glmer(f_po, family = poisson, data = tab, offset = log(exposure), control = tight_glmer))
lo_glmer <- capture(glmer(f_lo, family = binomial, data = tab, control = tight_glmer))
po_default <- capture(glmmTMB(f_nb, family = poisson, data = tab))
po <- capture(glmmTMB(f_nb, family = poisson, data = tab, control = tight_tmb))
lo_default <- capture(glmmTMB(f_lo, family = binomial, data = tab))
lo <- capture(glmmTMB(f_lo, family = binomial, data = tab, control = tight_tmb))

emm_effects <- function(m) {
  by <- summary(contrast(emmeans(m, ~ arm | period), "revpairwise"), infer = TRUE)
  ov <- suppressMessages(summary(contrast(emmeans(m, ~ arm), "revpairwise"), infer = TRUE))
  z <- qnorm(0.975)
  row <- function(label, est, se, p) list(period = label, log_ratio = est, se = se,
    ratio = exp(est), conf_low = exp(est - z * se), conf_high = exp(est + z * se), p_value = p)
  # p from the z test (emmeans' own p.value for glmmTMB uses t on df.residual; kept as p_emmeans)
  zp <- function(est, se) 2 * pnorm(-abs(est / se))
  c(lapply(seq_len(nrow(by)), function(i) c(row(as.character(by$period[i]), by$estimate[i], by$SE[i],
      zp(by$estimate[i], by$SE[i])), list(p_emmeans = by$p.value[i], df_emmeans = by$df[i]))),
    list(c(row("overall", ov$estimate[1], ov$SE[1], zp(ov$estimate[1], ov$SE[1])),
      list(p_emmeans = ov$p.value[1], df_emmeans = ov$df[1]))))
}

# Counterfactual design: every participant (with their prior) in each arm and period.
people <- tab[!duplicated(tab$participant_id), c("participant_id", "prior")]
cf_rows <- function(a, k) {
  d <- data.frame(participant_id = people$participant_id, prior = people$prior,
                  arm = factor(a, levels = arms), period = factor(periods$period[k], levels = periods$period))
  model.matrix(~ arm * period + prior, d)
}
GH <- function(f) integrate(function(z) f(z) * dnorm(z), -Inf, Inf, rel.tol = 1e-12)$value
marg_rate_log <- function(par, a, k) { s <- par[1]; b <- par[-1]; X <- cf_rows(a, k); s^2 / 2 + log(mean(exp(X %*% b))) }
marg_risk <- function(par, a, k) { s <- par[1]; b <- par[-1]; X <- cf_rows(a, k)
  mean(sapply(drop(X %*% b), function(e) GH(function(z) plogis(e + s * z)))) }

# Covariance of (sigma, beta): glmmTMB's vcov(full = TRUE) (TMB's AD Hessian) in
# (beta, log sigma), transformed to sigma by the delta method (d sigma / d log sigma = sigma).
vcov_sigma_beta <- function(m) {
  V <- vcov(m, full = TRUE); p <- length(fixef(m)$cond); s <- sqrt(VarCorr(m)$cond[[1]][1])
  idx <- c(p + 1, seq_len(p)); J <- diag(c(s, rep(1, p)))
  J %*% V[idx, idx] %*% J
}
tmb_par <- function(m) c(sqrt(VarCorr(m)$cond[[1]][1]), fixef(m)$cond)
result_block <- function(m, fam, default, glmer_fit) {
  par <- tmb_par(m); Vsb <- vcov_sigma_beta(m); p <- length(fixef_of(m))
  marg <- list(); rd <- list()
  for (a in arms) for (k in seq_len(K)) {
    if (fam %in% c("nb", "poisson")) {
      f <- function(q) marg_rate_log(q, a, k); v <- f(par[1:(p + 1)]); g <- grad(f, par[1:(p + 1)])
      se <- sqrt(drop(t(g) %*% Vsb %*% g))
      marg[[length(marg) + 1]] <- list(arm = a, period = periods$period[k], estimate = exp(v),
        conf_low = exp(v - qnorm(0.975) * se), conf_high = exp(v + qnorm(0.975) * se))
    } else {
      f <- function(q) marg_risk(q, a, k); v <- f(par[1:(p + 1)]); g <- grad(f, par[1:(p + 1)])
      se <- sqrt(drop(t(g) %*% Vsb %*% g)); sl <- se / (v * (1 - v)); l <- qlogis(v)
      marg[[length(marg) + 1]] <- list(arm = a, period = periods$period[k], estimate = v,
        conf_low = plogis(l - qnorm(0.975) * sl), conf_high = plogis(l + qnorm(0.975) * sl))
    }
  }
  if (fam == "logistic") {
    rdf <- function(q, k) marg_risk(q, intervention, k) - marg_risk(q, arms[1], k)
    fs <- c(lapply(seq_len(K), function(k) function(q) rdf(q, k)),
            list(function(q) mean(sapply(seq_len(K), function(k) rdf(q, k)))))
    labels <- c(periods$period, "overall")
    for (j in seq_along(fs)) {
      v <- fs[[j]](par[1:(p + 1)]); g <- grad(fs[[j]], par[1:(p + 1)]); se <- sqrt(drop(t(g) %*% Vsb %*% g))
      rd[[j]] <- list(period = labels[j], estimate = v, se = se, conf_low = v - qnorm(0.975) * se,
        conf_high = v + qnorm(0.975) * se, p_value = 2 * pnorm(-abs(v / se)))
    }
  }
  fe <- fixef_of(m)
  list(
    coefficients = lapply(seq_len(p), function(j) list(term = names(fe)[j], estimate = unname(fe[j]),
      se = unname(sqrt(diag(as.matrix(vcov_of(m))))[j]),
      glmer_estimate = unname(fixef(glmer_fit$value)[j]), glmer_se = unname(sqrt(diag(as.matrix(vcov(glmer_fit$value))))[j]))),
    sd_participant = par[1], theta = if (fam == "nb") exp(par[p + 2]) else NULL,
    loglik = as.numeric(logLik(m)), loglik_default = as.numeric(logLik(default$value)),
    loglik_glmer_tight = as.numeric(logLik(glmer_fit$value)),
    warnings = I(c(default$warnings)), glmer_warnings = I(glmer_fit$warnings),
    effects = emm_effects(m), marginal = marg, risk_differences = rd)
}
fixef_of <- function(m) if (inherits(m, "glmmTMB")) fixef(m)$cond else fixef(m)
vcov_of <- function(m) if (inherits(m, "glmmTMB")) vcov(m)$cond else vcov(m)

nbm <- nb$value; lom <- lo$value; pom <- po$value
out <- list(
  meta = make_meta("tests/r/admissions_per_period.R", c("glmmTMB", "lme4", "emmeans", "numDeriv", "TMB"),
    c("15 significant digits", "NA as null", "reference fits: glmmTMB with rel.tol = 1e-14 (its Laplace optimum has the highest log-likelihood; glmer tight stops lower, recorded as loglik_glmer_tight and glmer_estimate/glmer_se)")),
  n_rows = nrow(tab), n_no_days_at_risk = n_no_risk, periods = rows(periods),
  observed = rows(aggregate(cbind(admissions, bed_days, any_admission, exposure) ~ arm + period, tab, sum)),
  # trial-small's NB fit runs to theta = infinity (glmmTMB: false convergence, theta ~ 3e7): the
  # negative binomial is at its Poisson limit, so the Poisson GLMM is the reference for the
  # estimates, SEs and intervals; glmmTMB's estimates are kept beside it.
  nb = list(estimates = as.list(fixef(nbm)$cond), theta = sigma(nbm), sd_participant =
    sqrt(VarCorr(nbm)$cond$participant_id[1]), warnings = I(nb$warnings), default_warnings = I(nb_default$warnings)),
  poisson = result_block(pom, "poisson", po_default, po_glmer),
  logistic = result_block(lom, "logistic", lo_default, lo_glmer))
jsonlite::write_json(out, file.path(out_dir, "reference.json"), digits = NA, auto_unbox = TRUE,
  pretty = TRUE, na = "null", null = "null")
cat("wrote", file.path(out_dir, "reference.json"), "\n")
