# Writes tests/fixtures/import/edge-cases.sav and edge-cases.zsav (haven 2.5): the parts of the
# SPSS format the trial-small fixtures do not exercise. Run from the repository root:
#   Rscript tests/r/sav_edge_cases.R
# Checked in tests/import.rs (sav_edge_cases_read_as_haven_reads_them).
library(haven)
long_text <- paste(rep("abcdefghij", 30), collapse = "")          # 300 bytes: a very long string
d <- data.frame(
  id = c("a", "b", "c", "d"),
  note = c(long_text, "kort", "", paste0(long_text, "xyz")),
  stringsAsFactors = FALSE
)
# a numeric user-missing range plus a code (na_range + na_values), values outside the
# bytecode range (-99..151) and non-integers
d$score <- labelled_spss(c(1.5, 950, 99, 1e6), labels = c(geweigerd = 99, "niet afgenomen" = 999),
                         na_values = 99, na_range = c(900, 999), label = "Score met bereik")
# value labels and a user-missing value on a short string
d$code <- labelled_spss(c("x", "y", "NA", "x"), labels = c(ja = "x", nee = "y"), na_values = "NA")
d$datum <- as.Date(c("2013-07-19", NA, "1970-01-01", "2024-02-29"))
write_sav(d, "tests/fixtures/import/edge-cases.sav")
write_sav(d, "tests/fixtures/import/edge-cases.zsav", compress = "zsav")
back <- read_sav("tests/fixtures/import/edge-cases.sav", user_na = TRUE)
stopifnot(identical(as.character(back$note), d$note), nchar(back$note[1]) == 300)
print(back)
