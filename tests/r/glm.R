# Golden values for psychiatric admissions (count and binary outcomes): MASS::glm.nb, Poisson with
# a log-exposure offset, logistic regression, rate/odds ratios with Wald CIs, wilcox.test.
# Run from the repository root:  Rscript tests/r/glm.R
# Writes tests/fixtures/r/admissions.csv (the data, as fitted) and tests/fixtures/r/glm.json.
source("tests/r/common.R")
suppressPackageStartupMessages(library(MASS))

set.seed(4242)
n <- 200
arm <- sample(rep(c("CAU", "IMR"), each = n / 2))
exposure <- round(runif(n, 0.4, 1.75), 4)            # years at risk in the follow-up window
prior <- rnbinom(n, size = 0.8, mu = 0.9)             # admissions in the prior year
mu <- exposure * exp(-0.6 + log(0.7) * (arm == "IMR") + 0.35 * prior)
count <- rnbinom(n, size = 1.3, mu = mu)
any_prior <- as.integer(prior > 0)
p_post <- plogis(-0.8 - 0.5 * (arm == "IMR") + 1.1 * any_prior)
any_post <- rbinom(n, 1, p_post)
bed_days_prior <- ifelse(prior > 0, rpois(n, 12 * prior), 0)
bed_days_post <- ifelse(count > 0, rpois(n, 10 * count), 0)
d <- data.frame(id = sprintf("P%03d", 1:n), arm = arm, exposure = exposure, prior = prior,
                count = count, any_prior = any_prior, any_post = any_post,
                bed_days_prior = bed_days_prior, bed_days_post = bed_days_post,
                bed_days_change = bed_days_post - bed_days_prior, stringsAsFactors = FALSE)
write.csv(d, file.path(fixture_dir, "admissions.csv"), row.names = FALSE)
d <- read.csv(file.path(fixture_dir, "admissions.csv"), stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("CAU", "IMR"))

tight <- glm.control(epsilon = 1e-12, maxit = 100)

glm_coefs <- function(m) {
  cm <- coef(summary(m))
  ci <- confint.default(m)
  data.frame(term = rownames(cm), estimate = cm[, 1], se = cm[, 2], z = cm[, 3], p = cm[, 4],
             exp_estimate = exp(cm[, 1]), exp_conf_low = exp(ci[, 1]), exp_conf_high = exp(ci[, 2]),
             conf_low = ci[, 1], conf_high = ci[, 2], stringsAsFactors = FALSE)
}
glm_record <- function(m, formula, family, control_note) {
  ll <- logLik(m)
  list(
    formula = formula, family = family, control = control_note,
    nobs = nobs(m), coefficients = rows(glm_coefs(m)),
    loglik = as.numeric(ll), loglik_df = attr(ll, "df"),
    deviance = deviance(m), null_deviance = m$null.deviance,
    df_residual = m$df.residual, df_null = m$df.null, aic = AIC(m), bic = BIC(m),
    iter = m$iter, converged = m$converged,
    pearson_chisq = sum(residuals(m, type = "pearson")^2),
    dispersion_pearson = sum(residuals(m, type = "pearson")^2) / m$df.residual
  )
}

f_count <- "count ~ arm + prior + offset(log(exposure))"
nb_cap <- capture(glm.nb(as.formula(f_count), data = d, control = tight))
nb <- nb_cap$value
nb_rec <- glm_record(nb, f_count, "negative binomial (MASS::glm.nb), log link",
                     "glm.control(epsilon = 1e-12, maxit = 100)")
nb_rec$theta <- nb$theta
nb_rec$theta_se <- nb$SE.theta
nb_rec$twologlik <- nb$twologlik
nb_rec$warnings <- I(nb_cap$warnings)
nb_def_cap <- capture(glm.nb(as.formula(f_count), data = d))
nb_def <- glm_record(nb_def_cap$value, f_count, "negative binomial (MASS::glm.nb), log link", "default glm.control()")
nb_def$theta <- nb_def_cap$value$theta
nb_def$theta_se <- nb_def_cap$value$SE.theta

po <- glm(as.formula(f_count), family = poisson, data = d, control = tight)
po_rec <- glm_record(po, f_count, "poisson, log link", "glm.control(epsilon = 1e-12, maxit = 100)")

