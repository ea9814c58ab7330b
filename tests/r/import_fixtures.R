# Import fixtures for `herstel import` (issue 13): the shared trial-small export rewritten as a
# researcher's files (SPSS .sav/.zsav, Stata .dta, wide and long; a Dutch-Excel CSV), plus one public
# trial (HSAUR3::BtheB) as .sav with R's mixed-model analysis of it as golden values.
# Run from the repository root:  Rscript tests/r/import_fixtures.R   (~5 s; deterministic: the
# creation timestamps that ReadStat writes into .sav/.zsav/.dta headers are overwritten with a fixed
# value, so a rerun gives byte-identical files)
# Reads  tests/fixtures/trial-small/export/ (study.toml, participants, assessments, admissions,
#        sites, groups)
# Writes tests/fixtures/import/: trial-small-wide.{sav,zsav,dta}, trial-small-long.{sav,dta},
#        trial-small-admissions.sav, trial-small-nl.csv, trial-small-nl-admissions.csv,
#        trial-small-missing-codes.csv, btheb.sav, btheb-expected.json.
# Every file is read back with haven and compared with the export cell for cell; the script stops
# on any difference. The layouts are described in tests/fixtures/import/README.md.
source("tests/r/common.R") # rows(), coef_rows(), capture(), pkg_versions(); loads jsonlite
suppressPackageStartupMessages({
  library(haven)
  library(lme4)
  library(lmerTest)
  library(emmeans)
})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)

src <- "tests/fixtures/trial-small/export"
out <- "tests/fixtures/import"
dir.create(out, recursive = TRUE, showWarnings = FALSE)
fp <- function(f) file.path(out, f)
check <- function(ok, what) {
  if (!isTRUE(ok)) stop("verification failed: ", what, call. = FALSE)
  invisible(TRUE)
}

## ---- the export --------------------------------------------------------------------------------
toml <- readLines(file.path(src, "study.toml"))
toml_vec <- function(key) {
  l <- grep(paste0("^", key, "\\s*="), toml, value = TRUE)
  eval(parse(text = sub("^[a-z]+\\s*=\\s*\\[(.*)\\].*$", "c(\\1)", l)))
}
arms <- toml_vec("arms")
instruments <- toml_vec("instruments")
waves <- sub('^label\\s*=\\s*"(.*)".*$', "\\1", grep("^label\\s*=", toml, value = TRUE))
wave_months <- as.numeric(sub("^months\\s*=\\s*([0-9.]+).*$", "\\1", grep("^months\\s*=", toml, value = TRUE)))
stopifnot(identical(arms, c("TAU", "IMR")), identical(waves, c("T0", "T1", "T2")))

rd <- function(f, ...) read.csv(file.path(src, f), stringsAsFactors = FALSE, na.strings = "",
                                check.names = FALSE, ...)
sites <- rd("sites.csv", colClasses = "character")
groups <- rd("groups.csv", colClasses = c("character", "character", "numeric"))
part <- rd("participants.csv", colClasses = "character")
part$age <- as.integer(part$age)
part$sessions_attended <- as.integer(part$sessions_attended)
adm <- rd("admissions.csv", colClasses = c("character", "character", "character", "integer"))
assess <- rd("assessments.csv", colClasses = c(participant_id = "character", wave = "character",
                                               assessed_on = "character"))
sites$fidelity <- as.numeric(sites$fidelity)

# Instruments: export column <instrument>_<NN>  ->  source column <stem><n>[_<wave>]
inst <- list(
  imrs_client    = list(prefix = "imrs",  pad = FALSE, label = "IMRS cli\u00ebntversie"),
  imrs_clinician = list(prefix = "imrsk", pad = FALSE, label = "IMRS behandelaarsversie"),
  mhrm           = list(prefix = "MHRM_", pad = TRUE,  label = "MHRM herstel"),
  honos          = list(prefix = "honos", pad = FALSE, label = "HoNOS"),
  bsi            = list(prefix = "bsi",   pad = FALSE, label = "BSI klachten"),
  sfs            = list(prefix = "sfs",   pad = FALSE, label = "SFS schaalscore")
)
sfs_sub <- c("sociale terugtrekking", "interpersoonlijk functioneren", "zelfstandigheid (uitvoering)",
             "zelfstandigheid (competentie)", "recreatie", "prosociale activiteiten", "werk en bezigheden")
stopifnot(identical(names(inst), instruments))
item_cols <- names(assess)[-(1:3)]
items <- do.call(rbind, lapply(instruments, function(k) {
  cols <- grep(paste0("^", k, "_[0-9]{2}$"), item_cols, value = TRUE)
  n <- as.integer(sub(".*_", "", cols))
  stem <- paste0(inst[[k]]$prefix, if (inst[[k]]$pad) sprintf("%02d", n) else n)
  lab <- if (k == "sfs") sprintf("%s %d %s", inst[[k]]$label, n, sfs_sub[n])
         else sprintf("%s item %d", inst[[k]]$label, n)
  data.frame(instrument = k, item = n, export = cols, stem = stem, label = lab, stringsAsFactors = FALSE)
}))
stopifnot(identical(items$export, item_cols))
is_sfs <- items$instrument == "sfs"

