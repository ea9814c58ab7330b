# Write lme4::InstEval to a CSV for the InstEval benchmark (do not commit the CSV: ~1.6 MB).
# Usage: Rscript benches/r/write_insteval.R OUT.csv
# Columns: s, d, studage, lectage, service, dept, y (factors written as their labels; service is
# "0"/"1", so read it back as a factor, not a number). The benchmark model (ML):
#   y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) {
  cat("usage: Rscript benches/r/write_insteval.R OUT.csv\n", file = stderr())
  quit(status = 2)
}
data("InstEval", package = "lme4")
write.csv(InstEval, args[[1]], row.names = FALSE)
cat("wrote", args[[1]], nrow(InstEval), "rows\n")