f_log <- "any_post ~ arm + any_prior"
lo <- glm(as.formula(f_log), family = binomial, data = d, control = tight)
lo_rec <- glm_record(lo, f_log, "binomial, logit link", "glm.control(epsilon = 1e-12, maxit = 100)")
lo_def <- glm_record(glm(as.formula(f_log), family = binomial, data = d), f_log,
                     "binomial, logit link", "default glm.control()")
props <- tapply(d$any_post, d$arm, mean)
lo_rec$proportions <- as.list(props)
nn <- table(d$arm)
rd_se <- sqrt(props[["IMR"]] * (1 - props[["IMR"]]) / nn[["IMR"]] + props[["CAU"]] * (1 - props[["CAU"]]) / nn[["CAU"]])
rd <- props[["IMR"]] - props[["CAU"]]
d1 <- d; d1$arm <- factor("IMR", levels = levels(d$arm))
d0 <- d; d0$arm <- factor("CAU", levels = levels(d$arm))
lo_rec$risk_difference <- list(
  definition = "unadjusted P(any_post | IMR) - P(any_post | CAU), Wald SE sqrt(p1(1-p1)/n1 + p0(1-p0)/n0), 95% CI +/- qnorm(0.975) SE",
  p_intervention = props[["IMR"]], p_reference = props[["CAU"]],
  n_intervention = nn[["IMR"]], n_reference = nn[["CAU"]],
  estimate = rd, se = rd_se, lower = rd - qnorm(0.975) * rd_se, upper = rd + qnorm(0.975) * rd_se,
  adjusted_standardized = mean(predict(lo, newdata = d1, type = "response")) - mean(predict(lo, newdata = d0, type = "response")),
  adjusted_standardized_definition = "mean predicted P(any_post) from the (tight) logistic model with everyone set to IMR minus everyone set to CAU (g-computation; point estimate only)"
)

w <- wilcox.test(bed_days_change ~ arm, data = d, exact = FALSE, correct = TRUE)
w_rec <- list(
  call = "wilcox.test(bed_days_change ~ arm, data = d, exact = FALSE, correct = TRUE)",
  statistic_W = unname(w$statistic), p = w$p.value,
  n = as.list(table(d$arm)),
  ties = sum(duplicated(d$bed_days_change)),
  note = "W = sum of ranks of the first group (CAU) minus n1 (n1 + 1) / 2 (Mann-Whitney U of CAU); normal approximation with tie correction of the variance and continuity correction 0.5"
)

meta <- make_meta("tests/r/glm.R", c("MASS", "stats", "jsonlite"), c(
  "Data: admissions.csv, generated in this script (set.seed(4242)), 200 participants, fitted as read back; arm factor with levels CAU, IMR (CAU reference).",
  "count: admissions in the follow-up window, exposure: years at risk, prior: admissions in the prior year; any_prior/any_post 0/1; bed_days_change = bed_days_post - bed_days_prior.",
  "coefficients: estimate, se, z, p (Wald, normal); conf_low/high = confint.default (estimate +- qnorm(0.975) se); exp_* = exponentiated (rate ratio / odds ratio).",
  "negative_binomial: MASS::glm.nb with control = glm.control(epsilon = 1e-12, maxit = 100) (theta by ML, alternating with IRLS); theta and theta_se (SE.theta); loglik = twologlik / 2; aic = -2 loglik + 2 (p + 1). negative_binomial_default: R defaults (stops earlier).",
  "theta precision: glm.nb's inner theta.ml uses eps = epsilon^0.25, so even the tight fit's theta is within ~1e-7 relative of the profile-likelihood maximum (checked: optimize over theta gives 3.18368792723 vs 3.18368757377; logLik equal to 1e-15). Compare theta at ~1e-6, coefficients and logLik at 1e-8.",
  "poisson / logistic: glm with the tight control; *_default: default control.",
  "dispersion_pearson = sum of squared Pearson residuals / df.residual."
))
meta$data <- list(file = "admissions.csv", rows = nrow(d), columns = I(names(d)))
write_fixture(list(meta = meta, negative_binomial = nb_rec, negative_binomial_default = nb_def,
                   poisson = po_rec, logistic = lo_rec, logistic_default = lo_def,
                   wilcox = w_rec), "glm.json")