## ---- the participant x wave grid and the user-missing codes --------------------------------------
np <- nrow(part)
grid <- data.frame(participant_id = rep(part$participant_id, each = length(waves)),
                   wave = rep(waves, times = np), stringsAsFactors = FALSE)
gi <- match(paste(grid$participant_id, grid$wave), paste(assess$participant_id, assess$wave))
stopifnot(!anyNA(match(assess$participant_id, part$participant_id)), sum(!is.na(gi)) == nrow(assess))
M <- as.matrix(assess[gi, item_cols]) # NA rows where the export has no row
rownames(M) <- NULL
grid$assessed_on <- assess$assessed_on[gi]
grid$status <- ifelse(is.na(gi), "absent", ifelse(rowSums(!is.na(M)) == 0, "empty", "present"))

code <- matrix(NA_real_, nrow(M), ncol(M)) # 999 = niet afgenomen, 99 = geweigerd
rule <- matrix(NA_character_, nrow(M), ncol(M))
# A: missed waves (no row, or a row with every item empty): every other one (1st, 3rd, ...) in grid
#    order gets 999 in all its item cells.
miss <- which(grid$status != "present")
a_rows <- miss[seq_along(miss) %% 2 == 1]
code[a_rows, ] <- 999
rule[a_rows, ] <- "A"
# B: a whole instrument empty in an assessed row: every other one (1st, 3rd, ...; row-major,
#    instruments in study order) gets 999 in all its items.
b_ord <- 0
for (r in which(grid$status == "present")) for (k in instruments) {
  cc <- which(items$instrument == k)
  if (all(is.na(M[r, cc]))) {
    b_ord <- b_ord + 1
    if (b_ord %% 2 == 1) { code[r, cc] <- 999; rule[r, cc] <- "B" }
  }
}
# C: the remaining empty item cells of assessed rows, in row-major order (export column order):
#    the 1st, 4th, 7th, ... get 99 (geweigerd), or 999 on SFS columns, where 99 is a valid score.
c_ord <- 0
for (r in which(grid$status == "present")) {
  fully_empty <- ave(is.na(M[r, ]), items$instrument, FUN = all)
  for (j in which(is.na(M[r, ]) & !fully_empty)) {
    c_ord <- c_ord + 1
    if (c_ord %% 3 == 1) { code[r, j] <- if (is_sfs[j]) 999 else 99; rule[r, j] <- "C" }
  }
}
stopifnot(all(is.na(M[!is.na(code)])), !any(code[, is_sfs] == 99, na.rm = TRUE))
V <- M
V[!is.na(code)] <- code[!is.na(code)] # the item values as written (codes in empty cells)
# HoNOS 9 (not known) stays the value 9 (the export has it as a value); SFS 99.0 stays 99 (P0056 T2 sfs_05)
check(any(M[, is_sfs] == 99, na.rm = TRUE), "the export has an SFS score of exactly 99")

# the list of coded cells: one line per participant x wave x instrument x code, items space-separated
mc <- which(!is.na(code), arr.ind = TRUE)
mc <- mc[order(mc[, 1], mc[, 2]), , drop = FALSE]
cells <- data.frame(r = mc[, 1], instrument = items$instrument[mc[, 2]], item = items$item[mc[, 2]],
                    code = as.integer(code[mc]), rule = rule[mc], stringsAsFactors = FALSE)
key <- paste(cells$r, match(cells$instrument, instruments), cells$code, cells$rule)
missing_codes <- do.call(rbind, lapply(split(seq_len(nrow(cells)), factor(key, levels = unique(key))), function(ix) {
  r <- cells$r[ix[1]]
  data.frame(participant_id = grid$participant_id[r], wave = grid$wave[r], instrument = cells$instrument[ix[1]],
             code = cells$code[ix[1]], rule = cells$rule[ix[1]], in_long = as.integer(grid$status[r] != "absent"),
             n_items = length(ix), items = paste(cells$item[ix], collapse = " "), stringsAsFactors = FALSE)
}))
rownames(missing_codes) <- NULL
write.csv(missing_codes, fp("trial-small-missing-codes.csv"), row.names = FALSE, quote = FALSE)

## ---- recodes: export values <-> source codes -----------------------------------------------------
sex_map <- c(vrouw = "female", man = "male", anders = "other") # codes 1, 2, 3
diag_map <- c( # code = position; Dutch label -> export value
  "schizofreniespectrum- of andere psychotische stoornis" = "schizophrenia spectrum",
  "bipolaire stoornis" = "bipolar",
  "depressieve stoornis" = "depression",
  "persoonlijkheidsstoornis" = "personality",
  "overig \u2013 \u00e9\u00e9n of meer andere stoornissen" = "other")
stopifnot(all(part$sex %in% sex_map), all(part$diagnosis %in% diag_map), all(part$arm %in% arms))
site_code <- match(part$site_id, sites$site_id) # 1..4 = S01..S04, labels = site_name
grp_fid <- groups$fidelity[match(part$group_id, groups$group_id)]
site_fid <- sites$fidelity[site_code]
d8 <- function(x) as.Date(x, format = "%Y-%m-%d")

