//! Multiple imputation by chained equations (fully conditional specification; van Buuren &
//! Groothuis-Oudshoorn 2011, J Stat Softw 45(3), the `mice` package): each incomplete variable
//! of a wide data set is imputed in turn from all the others, over `iterations` sweeps, in
//! `m` independent chains. The elementary methods reproduce mice 3.15:
//!
//! * [`Method::Pmm`], `mice.impute.pmm` (type-1 matching: a Bayesian draw of the regression
//!   coefficients predicts the missing cases, the least-squares fit the observed ones, and
//!   one of the 5 nearest observed cases donates its value), [`pmm`];
//! * [`Method::Logreg`], `mice.impute.logreg` (logistic regression on the data augmented as
//!   White, Daniel & Royston 2010, Comput Stat Data Anal 54, a normal draw of the
//!   coefficients, Bernoulli draws), [`logreg`];
//! * [`Method::Polyreg`], `mice.impute.polyreg` (multinomial logit on the augmented data, draws
//!   from the fitted category probabilities without a parameter draw, as mice), [`polyreg`].
//!
//! As `mice::mice`: missing cells start as random draws from the variable's observed values
//! (`mice:::initialize.imp`), variables are visited left to right, every other variable is a
//! predictor (factors as treatment-contrast dummies, `model.matrix`), and the imputation is
//! the state after the last sweep. mice also drops predictors that are constant or collinear
//! (`remove.lindep`); here a singular cross-product gets mice's ridge fallback instead.
//!
//! Randomness: chain `k` draws from `substream(seed, COVARIATE_MI, k)` only, so results do
//! not depend on the number of threads.
pub mod augment;
pub mod design;
pub mod logreg;
pub mod pmm;
pub mod polyreg;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::progress::ProgressSink;
use crate::stats::rng::{substream, tags};

/// One variable of the wide data set.
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    /// Numbers, `None` missing.
    Numeric(Vec<Option<f64>>),
    /// A factor: codes into `levels`, `None` missing.
    Factor {
        codes: Vec<Option<u32>>,
        levels: Vec<String>,
    },
}

impl Var {
    pub fn len(&self) -> usize {
        match self {
            Var::Numeric(v) => v.len(),
            Var::Factor { codes, .. } => codes.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `i` observed.
    pub fn observed(&self, i: usize) -> bool {
        match self {
            Var::Numeric(v) => v[i].is_some_and(f64::is_finite),
            Var::Factor { codes, .. } => codes[i].is_some(),
        }
    }
    /// Number of missing rows.
    pub fn n_missing(&self) -> usize {
        (0..self.len()).filter(|&i| !self.observed(i)).count()
    }
    /// The value of row `i` as a number (a factor's code), NaN when missing.
    fn number(&self, i: usize) -> f64 {
        match self {
            Var::Numeric(v) => v[i].unwrap_or(f64::NAN),
            Var::Factor { codes, .. } => codes[i].map_or(f64::NAN, f64::from),
        }
    }
}

/// The elementary imputation method of a variable (mice's `method` vector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Pmm,
    Logreg,
    Polyreg,
}

impl Method {
    /// mice's default for a variable: `pmm` for numbers, `logreg` for a factor with two
    /// levels, `polyreg` for more (`mice:::make.method` with `defaultMethod`).
    pub fn default_for(v: &Var) -> Method {
        match v {
            Var::Numeric(_) => Method::Pmm,
            Var::Factor { levels, .. } if levels.len() <= 2 => Method::Logreg,
            Var::Factor { .. } => Method::Polyreg,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Method::Pmm => "pmm",
            Method::Logreg => "logreg",
            Method::Polyreg => "polyreg",
        }
    }
}

/// The wide data set: named variables of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct WideFrame {
    pub names: Vec<String>,
    pub vars: Vec<Var>,
}

impl WideFrame {
    pub fn n_rows(&self) -> usize {
        self.vars.first().map_or(0, Var::len)
    }
}

/// How to impute.
#[derive(Debug, Clone, PartialEq)]
pub struct FcsOptions {
    /// Number of imputations (chains).
    pub m: usize,
    /// Sweeps per chain (mice's `maxit`).
    pub iterations: usize,
    /// Method per variable (aligned with the frame); `None` for a complete variable.
    pub methods: Vec<Option<Method>>,
    pub seed: u64,
    /// PMM donors (mice's `donors`, 5).
    pub donors: usize,
}

/// Why the imputation cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImputeError {
    #[error("multiple imputation needs at least 2 imputations, got m = {0}")]
    TooFewImputations(usize),
    #[error("variable {0}: every value is missing, nothing to impute from")]
    AllMissing(String),
    #[error("variable {0} has missing values but no imputation method")]
    NoMethod(String),
    #[error("variable {name}: method {method} needs {needs}")]
    MethodMismatch {
        name: String,
        method: &'static str,
        needs: &'static str,
    },
    #[error("variable {name}: level \"{level}\" has no observed value (it occurs only where {name} is missing)")]
    EmptyLevel { name: String, level: String },
    #[error("the frame's variables have different lengths or names")]
    Shape,
}

