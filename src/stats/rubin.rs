//! Rubin's rules (Rubin 1987, Multiple Imputation for Nonresponse in Surveys, ch. 3) with the
//! Barnard & Rubin (1999, Biometrika 86:948) small-sample df, as `mice::pool` and
//! `mice::pool.scalar`: one home for the pooling of every multiple imputation in herstel (the
//! reference-based MI of the outcome and the imputation of missing covariates).

/// Rubin's rules for a scalar: estimates `q` and within-imputation variances `u` of the M
/// completed data sets, complete-data df `df_com`. As `mice::pool.scalar(Q, U, n, k)`:
/// `qbar`, `ubar`, `b` (M - 1 divisor), `t = ubar + (1 + 1/M) b`, the Barnard-Rubin df
/// `nu = nu_old nu_obs / (nu_old + nu_obs)` with `lambda = (1 + 1/M) b / t`,
/// `nu_old = (M - 1) / lambda^2`, `nu_obs = (df_com + 1) / (df_com + 3) df_com (1 - lambda)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pooled {
    pub qbar: f64,
    pub ubar: f64,
    pub b: f64,
    pub t: f64,
    pub df: f64,
    pub riv: f64,
    pub lambda: f64,
    pub fmi: f64,
}

/// See [`Pooled`]; the df as `mice:::barnard.rubin` (lambda floored at 1e-4 there, so `b = 0`
/// gives a finite df).
pub fn rubin(q: &[f64], u: &[f64], df_com: f64) -> Pooled {
    let m = q.len() as f64;
    let qbar = q.iter().sum::<f64>() / m;
    let ubar = u.iter().sum::<f64>() / m;
    let b = if q.len() > 1 {
        q.iter().map(|x| (x - qbar).powi(2)).sum::<f64>() / (m - 1.0)
    } else {
        f64::NAN
    };
    let t = ubar + (1.0 + 1.0 / m) * b;
    let riv = (1.0 + 1.0 / m) * b / ubar;
    let lambda = (1.0 + 1.0 / m) * b / t;
    let df = barnard_rubin(m, b, t, df_com);
    let fmi = (riv + 2.0 / (df + 3.0)) / (1.0 + riv);
    Pooled {
        qbar,
        ubar,
        b,
        t,
        df,
        riv,
        lambda,
        fmi,
    }
}

/// `mice:::barnard.rubin(m, b, t, dfcom)`: `lambda = (1 + 1/m) b / t` (floored at 1e-4 as
/// mice does), `dfold = (m - 1) / lambda^2`, `dfobs = (dfcom + 1) / (dfcom + 3) dfcom (1 -
/// lambda)`, `dfold dfobs / (dfold + dfobs)`; `dfcom = Inf` gives `dfold`.
pub fn barnard_rubin(m: f64, b: f64, t: f64, df_com: f64) -> f64 {
    let lambda = ((1.0 + 1.0 / m) * b / t).max(1e-4);
    let dfold = (m - 1.0) / (lambda * lambda);
    if df_com.is_infinite() {
        return dfold;
    }
    let dfobs = (df_com + 1.0) / (df_com + 3.0) * df_com * (1.0 - lambda);
    dfold * dfobs / (dfold + dfobs)
}