lab_codes <- function(x, labels, label, fmt = "F1.0") { # a labelled code column
  x <- labelled(x, labels, label = label)
  attr(x, "format.spss") <- fmt
  x
}
with_label <- function(x, label, fmt = NULL) {
  attr(x, "label") <- label
  if (!is.null(fmt)) attr(x, "format.spss") <- fmt
  x
}
participant_frame <- function(idx) {
  data.frame(
    ID = with_label(part$participant_id[idx], "Deelnemersnummer"),
    instelling = lab_codes(as.double(site_code[idx]), setNames(as.double(seq_len(nrow(sites))), sites$site_name),
                          label = "Instelling (ggz-aanbieder)"),
    team = with_label(part$team_id[idx], "Behandelteam (stratum van de randomisatie)"),
    conditie = lab_codes(as.double(match(part$arm[idx], arms)), setNames(c(1, 2), arms),
                        label = "Conditie (gerandomiseerde arm)"),
    groep = with_label(ifelse(is.na(part$group_id[idx]), "", part$group_id[idx]), "IMR-trainingsgroep"),
    fid_groep = with_label(grp_fid[idx], "IMR Fidelity Scale van de groep (gemiddelde van 13 items, 1-5)", "F4.2"),
    fid_instelling = with_label(site_fid[idx], "IMR Fidelity Scale van de instelling (totaalscore)", "F3.0"),
    randdatum = with_label(d8(part$randomized_on[idx]), "Datum randomisatie"),
    leeftijd = with_label(as.double(part$age[idx]), "Leeftijd bij baseline (jaren)", "F3.0"),
    geslacht = lab_codes(as.double(match(part$sex[idx], sex_map)), setNames(c(1, 2, 3), names(sex_map)),
                        label = "Geslacht"),
    diagnose = lab_codes(as.double(match(part$diagnosis[idx], diag_map)), setNames(as.double(1:5), names(diag_map)),
                        label = "Hoofddiagnose (categorie)"),
    sessies = with_label(as.double(part$sessions_attended[idx]), "Aantal bijgewoonde IMR-sessies", "F3.0"),
    stringsAsFactors = FALSE)
}

# one item column, SPSS (codes as user-missing values) or Stata (codes as extended missing .a/.b)
item_column <- function(v, j, label, target) {
  sfs <- is_sfs[j]
  honos <- items$instrument[j] == "honos"
  if (target == "sav") {
    labs <- c(if (honos) c(onbekend = 9), if (!sfs) c(geweigerd = 99), c("niet afgenomen" = 999))
    x <- labelled_spss(as.double(v), labels = labs, na_values = if (sfs) 999 else c(99, 999), label = label)
    attr(x, "format.spss") <- if (sfs) "F5.1" else "F3.0"
  } else {
    x <- as.double(v)
    x[!is.na(x) & x == 999] <- tagged_na("a")
    if (!sfs) x[!is.na(x) & x == 99] <- tagged_na("b") # on SFS columns 99 is a score
    labs <- c(if (honos) c(onbekend = 9), c("niet afgenomen" = tagged_na("a")),
              if (!sfs) c(geweigerd = tagged_na("b")))
    x <- labelled(x, labels = labs, label = label)
    attr(x, "format.stata") <- if (sfs) "%5.1f" else "%3.0f"
  }
  x
}

wide_frame <- function(target) {
  w <- participant_frame(seq_len(np))
  for (wv in waves) {
    r <- which(grid$wave == wv) # participants in file order
    w[[paste0("datum_", wv)]] <- with_label(d8(grid$assessed_on[r]), paste("Datum meting", wv))
    for (j in seq_len(nrow(items))) {
      w[[paste0(items$stem[j], "_", wv)]] <- item_column(V[r, j], j, paste0(items$label[j], " (", wv, ")"), target)
    }
  }
  w
}

long_rows <- which(grid$status != "absent") # = the export's assessment rows
long_rows <- long_rows[order(gi[long_rows])] # in export order
long_frame <- function(target) {
  pidx <- match(grid$participant_id[long_rows], part$participant_id)
  l <- participant_frame(pidx)
  l$meting <- lab_codes(as.double(match(grid$wave[long_rows], waves) - 1),
                       setNames(as.double(seq_along(waves) - 1), waves), label = "Meetmoment")
  l$datum <- with_label(d8(grid$assessed_on[long_rows]), "Datum meting")
  for (j in seq_len(nrow(items))) l[[items$stem[j]]] <- item_column(V[long_rows, j], j, items$label[j], target)
  l
}

# ReadStat stamps the current time into the file header: overwrite it so reruns are byte-identical.
fix_timestamp <- function(path) {
  b <- readBin(path, "raw", file.info(path)$size)
  if (rawToChar(b[1:3]) == "$FL") { # .sav/.zsav: creation date at byte 92 (9), time at 101 (8)
    b[93:101] <- charToRaw("01 Jan 24")
    b[102:109] <- charToRaw("00:00:00")
  } else { # .dta 118: <timestamp> + length byte (17) + "dd Mon yyyy hh:mm"
    tag <- charToRaw("<timestamp>")
    pos <- which(vapply(seq_len(2000), function(i) all(b[i:(i + length(tag) - 1)] == tag), TRUE))
    stopifnot(length(pos) == 1, as.integer(b[pos + length(tag)]) == 17)
    b[(pos + length(tag) + 1):(pos + length(tag) + 17)] <- charToRaw("01 Jan 2024 00:00")
  }
  writeBin(b, path)
}
write_file <- function(df, name, fun, ...) {
  fun(df, fp(name), ...)
  fix_timestamp(fp(name))
  cat("wrote", fp(name), file.info(fp(name))$size, "bytes\n")
}

