#!/usr/bin/env bash
# Speed benchmark: fits the same files with lme4 (R) and herstel (release
# build) in one run and prints the time ratios and herstel's peak memory.
#
#   benches/lmm_vs_lme4.sh [workdir]      (default workdir: target/lmm-bench)
#
# Models:
#   registry_100k  y ~ time * arm + (1 + time | id) + (1 | site)   REML, 100,000 rows
#   insteval       y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)   ML, 73,421 rows
#                  (lme4's InstEval, exported to CSV by this script)
#   registry_1m    as registry_100k with 1,000,000 rows (memory goal: < 2 GB)
#   *.parquet      the two registries as Parquet (written by pyarrow where python3 has it;
#                  herstel only: its Parquet reader against its CSV reader)
# herstel runs with its default options (Satterthwaite df) and --json --timings.
#
# Environment:
#   HERSTEL=path     use this binary instead of building one in release mode, e.g. the test
#                    profile's target/debug/herstel (built by `cargo test --test lmm`; for
#                    timing set `[profile.dev.package.herstel] opt-level = 3` locally)
#   SKIP_LME4=1      reuse lme4_times.tsv from an earlier run
#   LME4_1M=1        also time lme4 on the 1,000,000-row file (minutes; by default only
#                    herstel's time and memory are measured there)
#   HERSTEL_LMM_THREADS=1  sequential dense factorizations (default: rayon's thread count)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-target/lmm-bench}"
mkdir -p "$WORK"
command -v Rscript >/dev/null || { echo "Rscript not found: install R with lme4" >&2; exit 1; }

if [ -z "${HERSTEL:-}" ]; then
  cargo build --release --quiet
  HERSTEL="$PWD/target/release/herstel"
fi
# Set SKIP_LME4=1 to reuse lme4_times.tsv from an earlier run.

[ "${SKIP_LME4:-0}" = 1 ] || Rscript --vanilla - "$WORK" <<'RS'
args <- commandArgs(trailingOnly = TRUE); work <- args[1]
suppressMessages(library(lme4))
mk_registry <- function(n_id, n_time = 5, n_site = 50, seed = 1) {
  set.seed(seed)
  id <- rep(seq_len(n_id), each = n_time)
  time <- rep(seq(0, 2, length.out = n_time), n_id)
  site <- ((id - 1) %% n_site) + 1
  arm <- ifelse(((id - 1) %/% n_site) %% 2 == 0, "control", "imr")
  b0 <- rnorm(n_id, 0, 1)[id]; b1 <- rnorm(n_id, 0, 0.3)[id]; s0 <- rnorm(n_site, 0, 0.5)[site]
  y <- 10 + 0.5 * time + 0.2 * (arm == "imr") * time + b0 + b1 * time + s0 + rnorm(length(id))
  data.frame(id = sprintf("P%07d", id), site = sprintf("S%03d", site), arm = arm,
             time = time, y = round(y, 6))
}
f100k <- file.path(work, "registry_100k.csv"); f1m <- file.path(work, "registry_1m.csv")
fie <- file.path(work, "insteval.csv")
if (!file.exists(f100k)) write.csv(mk_registry(20000), f100k, row.names = FALSE)
if (!file.exists(f1m)) write.csv(mk_registry(200000, seed = 2), f1m, row.names = FALSE)
if (!file.exists(fie)) {
  d <- lme4::InstEval
  write.csv(data.frame(y = d$y, service = as.integer(as.character(d$service)),
                       s = paste0("s", d$s), d = paste0("d", d$d), dept = paste0("dept", d$dept)),
            fie, row.names = FALSE)
}
time_fit <- function(file, formula, REML) {
  tr <- system.time(dat <- read.csv(file, stringsAsFactors = TRUE))[["elapsed"]]
  t <- system.time(m <- lmer(as.formula(formula), data = dat, REML = REML))[["elapsed"]]
  cat(sprintf("%s\t%.3f\t%.6f\t%.3f\n", basename(file), t, as.numeric(-2 * logLik(m)), tr))
}
sink(file.path(work, "lme4_times.tsv"))
time_fit(f100k, "y ~ time * arm + (1 + time | id) + (1 | site)", TRUE)
time_fit(fie, "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", FALSE)
if (Sys.getenv("LME4_1M") == "1") time_fit(f1m, "y ~ time * arm + (1 + time | id) + (1 | site)", TRUE)
sink()
RS

run_herstel() { # file formula extra-args -> "seconds maxrss_kb objective read frame fit df"
  local file="$1" formula="$2"; shift 2
  local out="$WORK/herstel_$(basename "$file" .csv).json"
  local sub=fit
  case "$HERSTEL" in *herstel-fit) sub="";; esac
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$HERSTEL" $sub --data "$file" --formula "$formula" \
    --json --timings "$@" > "$out" 2> "$WORK/stderr.txt"
  local obj
  obj=$(python3 -c "import json,sys; d=json.load(open('$out')); t=d['timings']; print('%.6f %.3f %.3f %.3f %.3f' % (d['reml_criterion'] if d['reml'] else d['deviance'], t['read'], t['frame'], t['fit'], t['df']))")
  echo "$(cat "$WORK/time.txt") $obj"
}

# herstel runs with its default options (Satterthwaite df for every coefficient, which
# lmer does not compute) as a whole process: reading the CSV, the model frame, the fit, the df
# and the JSON. R runs read.csv + lmer in one session (the times of both, without R's start).
# Columns: lme4's read.csv + lmer seconds; herstel's read, frame, fit and df steps
# (`--timings`) and its whole process; the ratio of the two totals; herstel's process over
# its fit (fit = model frame + fit, the engine); herstel's peak memory; both objectives.
printf "%-21s %9s %7s %7s %7s %7s %9s %8s %9s %7s %16s %16s\n" model lme4_s read_s frame_s fit_s df_s herstel_s ratio proc/fit rss_MB lme4_obj herstel_obj
files="registry_100k.csv insteval.csv registry_1m.csv"
if python3 -c "import pyarrow" 2>/dev/null; then
  for f in registry_100k registry_1m; do
    [ -f "$WORK/$f.parquet" ] || python3 -c "import pyarrow.csv as c, pyarrow.parquet as q; q.write_table(c.read_csv('$WORK/$f.csv'), '$WORK/$f.parquet')"
  done
  files="$files registry_100k.parquet registry_1m.parquet"
fi
for file in $files; do
  case "$file" in
    registry_100k.*|registry_1m.*)
      read -r ht rss hobj hread hframe hfit hdf < <(run_herstel "$WORK/$file" "y ~ time * arm + (1 + time | id) + (1 | site)") ;;
    insteval.csv)
      read -r ht rss hobj hread hframe hfit hdf < <(run_herstel "$WORK/$file" "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)" --ml) ;;
  esac
  lobj=-; ltot=-; r_tot=-
  if line=$(grep -P "^\Q$file\E\t" "$WORK/lme4_times.tsv"); then
    IFS=$'\t' read -r _ lt lobj lread <<< "$line"
    ltot=$(python3 -c "print(f'{$lt+${lread:-0}:.3f}')")
    r_tot=$(python3 -c "print(f'{$ltot/max($ht,1e-9):.1f}x')")
  fi
  pf=$(python3 -c "print(f'{$ht/max($hframe+$hfit,1e-9):.2f}')")
  printf "%-21s %9s %7s %7s %7s %7s %9s %8s %9s %7d %16s %16s\n" "${file/.csv/}" "$ltot" "$hread" "$hframe" "$hfit" "$hdf" "$ht" "$r_tot" "$pf" $((rss / 1024)) "$lobj" "$hobj"
done
