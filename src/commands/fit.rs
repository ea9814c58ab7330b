//! `herstel fit --data FILE --formula "..." [--ml] [--df ...] [--json]`: one linear mixed
//! model in lme4 syntax, printed like lme4/lmerTest's summary or as JSON (`--json`, below).
//!
//! **Repeated measures, weights, model comparison**. With `--residual` or
//! `--weights` the model is fitted by the MMRM engine ([`crate::mmrm::fit_model`]):
//!
//! * `--residual "STRUCTURE(TIME | SUBJECT)"` or `"STRUCTURE(TIME | SUBJECT, by = GROUP)"`: the
//!   covariance of a participant's rows over the waves, as nlme's `gls(correlation = ...)` /
//!   SAS `REPEATED TIME / SUBJECT=SUBJECT TYPE=...` / the R package mmrm. STRUCTURE is `us`
//!   (unstructured), `cs` (compound symmetry), `csh` (heterogeneous CS), `ar1`, `ar1h`
//!   (heterogeneous AR(1)) or `toep` (Toeplitz); `by = GROUP` estimates one covariance per level
//!   of GROUP (e.g. per arm; constant within a participant). TIME is a factor; its level order
//!   (`--levels wave=T1,T2,T3`) orders the covariance and defines the lags of `ar1`/`toep`.
//!   At most one row per participant and wave.
//! * `--weights "ident(COLUMN)"`: one residual SD per level of COLUMN (nlme's
//!   `varIdent(form = ~ 1 | COLUMN)`), e.g. per arm or, in a stacked model, per equation.
//! * A formula with one random-effects term, `y ~ x + (1 + x | id)`, together with `--weights`
//!   and/or `--residual` (same subject), fits `V_i = Z_i G Z_i' + R_i` with `G` unstructured:
//!   nlme's `lme(y ~ x, random = ~ 1 + x | id, weights = varIdent(~ 1 | s))`.
//! * `--df satterthwaite|kenward-roger|none` as for mixed models (Kenward-Roger needs REML).
//! * `--compare-residual "cs(wave | id)"` and/or `--compare-formula "y ~ arm + wave"`: fits a
//!   second model with that residual structure / formula (same data, weights and method) and
//!   prints AIC, BIC, logLik and the likelihood-ratio test as nlme's `anova(m1, m2)`; REML fits
//!   need the same fixed effects (else use `--ml`).
//!
//! `--json` writes the fixed effects (broom layout: term, estimate, std_error, df, statistic,
//! p_value, conf_low, conf_high), `vcov`, loglik/AIC/BIC, `covariance_parameters`, a
//! `"residual_covariance"` list (per `by` group and weights stratum: `waves`, `covariance`
//! matrix by wave, `correlation`, `sd`), `"random_effects"` (terms, covariance `G`),
//! `"residual_sd"` (per weights stratum) and, with a comparison, `"comparison"`.
use std::collections::HashMap;
use std::path::PathBuf;