wide_sav <- wide_frame("sav")
wide_dta <- wide_frame("dta")
long_sav <- long_frame("sav")
long_dta <- long_frame("dta")
write_file(wide_sav, "trial-small-wide.sav", write_sav, compress = "byte")
write_file(wide_sav, "trial-small-wide.zsav", write_sav, compress = "zsav")
write_file(wide_dta, "trial-small-wide.dta", write_dta, version = 14)
write_file(long_sav, "trial-small-long.sav", write_sav, compress = "byte")
write_file(long_dta, "trial-small-long.dta", write_dta, version = 14)

adm_sav <- data.frame(
  ID = with_label(adm$participant_id, "Deelnemersnummer"),
  opnamedatum = with_label(d8(adm$admitted_on), "Datum opname"),
  ontslagdatum = with_label(d8(adm$discharged_on), "Datum ontslag (leeg = nog opgenomen)"),
  gedwongen = lab_codes(as.double(adm$involuntary), c(nee = 0, ja = 1), label = "Gedwongen opname"),
  stringsAsFactors = FALSE)
write_file(adm_sav, "trial-small-admissions.sav", write_sav, compress = "byte")

## ---- Dutch Excel CSV: ';', decimal comma, Windows-1252, CRLF, DD-MM-YYYY ----------------------------
nl_num <- function(x, fmt = NULL) {
  s <- if (is.null(fmt)) as.character(x) else sprintf(fmt, x)
  s <- sub(".", ",", s, fixed = TRUE)
  s[is.na(x)] <- ""
  s
}
nl_date <- function(x) { s <- format(d8(x), "%d-%m-%Y"); s[is.na(s)] <- ""; s }
excel_field <- function(s) { # Excel quotes a field only when it holds the separator, a quote or a line end
  q <- grepl('[;"\r\n]', s)
  s[q] <- paste0('"', gsub('"', '""', s[q]), '"')
  s
}
write_excel_csv <- function(tab, name) {
  lines <- c(paste(excel_field(names(tab)), collapse = ";"),
             do.call(paste, c(lapply(tab, excel_field), sep = ";")))
  txt <- paste0(paste(lines, collapse = "\r\n"), "\r\n")
  bytes <- iconv(txt, from = "UTF-8", to = "CP1252", toRaw = TRUE)[[1]]
  stopifnot(!is.null(bytes))
  writeBin(bytes, fp(name))
  cat("wrote", fp(name), length(bytes), "bytes\n")
}
nl <- data.frame(
  ID = part$participant_id,
  instelling = sites$site_name[site_code],
  team = part$team_id,
  conditie = part$arm,
  groep = ifelse(is.na(part$group_id), "", part$group_id),
  fid_groep = nl_num(grp_fid),
  fid_instelling = nl_num(site_fid),
  randdatum = nl_date(part$randomized_on),
  leeftijd = nl_num(part$age),
  geslacht = names(sex_map)[match(part$sex, sex_map)],
  diagnose = names(diag_map)[match(part$diagnosis, diag_map)],
  sessies = nl_num(part$sessions_attended),
  stringsAsFactors = FALSE, check.names = FALSE)
for (wv in waves) {
  r <- which(grid$wave == wv)
  nl[[paste0("datum_", wv)]] <- nl_date(grid$assessed_on[r])
  for (j in seq_len(nrow(items))) {
    v <- V[r, j]
    s <- if (is_sfs[j]) ifelse(!is.na(v) & v == 999, "999", nl_num(v, "%.1f")) else nl_num(v)
    s[is.na(v)] <- ""
    nl[[paste0(items$stem[j], "_", wv)]] <- s
  }
}
write_excel_csv(nl, "trial-small-nl.csv")
nl_adm <- data.frame(ID = adm$participant_id, opnamedatum = nl_date(adm$admitted_on),
                     ontslagdatum = nl_date(adm$discharged_on),
                     gedwongen = c("nee", "ja")[adm$involuntary + 1], stringsAsFactors = FALSE)
write_excel_csv(nl_adm, "trial-small-nl-admissions.csv")