/// The completed data sets: `values[k][j]` is variable `j` of imputation `k` as numbers (a
/// factor as its codes), every row filled.
#[derive(Debug, Clone, PartialEq)]
pub struct Imputations {
    pub values: Vec<Vec<Vec<f64>>>,
}

impl Imputations {
    /// Imputation `k`'s values of variable `j` at the rows where the data miss it.
    pub fn imputed(&self, data: &WideFrame, k: usize, j: usize) -> Vec<f64> {
        (0..data.n_rows())
            .filter(|&i| !data.vars[j].observed(i))
            .map(|i| self.values[k][j][i])
            .collect()
    }
}

/// Checks the data against the options (lengths, methods fitting the variables' types, an
/// observed value in each incomplete variable, no level without an observed value).
pub fn check(data: &WideFrame, opts: &FcsOptions) -> Result<(), ImputeError> {
    if opts.m < 2 {
        return Err(ImputeError::TooFewImputations(opts.m));
    }
    let n = data.n_rows();
    if data.names.len() != data.vars.len()
        || opts.methods.len() != data.vars.len()
        || data.vars.iter().any(|v| v.len() != n)
    {
        return Err(ImputeError::Shape);
    }
    for ((name, v), meth) in data.names.iter().zip(&data.vars).zip(&opts.methods) {
        let missing = v.n_missing();
        if missing == n && n > 0 {
            return Err(ImputeError::AllMissing(name.clone()));
        }
        if missing > 0 && meth.is_none() {
            return Err(ImputeError::NoMethod(name.clone()));
        }
        let mismatch = |method: Method, needs| ImputeError::MethodMismatch {
            name: name.clone(),
            method: method.name(),
            needs,
        };
        match (meth, v) {
            (Some(Method::Logreg), Var::Factor { levels, .. }) if levels.len() != 2 => {
                return Err(mismatch(Method::Logreg, "a factor with two levels"))
            }
            (Some(m @ (Method::Logreg | Method::Polyreg)), Var::Numeric(_)) => {
                return Err(mismatch(*m, "a factor (the column is numeric)"))
            }
            _ => {}
        }
        if let Var::Factor { codes, levels } = v {
            for (l, level) in levels.iter().enumerate() {
                if !codes.contains(&Some(l as u32)) {
                    return Err(ImputeError::EmptyLevel {
                        name: name.clone(),
                        level: level.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// `mice(data, m, maxit = iterations, method)`: `m` chains of chained-equation imputation,
/// in parallel, each from its own random substream.
pub fn impute(
    data: &WideFrame,
    opts: &FcsOptions,
    progress: &dyn ProgressSink,
) -> Result<Imputations, ImputeError> {
    check(data, opts)?;
    let bar = progress.bar(opts.m as u64, "covariate imputation (chained equations)");
    let values: Vec<Vec<Vec<f64>>> = (0..opts.m)
        .into_par_iter()
        .map(|k| {
            let mut rng = substream(opts.seed, tags::COVARIATE_MI, k as u64);
            let v = chain(data, opts, &mut rng);
            bar.inc(1);
            v
        })
        .collect();
    bar.finish();
    Ok(Imputations { values })
}

/// One chain: initial draws from the observed values, then `iterations` sweeps.
fn chain(data: &WideFrame, opts: &FcsOptions, rng: &mut ChaCha8Rng) -> Vec<Vec<f64>> {
    let n = data.n_rows();
    let mut cur: Vec<Vec<f64>> = data
        .vars
        .iter()
        .map(|v| (0..n).map(|i| v.number(i)).collect())
        .collect();
    let incomplete: Vec<usize> = (0..data.vars.len())
        .filter(|&j| data.vars[j].n_missing() > 0 && opts.methods[j].is_some())
        .collect();
    for &j in &incomplete {
        let obs: Vec<f64> = (0..n)
            .filter(|&i| data.vars[j].observed(i))
            .map(|i| cur[j][i])
            .collect();
        for (i, cell) in cur[j].iter_mut().enumerate() {
            if !data.vars[j].observed(i) {
                *cell = obs[rng.random_range(0..obs.len())];
            }
        }
    }
    for _ in 0..opts.iterations {
        for &j in &incomplete {
            let x = design::predictors(data, &cur, j);
            let ry: Vec<bool> = (0..n).map(|i| data.vars[j].observed(i)).collect();
            let y: Vec<f64> = cur[j].clone();
            let draws = match opts.methods[j] {
                Some(Method::Pmm) => pmm::impute(&y, &ry, &x, opts.donors, rng),
                Some(Method::Logreg) => logreg::impute(&y, &ry, &x, rng),
                Some(Method::Polyreg) => {
                    let k = match &data.vars[j] {
                        Var::Factor { levels, .. } => levels.len(),
                        Var::Numeric(_) => 0,
                    };
                    polyreg::impute(&y, &ry, &x, k, rng)
                }
                None => continue,
            };
            let mut it = draws.into_iter();
            for i in 0..n {
                if !ry[i] {
                    cur[j][i] = it.next().unwrap_or(f64::NAN);
                }
            }
        }
    }
    cur
}
