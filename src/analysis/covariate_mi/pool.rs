//! Pooling of the analyses of the completed data sets by Rubin's rules
//! ([`crate::stats::rubin`], as `mice::pool.scalar`), term by term.
use crate::results::covariate_mi::PooledTerm;
use crate::stats::distributions::{p_two_sided_t, qt};
use crate::stats::rubin::rubin;

/// The pooled row of one term from its M estimates, standard errors and Satterthwaite (or
/// Kenward-Roger) df. The complete-data df of the Barnard-Rubin df is the mean of the M fits'
/// df of the term (`mice::pool.scalar(Q, U, n = dfcom + 1, k = 1)`); with asymptotic df
/// (`[model] df = "none"`) it is infinite and the df are Rubin's (1987) `(m - 1) / lambda^2`.
pub fn pool_term(
    term: &str,
    wave: Option<&str>,
    estimates: &[f64],
    std_errors: &[f64],
    dfs: &[f64],
    level: f64,
) -> PooledTerm {
    let u: Vec<f64> = std_errors.iter().map(|s| s * s).collect();
    let dfcom = if dfs.iter().all(|d| d.is_finite()) {
        dfs.iter().sum::<f64>() / dfs.len() as f64
    } else {
        f64::INFINITY
    };
    let p = rubin(estimates, &u, dfcom);
    let se = p.t.sqrt();
    let h = qt(1.0 - (1.0 - level) / 2.0, p.df) * se;
    PooledTerm {
        term: term.to_string(),
        wave: wave.map(str::to_string),
        estimate: p.qbar,
        std_error: se,
        statistic: p.qbar / se,
        df: p.df,
        p_value: p_two_sided_t(p.qbar / se, p.df),
        conf_low: p.qbar - h,
        conf_high: p.qbar + h,
        ubar: p.ubar,
        b: p.b,
        t: p.t,
        dfcom,
        riv: p.riv,
        lambda: p.lambda,
        fmi: p.fmi,
    }
}