## ---- verification: read every file back and compare with the export ---------------------------------
same <- function(a, b) isTRUE(all.equal(a, b, tolerance = 0)) && identical(is.na(a), is.na(b))
verify_participants <- function(r, idx, file) {
  p <- part[idx, ]
  check(identical(as.character(r$ID), p$participant_id), paste(file, "ID"))
  check(same(sites$site_id[as.integer(r$instelling)], p$site_id), paste(file, "instelling"))
  check(identical(unname(attr(r$instelling, "labels")), as.double(1:4)) &&
          identical(names(attr(r$instelling, "labels")), sites$site_name), paste(file, "site labels"))
  check(identical(as.character(r$team), p$team_id), paste(file, "team"))
  arm <- names(attr(r$conditie, "labels"))[match(as.double(r$conditie), attr(r$conditie, "labels"))]
  check(identical(arm, p$arm), paste(file, "conditie"))
  check(same(ifelse(r$groep == "", NA, r$groep), p$group_id), paste(file, "groep"))
  check(same(as.double(r$fid_groep), grp_fid[idx]) && same(as.double(r$fid_instelling), site_fid[idx]),
        paste(file, "fidelity"))
  check(inherits(r$randdatum, "Date") && same(format(r$randdatum), p$randomized_on), paste(file, "randdatum"))
  check(same(as.integer(r$leeftijd), p$age), paste(file, "leeftijd"))
  sx <- names(attr(r$geslacht, "labels"))[match(as.double(r$geslacht), attr(r$geslacht, "labels"))]
  check(identical(unname(sex_map[sx]), p$sex), paste(file, "geslacht"))
  dx <- names(attr(r$diagnose, "labels"))[match(as.double(r$diagnose), attr(r$diagnose, "labels"))]
  check(identical(unname(diag_map[dx]), p$diagnosis), paste(file, "diagnose"))
  check(same(as.integer(r$sessies), p$sessions_attended), paste(file, "sessies"))
  check(nchar(attr(r$leeftijd, "label")) > 0 && attr(r$randdatum, "label") == "Datum randomisatie",
        paste(file, "variable labels"))
}
# item column x (as read) against export values m (NA = empty) and codes cd (NA = none)
verify_items <- function(x, m, cd, j, target, what) {
  sfs <- is_sfs[j]
  if (target == "sav") {
    check(inherits(x, "haven_labelled_spss"), paste(what, "is labelled_spss"))
    check(identical(sort(attr(x, "na_values")), if (sfs) 999 else c(99, 999)), paste(what, "na_values"))
    v <- as.double(zap_labels(x, user_na = TRUE)) # keep the user-missing codes as values
    check(same(v[!is.na(m)], m[!is.na(m)]), paste(what, "values"))
    check(same(v[is.na(m)], cd[is.na(m)]), paste(what, "codes in empty cells"))
    check(all(is.na(as.double(zap_missing(x))[!is.na(cd)])), paste(what, "codes are user-missing"))
  } else {
    v <- as.double(zap_labels(x))
    check(same(v[!is.na(m)], m[!is.na(m)]), paste(what, "values"))
    tg <- na_tag(x)
    want <- rep(NA_character_, length(cd))
    want[!is.na(cd)] <- ifelse(cd[!is.na(cd)] == 999, "a", "b")
    check(identical(tg[is.na(m)], want[is.na(m)]) && all(is.na(tg[!is.na(m)])), paste(what, "tagged NA"))
    lt <- na_tag(attr(x, "labels"))
    check(identical(sort(lt[!is.na(lt)]), if (sfs) "a" else c("a", "b")), paste(what, "NA labels"))
  }
}
verify_wide <- function(file, target) {
  r <- if (target == "sav") read_sav(fp(file), user_na = TRUE) else read_dta(fp(file))
  check(nrow(r) == np && ncol(r) == 12 + length(waves) * (1 + nrow(items)), paste(file, "shape"))
  verify_participants(r, seq_len(np), file)
  for (wv in waves) {
    g <- which(grid$wave == wv)
    check(same(format(r[[paste0("datum_", wv)]]), grid$assessed_on[g]), paste(file, "datum", wv))
    for (j in seq_len(nrow(items))) {
      col <- paste0(items$stem[j], "_", wv)
      verify_items(r[[col]], M[g, j], code[g, j], j, target, paste(file, col))
    }
  }
  # and as a plain reader sees it: every code missing, the SFS 99.0 a value
  z <- if (target == "sav") read_sav(fp(file), user_na = FALSE) else r
  for (wv in waves) {
    g <- which(grid$wave == wv)
    zz <- sapply(paste0(items$stem, "_", wv), function(cn) as.double(zap_labels(z[[cn]])))
    check(same(unname(zz), unname(M[g, ])), paste(file, "user_na = FALSE reproduces the export", wv))
  }
  cat("verified", file, "\n")
}
verify_long <- function(file, target) {
  r <- if (target == "sav") read_sav(fp(file), user_na = TRUE) else read_dta(fp(file))
  check(nrow(r) == nrow(assess), paste(file, "rows"))
  verify_participants(r, match(assess$participant_id, part$participant_id), file)
  wl <- names(attr(r$meting, "labels"))[match(as.double(r$meting), attr(r$meting, "labels"))]
  check(identical(wl, assess$wave) && identical(unname(attr(r$meting, "labels")), c(0, 1, 2)), paste(file, "meting"))
  check(same(format(r$datum), assess$assessed_on), paste(file, "datum"))
  for (j in seq_len(nrow(items))) {
    verify_items(r[[items$stem[j]]], M[long_rows, j], code[long_rows, j], j, target, paste(file, items$stem[j]))
    check(same(as.double(assess[[items$export[j]]]), M[long_rows, j]), "long row order")
  }
  cat("verified", file, "\n")
}
verify_wide("trial-small-wide.sav", "sav")
verify_wide("trial-small-wide.zsav", "sav")
verify_wide("trial-small-wide.dta", "dta")
verify_long("trial-small-long.sav", "sav")
verify_long("trial-small-long.dta", "dta")
check(rawToChar(readBin(fp("trial-small-wide.zsav"), "raw", 4)) == "$FL3" &&
        rawToChar(readBin(fp("trial-small-wide.sav"), "raw", 4)) == "$FL2", "zsav / sav magic")
