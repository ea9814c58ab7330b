//! The augmentation of White, Daniel & Royston (2010, Comput Stat Data Anal 54:2267) against
//! perfect prediction in logistic and multinomial imputation models, as `mice:::augment`: for
//! each predictor column and each observed category, two extra cases at the predictor's mean
//! plus and minus half its SD (clamped to its range; the other predictors at their means),
//! each of weight `(p + 1) / (2 p k)`.
use nalgebra::DMatrix;

/// The augmented data: predictors `x` (n + 2pk rows), categories `y` (codes), observed flags
/// and weights; rows beyond n are the augmentation (observed, never imputed).
pub struct Augmented {
    pub x: DMatrix<f64>,
    pub y: Vec<f64>,
    pub ry: Vec<bool>,
    pub w: Vec<f64>,
}

/// `mice:::augment(y, ry, x, wy)`; `y` holds category codes (missing rows any value).
pub fn augment(y: &[f64], ry: &[bool], x: &DMatrix<f64>) -> Augmented {
    let n = y.len();
    let p = x.ncols();
    let mut icod: Vec<f64> = y
        .iter()
        .zip(ry)
        .filter(|(_, &r)| r)
        .map(|(v, _)| *v)
        .collect();
    icod.sort_by(f64::total_cmp);
    icod.dedup();
    let k = icod.len();
    let plain = || Augmented {
        x: x.clone(),
        y: y.to_vec(),
        ry: ry.to_vec(),
        w: vec![1.0; n],
    };
    if p == 0 || ry.iter().filter(|r| !**r).count() == 1 {
        return plain();
    }
    let nr = 2 * p * k;
    let stats: Vec<(f64, f64, f64, f64)> = (0..p)
        .map(|c| {
            let col: Vec<f64> = x.column(c).iter().copied().collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
            let min = col.iter().copied().fold(f64::INFINITY, f64::min);
            let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (mean, var.sqrt(), min, max)
        })
        .collect();
    let mut xa = DMatrix::zeros(n + nr, p);
    xa.rows_mut(0, n).copy_from(x);
    let mut ya = y.to_vec();
    for r in 0..nr {
        // Column c is perturbed in rows 2kc .. 2k(c + 1), +0.5 SD then -0.5 SD per category.
        let perturbed = r / (2 * k);
        for (c, &(mean, sd, min, max)) in stats.iter().enumerate() {
            let b = if c == perturbed {
                if r % 2 == 0 {
                    0.5
                } else {
                    -0.5
                }
            } else {
                0.0
            };
            xa[(n + r, c)] = (mean + b * sd).max(min).min(max);
        }
        ya.push(icod[(r / 2) % k]);
    }
    let mut rya = ry.to_vec();
    rya.extend(std::iter::repeat_n(true, nr));
    let mut w = vec![1.0; n];
    w.extend(std::iter::repeat_n((p as f64 + 1.0) / nr as f64, nr));
    Augmented {
        x: xa,
        y: ya,
        ry: rya,
        w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_as_mice_augment() {
        // mice:::augment(factor(c("f","m",NA,"m","f",NA)), ry, cbind(a = c(1,2,3,4,10,6),
        // b = c(0,1,0,1,1,0))) printed its rows 7-14 as below (R 4.2, mice 3.15).
        let x = DMatrix::from_row_slice(
            6,
            2,
            &[1.0, 0.0, 2.0, 1.0, 3.0, 0.0, 4.0, 1.0, 10.0, 1.0, 6.0, 0.0],
        );
        let y = [0.0, 1.0, f64::NAN, 1.0, 0.0, f64::NAN];
        let ry = [true, true, false, true, true, false];
        let a = augment(&y, &ry, &x);
        assert_eq!(a.x.nrows(), 14);
        let sd_a = (((1.0f64 - 13.0 / 3.0).powi(2)
            + (2.0f64 - 13.0 / 3.0).powi(2)
            + (3.0f64 - 13.0 / 3.0).powi(2)
            + (4.0f64 - 13.0 / 3.0).powi(2)
            + (10.0f64 - 13.0 / 3.0).powi(2)
            + (6.0f64 - 13.0 / 3.0).powi(2))
            / 5.0)
            .sqrt();
        let mean_a = 26.0 / 6.0;
        for r in 0..4 {
            let sign = if r % 2 == 0 { 0.5 } else { -0.5 };
            assert!((a.x[(6 + r, 0)] - (mean_a + sign * sd_a)).abs() < 1e-12);
            assert!((a.x[(6 + r, 1)] - 0.5).abs() < 1e-12);
            // b perturbed by half its SD in rows 5-8 of the augmentation.
            assert!((a.x[(10 + r, 0)] - mean_a).abs() < 1e-12);
        }
        let ys: Vec<f64> = a.y[6..].to_vec();
        assert_eq!(ys, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        assert!(a.w[6..].iter().all(|w| (w - 3.0 / 8.0).abs() < 1e-15));
        assert!(a.ry[6..].iter().all(|r| *r));
    }
}