use super::timings::{Stopwatch, Timings};
use super::CmdResult;
use crate::formula::{build_model_frame, ModelFormula};
use crate::frame::Frame;
use crate::lmm::{fit_model_frame, DfMethod, LmmError, LmmOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data file: CSV (header row, `,` separated, `""` quoting; empty or NA = missing) or Parquet.
    #[arg(long)]
    pub data: PathBuf,
    /// Model formula in lme4 syntax, e.g. "Reaction ~ Days + (Days | Subject)".
    #[arg(long)]
    pub formula: String,
    /// Fit by maximum likelihood instead of REML.
    #[arg(long)]
    pub ml: bool,
    /// Denominator df for t tests: satterthwaite (default), kenward-roger or none.
    #[arg(long, default_value = "satterthwaite")]
    pub df: DfMethod,
    /// Write JSON instead of the printed summary.
    #[arg(long)]
    pub json: bool,
    /// Level order for a factor column, e.g. --levels arm=TAU,IMR (repeatable).
    #[arg(long = "levels", value_name = "COLUMN=L1,L2,...")]
    pub levels: Vec<String>,
    /// Residual covariance of the waves within a participant (MMRM, no random terms):
    /// `us(wave | participant_id)`, also cs, csh, ar1, ar1h, toep; `, by = arm` for one per group.
    #[arg(long, value_name = "STRUCTURE(TIME | SUBJECT[, by = GROUP])")]
    pub residual: Option<String>,
    /// Residual SD per level of a column (nlme varIdent): `ident(arm)`.
    #[arg(long, value_name = "ident(COLUMN)")]
    pub weights: Option<String>,
    /// Compare with the same model under another residual structure (AIC/BIC, LRT).
    #[arg(long, value_name = "STRUCTURE(TIME | SUBJECT[, by = GROUP])")]
    pub compare_residual: Option<String>,
    /// Compare with the same model under another formula (AIC/BIC, LRT; use --ml when the
    /// fixed effects differ).
    #[arg(long, value_name = "FORMULA")]
    pub compare_formula: Option<String>,
    /// Report where the time goes (read, frame, fit, df, output) on stderr, and as `timings`
    /// in the JSON of `--json`.
    #[arg(long)]
    pub timings: bool,
    /// A generalized linear mixed model (lme4's glmer, glmmTMB) instead of a linear one:
    /// `poisson`, `negative-binomial` (NB2, theta estimated), `binomial` (logit),
    /// `binomial-probit`, `binomial-cloglog`; one random intercept `(1 | group)`.
    #[arg(long, value_name = "FAMILY")]
    pub family: Option<String>,
    /// Binomial: the column with the number of trials (the response counts the successes);
    /// without it the response is 0/1.
    #[arg(long, value_name = "COLUMN")]
    pub trials: Option<String>,
    /// A column added to the linear predictor as is (e.g. log exposure for rates).
    #[arg(long, value_name = "COLUMN")]
    pub offset: Option<String>,
    /// Quadrature points of the GLMM: 1 = Laplace (default), up to 25 (adaptive Gauss-Hermite).
    #[arg(long, default_value_t = 1)]
    pub nagq: usize,
}