ra <- read_sav(fp("trial-small-admissions.sav"))
check(identical(as.character(ra$ID), adm$participant_id) && same(format(ra$opnamedatum), adm$admitted_on) &&
        same(format(ra$ontslagdatum), adm$discharged_on) && same(as.integer(ra$gedwongen), adm$involuntary),
      "admissions.sav")
cat("verified trial-small-admissions.sav\n")

read_excel_csv <- function(name) {
  b <- readBin(fp(name), "raw", file.info(fp(name))$size)
  lf <- which(b == as.raw(10))
  check(all(b[lf - 1] == as.raw(13)) && b[length(b)] == as.raw(10), paste(name, "CRLF"))
  check(!any(b %in% as.raw(c(0xc3, 0xe2, 0xef))), paste(name, "no UTF-8 lead bytes (not UTF-8, no BOM)"))
  txt <- iconv(rawToChar(b), from = "CP1252", to = "UTF-8")
  read.table(text = txt, sep = ";", quote = "\"", header = TRUE, colClasses = "character",
             na.strings = character(0), check.names = FALSE, comment.char = "")
}
rn <- read_excel_csv("trial-small-nl.csv")
check(identical(dim(rn), c(np, ncol(wide_sav))) && identical(names(rn), names(wide_sav)), "nl.csv header")
un <- function(s) ifelse(s == "", NA, s)
num_nl <- function(s) as.numeric(sub(",", ".", un(s), fixed = TRUE))
dmy <- function(s) format(as.Date(un(s), format = "%d-%m-%Y"))
check(identical(rn$ID, part$participant_id) && identical(rn$team, part$team_id) &&
        identical(rn$conditie, part$arm) && same(un(rn$groep), part$group_id) &&
        identical(sites$site_id[match(rn$instelling, sites$site_name)], part$site_id) &&
        same(num_nl(rn$fid_groep), grp_fid) && same(num_nl(rn$fid_instelling), site_fid) &&
        same(dmy(rn$randdatum), part$randomized_on) && same(as.integer(rn$leeftijd), part$age) &&
        identical(unname(sex_map[rn$geslacht]), part$sex) &&
        identical(unname(diag_map[rn$diagnose]), part$diagnosis) &&
        same(as.integer(un(rn$sessies)), part$sessions_attended), "nl.csv participant columns")
for (wv in waves) {
  g <- which(grid$wave == wv)
  check(same(dmy(rn[[paste0("datum_", wv)]]), grid$assessed_on[g]), paste("nl.csv datum", wv))
  for (j in seq_len(nrow(items))) {
    s <- rn[[paste0(items$stem[j], "_", wv)]]
    v <- num_nl(s)
    check(same(v, V[g, j]), paste("nl.csv", items$stem[j], wv))
    if (is_sfs[j]) check(all(grepl("^([0-9]+,[0-9]|999|)$", s)), "nl.csv sfs one decimal")
  }
}
check(any(grepl("\u2013", rn$diagnose)) && any(grepl("\u00e9", rn$diagnose)), "nl.csv non-ASCII")
nlb <- readBin(fp("trial-small-nl.csv"), "raw", file.info(fp("trial-small-nl.csv"))$size)
check(any(nlb == as.raw(0x96)) && any(nlb == as.raw(0xe9)), "nl.csv en dash 0x96 and e-acute 0xE9 (Windows-1252)")
rna <- read_excel_csv("trial-small-nl-admissions.csv")
check(identical(rna$ID, adm$participant_id) && same(dmy(rna$opnamedatum), adm$admitted_on) &&
        same(dmy(rna$ontslagdatum), adm$discharged_on) &&
        identical(match(rna$gedwongen, c("nee", "ja")) - 1L, adm$involuntary), "nl-admissions.csv")
cat("verified trial-small-nl.csv, trial-small-nl-admissions.csv\n")

## ---- public trial: HSAUR3::BtheB (Beat the Blues) --------------------------------------------------
data("BtheB", package = "HSAUR3")
bt <- BtheB
bdi_cols <- c("bdi.pre", "bdi.2m", "bdi.3m", "bdi.5m", "bdi.8m")
b_waves <- c("pre", "m2", "m3", "m5", "m8")
b_months <- c(0, 2, 3, 5, 8)
b_sav_cols <- c("bdi_pre", "bdi_2m", "bdi_3m", "bdi_5m", "bdi_8m")
bsav <- data.frame(
  subject = with_label(as.double(seq_len(nrow(bt))), "Subject number (row of HSAUR3::BtheB)", "F3.0"),
  drug = lab_codes(as.double(bt$drug == "Yes"), c(No = 0, Yes = 1), label = "Taking antidepressant drugs"),
  length = lab_codes(as.double(bt$length == ">6m"), c("<6m" = 0, ">6m" = 1),
                    label = "Length of current episode (less or more than 6 months)"),
  treatment = lab_codes(as.double(match(as.character(bt$treatment), c("TAU", "BtheB"))), c(TAU = 1, BtheB = 2),
                       label = "Treatment: treatment as usual or Beat the Blues"),
  stringsAsFactors = FALSE)
