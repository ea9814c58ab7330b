# nlme::gls fit times for the MMRM benchmark (tests/mmrm.rs).
# Usage: Rscript benches/r/gls_timing.R [--ml] [--reps N] [--structure us|cs|ar1|csh|ar1h]
#                                      [--formula "y ~ arm * wave"] CSV
#   CSV columns: id (participant), wave (factor; levels sorted), widx (integer wave index 1..T), the
#   response and covariates of the formula; rows with a missing response are dropped (na.omit).
#   us = corSymm + varIdent by wave, cs = corCompSymm, ar1 = corAR1, csh/ar1h = + varIdent by wave.
# Prints one tab-separated line: csv, formula, structure, method, nobs, median_seconds, all_seconds, logLik.
suppressPackageStartupMessages(library(nlme))
args <- commandArgs(trailingOnly = TRUE)
method <- "REML"; reps <- 3L; structure <- "us"; formula <- "y ~ arm * wave"; path <- NULL
i <- 1
while (i <= length(args)) {
  a <- args[[i]]
  if (a == "--ml") method <- "ML"
  else if (a == "--reps") { i <- i + 1; reps <- as.integer(args[[i]]) }
  else if (a == "--structure") { i <- i + 1; structure <- args[[i]] }
  else if (a == "--formula") { i <- i + 1; formula <- args[[i]] }
  else path <- a
  i <- i + 1
}
if (is.null(path)) {
  cat("usage: Rscript benches/r/gls_timing.R [--ml] [--reps N] [--structure us|cs|ar1|csh|ar1h] [--formula F] CSV\n",
      file = stderr())
  quit(status = 2)
}
d <- read.csv(path, stringsAsFactors = TRUE)
d$id <- factor(d$id)
d$wave <- factor(d$wave)
d <- d[order(d$id, d$widx), ]
f <- as.formula(formula)
cor <- switch(structure,
  us = corSymm(form = ~ widx | id), cs = , csh = corCompSymm(form = ~ widx | id),
  ar1 = , ar1h = corAR1(form = ~ widx | id), stop("unknown structure ", structure))
wts <- if (structure %in% c("us", "csh", "ar1h")) varIdent(form = ~ 1 | wave) else NULL
times <- numeric(reps)
fit <- NULL
for (r in seq_len(reps)) {
  times[r] <- system.time(fit <- gls(f, data = d, correlation = cor, weights = wts, method = method,
                                     na.action = na.omit))[["elapsed"]]
}
cat("csv\tformula\tstructure\tmethod\tnobs\tmedian_seconds\tall_seconds\tloglik\n")
cat(sprintf("%s\t%s\t%s\t%s\t%d\t%.3f\t%s\t%.10g\n", path, formula, structure, method, fit$dims$N,
            median(times), paste(sprintf("%.3f", times), collapse = ","), as.numeric(logLik(fit))))