fn run_glmm(args: &Args, frame: &Frame, family: &str) -> CmdResult {
    use crate::glmm::family::{Family, Link};
    use crate::glmm::{fit_glmm, glmm_data_weighted, GlmmOptions};
    let fam = match family {
        "poisson" => Family::Poisson,
        "binomial" | "binomial-logit" => Family::Binomial(Link::Logit),
        "binomial-probit" => Family::Binomial(Link::Probit),
        "binomial-cloglog" => Family::Binomial(Link::Cloglog),
        "negative-binomial" => Family::NegativeBinomial { theta: 1.0 },
        other => {
            return Err(format!(
                "--family `{other}`: use poisson, negative-binomial, binomial, binomial-probit or binomial-cloglog"
            )
            .into())
        }
    };
    let formula = ModelFormula::parse(&args.formula).map_err(LmmError::from)?;
    let mf = build_model_frame(&formula, frame).map_err(LmmError::from)?;
    let column = |name: &str| -> Result<Vec<f64>, Box<dyn std::error::Error + Send + Sync>> {
        match frame.column(name) {
            Some(crate::frame::Column::Numeric(v)) => Ok(mf.rows.iter().map(|&r| v[r]).collect()),
            Some(_) => Err(format!("column `{name}` is not numeric").into()),
            None => Err(format!("no column `{name}` in {}", args.data.display()).into()),
        }
    };
    let trials = args.trials.as_deref().map(column).transpose()?;
    let offset = args.offset.as_deref().map(column).transpose()?;
    let weights = args.weights.as_deref().map(column).transpose()?;
    let data = glmm_data_weighted(&mf, trials.clone(), offset.clone(), weights.clone(), fam)?;
    let opts = GlmmOptions {
        family: fam,
        n_agq: args.nagq,
        level: 0.95,
    };
    let fit = fit_glmm(&data, &opts)?;
    // --compare-formula: the second model on the same rows, and the likelihood-ratio test
    // (anova(m1, m2) of lme4: the smaller model first).
    let comparison = match &args.compare_formula {
        None => None,
        Some(f2) => {
            let formula2 = ModelFormula::parse(f2).map_err(LmmError::from)?;
            let mf2 = build_model_frame(&formula2, frame).map_err(LmmError::from)?;
            crate::stats::lrt::check_same_rows(&mf.rows, &mf2.rows)?;
            let fit2 = fit_glmm(
                &glmm_data_weighted(&mf2, trials, offset, weights, fam)?,
                &opts,
            )?;
            let (small, large) = if fit2.loglik_df < fit.loglik_df {
                (&fit2, &fit)
            } else {
                (&fit, &fit2)
            };
            let lrt = crate::stats::lrt::lr_test(
                small.minus_two_loglik,
                small.loglik_df,
                large.minus_two_loglik,
                large.loglik_df,
            )?;
            Some(serde_json::json!({
                "formula": f2,
                "aic": fit2.aic,
                "bic": fit2.bic,
                "loglik": fit2.loglik,
                "loglik_df": fit2.loglik_df,
                "chisq": lrt.chisq,
                "df": lrt.df,
                "p_value": lrt.p_value,
            }))
        }
    };
    if args.json {
        let mut value = serde_json::to_value(&fit)?;
        if let (Some(c), Some(obj)) = (comparison, value.as_object_mut()) {
            obj.insert("comparison".into(), c);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", glmm_text(&fit, &args.formula));
        if let Some(c) = comparison {
            print!(
                "\nModel comparison with {}: AIC {:.4}, BIC {:.4}, logLik {:.4}; Chisq {:.4} on {} df, Pr(>Chisq) = {:.4e}\n",
                c["formula"].as_str().unwrap_or(""),
                c["aic"].as_f64().unwrap_or(f64::NAN),
                c["bic"].as_f64().unwrap_or(f64::NAN),
                c["loglik"].as_f64().unwrap_or(f64::NAN),
                c["chisq"].as_f64().unwrap_or(f64::NAN),
                c["df"].as_f64().unwrap_or(f64::NAN),
                c["p_value"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The printed summary of a GLMM (as lme4's `summary(glmer(...))`).
fn glmm_text(f: &crate::glmm::GlmmFit, formula: &str) -> String {
    let approx = if f.n_agq == 1 {
        "Laplace Approximation".to_string()
    } else {
        format!("Adaptive Gauss-Hermite Quadrature (nAGQ = {})", f.n_agq)
    };
    // Random effects as lme4 prints them: group, name, SD, correlations with the earlier terms.
    let mut re = String::from(" Groups           Name         Std.Dev.  Corr\n");
    let terms = std::iter::once((f.group.as_str(), &f.re_names, &f.re_sds, &f.re_corr)).chain(
        f.other_terms
            .iter()
            .map(|t| (t.group.as_str(), &t.names, &t.sds, &t.corr)),
    );
    for (group, names, sds, corr) in terms {
        let q = sds.len();
        for (i, (name, sd)) in names.iter().zip(sds).enumerate() {
            let c: Vec<String> = (0..i)
                .map(|j| format!("{:6.3}", corr.get(i * q + j).copied().unwrap_or(f64::NAN)))
                .collect();
            re.push_str(&format!(
                " {:<16} {:<12} {:9.6} {}\n",
                if i == 0 { group } else { "" },
                name,
                sd,
                c.join(" ")
            ));
        }
    }
    let mut s = format!(
        "Generalized linear mixed model fit by maximum likelihood ({approx})\n Family: {} ( {} ){}\nFormula: {formula}\n\n      AIC       BIC    logLik -2*log(L)\n{:9.4} {:9.4} {:9.4} {:9.4}\n\nRandom effects:\n{re}Number of obs: {}, groups: {}, {}{}\n\nFixed effects:\n",
        f.family,
        f.link,
        f.theta
            .map(|t| format!(", theta {t:.6} (Var = mu + mu^2 / theta)"))
            .unwrap_or_default(),
        f.aic, f.bic, f.loglik, f.minus_two_loglik, f.n_obs, f.group, f.n_groups,
        f.other_terms
            .iter()
            .map(|t| format!("; {}, {}", t.group, t.n_groups))
            .collect::<String>()
    );
    s.push_str(&format!(
        "{:<20} {:>12} {:>12} {:>9} {:>12}\n",
        "", "Estimate", "Std. Error", "z value", "Pr(>|z|)"
    ));
    for t in &f.fixed_effects {
        s.push_str(&format!(
            "{:<20} {:>12.6} {:>12.6} {:>9.3} {:>12.4e}\n",
            t.term, t.estimate, t.std_error, t.statistic, t.p_value
        ));
    }
    if let Some(o) = &f.overdispersion {
        s.push_str(&format!(
            "\nOverdispersion: Pearson chi-square {:.2} on {} df, ratio {:.3}, p = {:.3e}{}\n",
            o.chisq,
            o.df,
            o.ratio,
            o.p_value,
            if o.ratio > 1.2 && o.p_value < 0.05 {
                " (overdispersed: consider --family negative-binomial)"
            } else {
                ""
            }
        ));
    }
    for w in &f.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s
}

#[derive(serde::Serialize)]
struct MmrmOutput {
    #[serde(flatten)]
    summary: crate::mmrm::MmrmSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<crate::mmrm::ModelComparison>,
}

fn run_mmrm(args: &Args, frame: &Frame) -> CmdResult {
    use crate::mmrm::{compare_fits, fit_model, MmrmOptions, ResidualSpec, WeightsSpec};
    let residual = args
        .residual
        .as_deref()
        .map(ResidualSpec::parse)
        .transpose()?;
    let weights = args
        .weights
        .as_deref()
        .map(WeightsSpec::parse)
        .transpose()?;
    let opts = MmrmOptions {
        reml: !args.ml,
        ..Default::default()
    };
    let fit = fit_model(
        &args.formula,
        residual.as_ref(),
        weights.as_ref(),
        frame,
        &opts,
    )?;
    let summary = fit.summary(args.df)?;
    let comparison = if args.compare_residual.is_some() || args.compare_formula.is_some() {
        let res2 = match &args.compare_residual {
            Some(r) => Some(ResidualSpec::parse(r)?),
            None => residual.clone(),
        };
        let formula2 = args.compare_formula.as_deref().unwrap_or(&args.formula);
        let fit2 = fit_model(formula2, res2.as_ref(), weights.as_ref(), frame, &opts)?;
        Some(compare_fits(&fit, &fit2)?)
    } else {
        None
    };
    if args.json {
        let out = MmrmOutput {
            summary,
            comparison,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", summary.to_text());
        if let Some(c) = &comparison {
            print!("{}", c.to_text());
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn read_frame(args: &Args) -> Result<Frame, Box<dyn std::error::Error + Send + Sync>> {
    let mut orders = HashMap::new();
    for spec in &args.levels {
        let (col, lv) = spec
            .split_once('=')
            .ok_or_else(|| format!("--levels `{spec}`: expected COLUMN=L1,L2,..."))?;
        orders.insert(
            col.to_string(),
            lv.split(',').map(|s| s.trim().to_string()).collect(),
        );
    }
    crate::frame::read_frame_file(&args.data, &orders).map_err(|e| match e {
        // The file's structure errors name the file themselves.
        crate::frame::ReadFrameError::Table(e) => e.to_string().into(),
        e => format!("{}: {e}", args.data.display()).into(),
    })
}

pub fn run(args: Args) -> CmdResult {
    let mut clock = Stopwatch::start();
    let mut timings = Timings::default();
    let frame = read_frame(&args)?;
    timings.read = clock.lap();
    if let Some(family) = args.family.clone() {
        if args.residual.is_some() || args.compare_residual.is_some() {
            return Err("--family fits a generalized linear mixed model (Wald z tests); --residual and --compare-residual are for linear models".into());
        }
        if args.weights.as_deref().is_some_and(|w| w.contains('(')) {
            return Err("with --family, --weights names a column of prior weights (each row's log-likelihood times its weight, as glmmTMB's weights); `ident(...)` residual variances are for linear models".into());
        }
        return run_glmm(&args, &frame, &family);
    }
    if args.trials.is_some() || args.offset.is_some() || args.nagq != 1 {
        return Err("--trials, --offset and --nagq belong to a GLMM: add --family (poisson, negative-binomial, binomial, ...)".into());
    }
    if args.residual.is_some() || args.weights.is_some() {
        let code = run_mmrm(&args, &frame)?;
        if args.timings {
            timings.fit = clock.lap();
            timings.total = clock.total();
            eprintln!(
                "{} (MMRM: frame, df and output are within fit)",
                timings.to_line()
            );
        }
        return Ok(code);
    }
    if args.compare_residual.is_some() || args.compare_formula.is_some() {
        return Err("--compare-residual/--compare-formula need --residual or --weights (for mixed models without them use `herstel run` LRTs)".into());
    }
    let opts = LmmOptions {
        reml: !args.ml,
        ..LmmOptions::default()
    };
    let formula = ModelFormula::parse(&args.formula).map_err(LmmError::from)?;
    let mf = build_model_frame(&formula, &frame).map_err(LmmError::from)?;
    timings.frame = clock.lap();
    let fit = fit_model_frame(mf, &opts)?;
    timings.fit = clock.lap();
    let summary = fit.summary(args.df)?;
    timings.df = clock.lap();
    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        if let (true, Some(obj)) = (args.timings, value.as_object_mut()) {
            timings.total = clock.total();
            obj.insert("timings".into(), serde_json::to_value(&timings)?);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", summary.to_text());
    }
    if args.timings {
        timings.output = clock.lap();
        timings.total = clock.total();
        eprintln!("{}", timings.to_line());
    }
    Ok(std::process::ExitCode::SUCCESS)
}