for (k in seq_along(bdi_cols)) {
  bsav[[b_sav_cols[k]]] <- with_label(as.double(bt[[bdi_cols[k]]]),
    sprintf("Beck Depression Inventory II total, %s", c("pre treatment", "2 months", "3 months", "5 months", "8 months")[k]), "F2.0")
}
write_file(bsav, "btheb.sav", write_sav, compress = "byte")
rb <- read_sav(fp("btheb.sav"), user_na = TRUE)
check(nrow(rb) == 100 && identical(as.character(as_factor(rb$treatment)), as.character(bt$treatment)) &&
        identical(as.character(as_factor(rb$drug)), as.character(bt$drug)) &&
        identical(as.character(as_factor(rb$length)), as.character(bt$length)) &&
        all(sapply(seq_along(bdi_cols), function(k) same(as.double(rb[[b_sav_cols[k]]]), as.double(bt[[bdi_cols[k]]])))),
      "btheb.sav reproduces HSAUR3::BtheB")
cat("verified btheb.sav\n")

# long, from the file as read back; subject-major, waves in order; rows with bdi observed
bl <- do.call(rbind, lapply(seq_along(b_waves), function(k) data.frame(
  subject = as.integer(rb$subject), treatment = as.character(as_factor(rb$treatment)),
  drug = as.character(as_factor(rb$drug)), length = as.character(as_factor(rb$length)),
  wave = b_waves[k], months = b_months[k], bdi = as.double(rb[[b_sav_cols[k]]]), stringsAsFactors = FALSE)))
bl <- bl[order(bl$subject, match(bl$wave, b_waves)), ]
bl <- bl[!is.na(bl$bdi), ]
rownames(bl) <- NULL
bl$subject <- factor(bl$subject, levels = sort(unique(bl$subject)))
bl$treatment <- factor(bl$treatment, levels = c("TAU", "BtheB"))
bl$wave <- factor(bl$wave, levels = b_waves)

b_formula <- "bdi ~ treatment * wave + (1 | subject)"
emm_part <- function(m, mode) {
  cap <- capture({
    e <- emmeans(m, ~ treatment * wave, lmer.df = mode)
    es <- as.data.frame(summary(e, infer = c(TRUE, TRUE)))
    ct <- contrast(emmeans(m, ~ treatment | wave, lmer.df = mode), method = "revpairwise")
    cs <- as.data.frame(summary(ct, infer = c(TRUE, TRUE)))
    list(
      emmeans = rows(data.frame(treatment = as.character(es$treatment), wave = as.character(es$wave),
                                emmean = es$emmean, se = es$SE, df = es$df, lower_cl = es$lower.CL,
                                upper_cl = es$upper.CL, t = es$t.ratio, p = es$p.value, stringsAsFactors = FALSE)),
      contrasts = rows(data.frame(wave = as.character(cs$wave), contrast = as.character(cs$contrast),
                                  estimate = cs$estimate, se = cs$SE, df = cs$df, lower_cl = cs$lower.CL,
                                  upper_cl = cs$upper.CL, t = cs$t.ratio, p = cs$p.value, stringsAsFactors = FALSE)))
  })
  r <- cap$value
  r$warnings <- I(cap$warnings)
  r$messages <- I(cap$messages)
  r
}
fit_record <- function(control, control_text) {
  cap <- capture(lmerTest::lmer(as.formula(b_formula), data = bl, REML = TRUE, control = control))
  m <- cap$value
  fe <- coef_rows(summary(m, ddf = "Satterthwaite")$coefficients)
  fe_kr <- coef_rows(summary(m, ddf = "Kenward-Roger")$coefficients)
  vc <- as.data.frame(VarCorr(m))
  ll <- logLik(m)
  list(model = m, record = list(
    formula = b_formula, REML = TRUE, control = control_text,
    optimizer = m@optinfo$optimizer, feval = m@optinfo$feval,
    nobs = nobs(m), ngroups = as.list(ngrps(m)),
    fixed_effects = rows(fe),
    fixed_effects_kr = rows(fe_kr),
    random_effects = rows(data.frame(group = vc$grp, term = ifelse(is.na(vc$var1), "", vc$var1),
                                     variance = vc$vcov, sd = vc$sdcor, stringsAsFactors = FALSE)),
    residual_sd = sigma(m),
    theta = I(unname(getME(m, "theta"))), theta_names = I(names(getME(m, "theta"))),
    loglik = as.numeric(ll), loglik_df = attr(ll, "df"),
    reml_criterion = unname(REMLcrit(m)),
    aic = AIC(m), bic = BIC(m),
    singular = isSingular(m),
    convergence_messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
    optimizer_message = as.character(m@optinfo$message),
    warnings = I(cap$warnings), messages = I(cap$messages),
    emmeans = list(satterthwaite = emm_part(m, "satterthwaite"), kenward_roger = emm_part(m, "kenward-roger"))))
}
f_def <- fit_record(lmerControl(), "lmerControl() (lme4 default: nloptwrap, BOBYQA)")
f_tight <- fit_record(lmerControl(optimizer = "nloptwrap",
                                  optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-12, ftol_rel = 1e-15,
                                                 xtol_rel = 1e-12, maxeval = 1e5)),
                      "lmerControl(optimizer = 'nloptwrap', optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-12, ftol_rel = 1e-15, xtol_rel = 1e-12, maxeval = 1e5))")
