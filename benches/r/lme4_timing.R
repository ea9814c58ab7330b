# lme4 fit times for the mixed-model benchmark.
# Usage: Rscript benches/r/lme4_timing.R [--ml] [--reps N] [--factors a,b,c] CSV FORMULA [CSV FORMULA ...]
#   Each CSV is read with read.csv; character columns become factors (sorted levels), and so do the
#   columns named in --factors (for numeric-looking ids; InstEval: --factors s,d,dept,service).
#   Prints one line per fit, tab separated:
#     csv <TAB> formula <TAB> REML|ML <TAB> nobs <TAB> median_seconds <TAB> all_seconds <TAB> objective
#   median_seconds = median elapsed time of N fits (default 3; lmer call only, data already loaded).
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
reml <- TRUE
reps <- 3L
factors <- character(0)
rest <- character(0)
i <- 1
while (i <= length(args)) {
  a <- args[[i]]
  if (a == "--ml") {
    reml <- FALSE
  } else if (a == "--reps") {
    i <- i + 1
    reps <- as.integer(args[[i]])
  } else if (a == "--factors") {
    i <- i + 1
    factors <- strsplit(args[[i]], ",")[[1]]
  } else {
    rest <- c(rest, a)
  }
  i <- i + 1
}
if (length(rest) == 0 || length(rest) %% 2 != 0) {
  cat("usage: Rscript benches/r/lme4_timing.R [--ml] [--reps N] [--factors a,b] CSV FORMULA [CSV FORMULA ...]\n", file = stderr())
  quit(status = 2)
}
cat("csv\tformula\tmethod\tnobs\tmedian_seconds\tall_seconds\tobjective\n")
for (k in seq(1, length(rest), by = 2)) {
  path <- rest[[k]]
  f <- as.formula(rest[[k + 1]])
  d <- read.csv(path, stringsAsFactors = TRUE)
  for (fc in intersect(factors, names(d))) d[[fc]] <- factor(d[[fc]])
  times <- numeric(reps)
  m <- NULL
  for (r in seq_len(reps)) {
    times[r] <- system.time(m <- suppressMessages(suppressWarnings(lmer(f, data = d, REML = reml))))[["elapsed"]]
  }
  obj <- if (reml) REMLcrit(m) else deviance(m)
  cat(sprintf("%s\t%s\t%s\t%d\t%.3f\t%s\t%.10g\n", path, rest[[k + 1]], if (reml) "REML" else "ML",
              nobs(m), median(times), paste(sprintf("%.3f", times), collapse = ","), obj))
}
