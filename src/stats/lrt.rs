//! The likelihood-ratio test of two nested models fitted to the same observations:
//! `Chisq = deviance(smaller) - deviance(larger)` on `npar(larger) - npar(smaller)` df, as
//! `anova(m0, m1)` prints it for lme4 (`anova.merMod`), nlme (`anova.lme`, `L.Ratio`) and glm
//! fits. The models' own modules decide what "deviance" is (ML refits of REML fits in lme4,
//! REML deviances with equal fixed effects in nlme); this is the test itself, once.
use thiserror::Error;

use super::distributions::pchisq_upper;

/// The test statistic, its df and the chi-square upper-tail p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrTest {
    /// `max(0, deviance_smaller - deviance_larger)` (a negative difference means the larger
    /// model did not reach the smaller one's optimum; reported as 0 as lme4 does).
    pub chisq: f64,
    pub df: f64,
    pub p_value: f64,
}

/// Why two models cannot be compared by a likelihood-ratio test.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LrtError {
    #[error("the models use different rows ({smaller} vs {larger} observations); refit both on the same complete cases")]
    DifferentRows { smaller: usize, larger: usize },
    #[error(
        "the models are not nested: the smaller has {smaller} parameters, the larger {larger}"
    )]
    NotNested { smaller: usize, larger: usize },
}

/// The same-observations check every LRT needs: `Ok` when both models used the same rows.
pub fn check_same_rows<T: PartialEq>(smaller: &[T], larger: &[T]) -> Result<(), LrtError> {
    if smaller == larger {
        Ok(())
    } else {
        Err(LrtError::DifferentRows {
            smaller: smaller.len(),
            larger: larger.len(),
        })
    }
}

impl LrTest {
    /// The test of a given statistic on `df` degrees of freedom (nlme's `anova.lme` takes
    /// `L.Ratio = 2 |logLik_2 - logLik_1|` without clamping).
    pub fn from_statistic(chisq: f64, df: f64) -> LrTest {
        LrTest {
            chisq,
            df,
            p_value: pchisq_upper(chisq, df),
        }
    }
}

/// The likelihood-ratio test from the two deviances (-2 log-likelihoods) and parameter counts.
pub fn lr_test(
    deviance_smaller: f64,
    npar_smaller: usize,
    deviance_larger: f64,
    npar_larger: usize,
) -> Result<LrTest, LrtError> {
    if npar_smaller >= npar_larger {
        return Err(LrtError::NotNested {
            smaller: npar_smaller,
            larger: npar_larger,
        });
    }
    let chisq = (deviance_smaller - deviance_larger).max(0.0);
    Ok(LrTest::from_statistic(
        chisq,
        (npar_larger - npar_smaller) as f64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chisq_and_p_as_r() {
        // pchisq(3.84145882069412, 1, lower.tail = FALSE) = 0.05
        let t = lr_test(103.84145882069412, 3, 100.0, 4).unwrap();
        assert!((t.chisq - 3.84145882069412).abs() < 1e-12);
        assert!((t.p_value - 0.05).abs() < 1e-12, "{}", t.p_value);
        assert!(matches!(
            lr_test(1.0, 4, 0.0, 4),
            Err(LrtError::NotNested { .. })
        ));
        assert!(check_same_rows(&[1, 2], &[1, 2]).is_ok());
        assert!(matches!(
            check_same_rows(&[1, 2], &[1]),
            Err(LrtError::DifferentRows {
                smaller: 2,
                larger: 1
            })
        ));
    }
}