f_bobyqa <- fit_record(lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5)),
                       "lmerControl(optimizer = 'bobyqa', optCtrl = list(rhoend = 1e-12, maxfun = 1e5))")
md <- function(a, b) max(abs(a - b))
cmp <- function(f) {
  a <- f_def$model
  b <- f$model
  list(reml_criterion_default_minus_this = REMLcrit(a) - REMLcrit(b),
       max_abs_theta = md(getME(a, "theta"), getME(b, "theta")),
       max_abs_fixef = md(fixef(a), fixef(b)),
       max_abs_fixef_in_se = max(abs(fixef(a) - fixef(b)) / sqrt(diag(as.matrix(vcov(b))))),
       max_abs_se = md(sqrt(diag(as.matrix(vcov(a)))), sqrt(diag(as.matrix(vcov(b))))),
       max_rel_satterthwaite_df = max(abs(summary(a)$coefficients[, "df"] / summary(b)$coefficients[, "df"] - 1)),
       max_abs_contrast = md(sapply(f_def$record$emmeans$satterthwaite$contrasts, `[[`, "estimate"),
                             sapply(f$record$emmeans$satterthwaite$contrasts, `[[`, "estimate")))
}
conv <- list(tight = cmp(f_tight), bobyqa_tight = cmp(f_bobyqa))
cat(sprintf("BtheB REML criterion default %.10f tight %.10f bobyqa %.10f; max |fixef diff| %.3g\n",
            REMLcrit(f_def$model), REMLcrit(f_tight$model), REMLcrit(f_bobyqa$model), conv$tight$max_abs_fixef))

wave_summary <- do.call(rbind, lapply(seq_along(b_waves), function(k) {
  x <- as.double(rb[[b_sav_cols[k]]])
  data.frame(wave = b_waves[k], months = b_months[k], column = b_sav_cols[k],
             n_observed = sum(!is.na(x)), n_tau = sum(!is.na(x) & as.double(rb$treatment) == 1),
             n_btheb = sum(!is.na(x) & as.double(rb$treatment) == 2), mean = mean(x, na.rm = TRUE),
             stringsAsFactors = FALSE)
}))
expected <- list(
  meta = list(
    script = "tests/r/import_fixtures.R",
    r_version = R.version.string,
    packages = pkg_versions(c("haven", "lme4", "lmerTest", "pbkrtest", "emmeans", "Matrix", "nloptr", "HSAUR3", "jsonlite")),
    platform = R.version$platform,
    source = "HSAUR3::BtheB (Beat the Blues trial: Proudfoot et al. 2003; Everitt & Hothorn, A Handbook of Statistical Analyses Using R, 3rd ed.), written to btheb.sav",
    conventions = I(c(
      "Data fitted = btheb.sav as read back with haven::read_sav, reshaped long: one row per subject x wave with bdi observed (rows with missing bdi dropped), subject-major, waves in order.",
      "subject = row number of HSAUR3::BtheB (1..100), a factor; treatment factor levels TAU (reference), BtheB; wave factor levels pre, m2, m3, m5, m8 (months 0, 2, 3, 5, 8; pre is the reference); treatment contrasts; R's term names (treatmentBtheB, wavem2, treatmentBtheB:wavem2).",
      "drug and length (No/Yes, <6m/>6m) are carried in btheb.sav but not in the model.",
      "fixed_effects: lmerTest summary(ddf = 'Satterthwaite'); fixed_effects_kr: summary(ddf = 'Kenward-Roger').",
      "emmeans: emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6); emmeans(m, ~ treatment * wave, lmer.df = mode), 95% CI, t against 0; contrasts = contrast(emmeans(m, ~ treatment | wave), 'revpairwise'), i.e. 'BtheB - TAU' within each wave.",
      "model = lme4 default optimizer (the usual target); model_tight = nloptwrap with tight tolerances; model_bobyqa_tight = minqa bobyqa, rhoend 1e-12; convergence = differences default vs each.",
      "Numbers: 15 significant digits (jsonlite digits = NA); NA = null."))),
  data = list(file = "btheb.sav", subjects = nrow(rb), nobs = nrow(bl),
              arms = I(c("TAU", "BtheB")), arm_column = "treatment", arm_codes = list(TAU = 1, BtheB = 2),
              waves = rows(wave_summary)),
  model = f_def$record,
  model_tight = f_tight$record,
  model_bobyqa_tight = f_bobyqa$record,
  convergence = conv)
jsonlite::write_json(expected, fp("btheb-expected.json"), digits = NA, auto_unbox = TRUE, pretty = TRUE,
                     na = "null", null = "null")
cat("wrote", fp("btheb-expected.json"), file.info(fp("btheb-expected.json"))$size, "bytes\n")

cat(sprintf("missing codes: %d cells (A %d, B %d, C %d; 999: %d, 99: %d; in long rows: %d); wide rows %d, long rows %d\n",
            nrow(cells), sum(cells$rule == "A"), sum(cells$rule == "B"), sum(cells$rule == "C"),
            sum(cells$code == 999), sum(cells$code == 99), sum(grid$status[cells$r] != "absent"),
            np, length(long_rows)))
