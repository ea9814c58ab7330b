# Golden value of tests/glmm.rs poisson_overdispersion_check_matches_pearson_residuals_of_glmer:
# the Pearson chi-square of the one-random-intercept grouseticks Poisson GLMM (tight glmer fit).
# Run: Rscript tests/r/glmm_overdispersion.R   (R 4.2.2, lme4 1.1.31) prints
# 1082.3067320890 398 2.7193636485 1.1956796821e-64   (chi-square, df.residual, ratio, p)
suppressMessages(library(lme4))
d <- read.csv("tests/fixtures/glmm/grouseticks.csv"); d$YEAR <- factor(d$YEAR); d$LOCATION <- factor(d$LOCATION)
m <- glmer(TICKS ~ YEAR + height_z + (1 | LOCATION), family = poisson, data = d, control = glmerControl(optimizer="bobyqa", optCtrl=list(maxfun=1e5, rhoend=1e-10), tolPwrss=1e-12))
x2 <- sum(residuals(m, "pearson")^2); df <- df.residual(m)
cat(sprintf("%.10f %d %.10f %.10e\n", x2, df, x2/df, pchisq(x2, df, lower.tail=FALSE)))
