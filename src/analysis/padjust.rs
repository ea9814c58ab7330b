//! Multiplicity adjustment of p-values, as R's `stats::p.adjust` (holm, hochberg,
//! bonferroni, BH). Missing p-values (`None`) are left out of the count `n`, as R does with NA.

use super::spec::PAdjustMethod;

/// Adjusts `p` by `method`; the result is aligned with the input.
pub fn p_adjust(p: &[Option<f64>], method: PAdjustMethod) -> Vec<Option<f64>> {
    let idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_some()).collect();
    let n = idx.len();
    let mut out: Vec<Option<f64>> = vec![None; p.len()];
    if n == 0 {
        return out;
    }
    let vals: Vec<f64> = idx.iter().filter_map(|&i| p[i]).collect();
    let nf = n as f64;
    let adjusted: Vec<f64> = match method {
        PAdjustMethod::None => vals.clone(),
        PAdjustMethod::Bonferroni => vals.iter().map(|v| (v * nf).min(1.0)).collect(),
        PAdjustMethod::Holm => {
            // o <- order(p); pmin(1, cummax((n - i + 1L) * p[o]))[order(o)]
            let o = order(&vals, false);
            let mut adj = vec![0.0; n];
            let mut run = f64::NEG_INFINITY;
            for (rank, &j) in o.iter().enumerate() {
                let v = (nf - rank as f64) * vals[j];
                run = run.max(v);
                adj[j] = run.min(1.0);
            }
            adj
        }
        PAdjustMethod::Hochberg => {
            // o <- order(p, decreasing = TRUE); pmin(1, cummin((n - i + 1L) * p[o]))
            let o = order(&vals, true);
            let mut adj = vec![0.0; n];
            let mut run = f64::INFINITY;
            for (k, &j) in o.iter().enumerate() {
                let i = nf - k as f64; // i = n:1
                let v = (nf - i + 1.0) * vals[j];
                run = run.min(v);
                adj[j] = run.min(1.0);
            }
            adj
        }
        PAdjustMethod::Bh => {
            // o <- order(p, decreasing = TRUE); pmin(1, cummin(n / i * p[o]))
            let o = order(&vals, true);
            let mut adj = vec![0.0; n];
            let mut run = f64::INFINITY;
            for (k, &j) in o.iter().enumerate() {
                let i = nf - k as f64;
                run = run.min(nf / i * vals[j]);
                adj[j] = run.min(1.0);
            }
            adj
        }
    };
    for (k, &i) in idx.iter().enumerate() {
        out[i] = Some(adjusted[k]);
    }
    out
}

/// Stable order of `v` (R's `order`, ties by position).
fn order(v: &[f64], decreasing: bool) -> Vec<usize> {
    let mut o: Vec<usize> = (0..v.len()).collect();
    o.sort_by(|&a, &b| {
        let c = v[a].total_cmp(&v[b]);
        if decreasing {
            c.reverse()
        } else {
            c
        }
    });
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adj(p: &[f64], m: PAdjustMethod) -> Vec<f64> {
        let v: Vec<Option<f64>> = p.iter().map(|&x| Some(x)).collect();
        p_adjust(&v, m).into_iter().map(|x| x.unwrap()).collect()
    }

    // Values from R 4.2: p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.5), method = ...)
    const P: [f64; 5] = [0.01, 0.04, 0.03, 0.005, 0.5];

    #[test]
    fn holm_matches_r() {
        let r = [0.04, 0.09, 0.09, 0.025, 0.5];
        for (a, b) in adj(&P, PAdjustMethod::Holm).iter().zip(r) {
            assert!((a - b).abs() < 1e-15, "{a} {b}");
        }
    }

    #[test]
    fn hochberg_matches_r() {
        let r = [0.04, 0.08, 0.08, 0.025, 0.5];
        for (a, b) in adj(&P, PAdjustMethod::Hochberg).iter().zip(r) {
            assert!((a - b).abs() < 1e-15, "{a} {b}");
        }
    }

    #[test]
    fn bh_matches_r() {
        let r = [0.025, 0.05, 0.05, 0.025, 0.5];
        for (a, b) in adj(&P, PAdjustMethod::Bh).iter().zip(r) {
            assert!((a - b).abs() < 1e-15, "{a} {b}");
        }
    }

    #[test]
    fn missing_values_are_not_counted() {
        let out = p_adjust(&[Some(0.01), None, Some(0.02)], PAdjustMethod::Bonferroni);
        assert_eq!(out[1], None);
        assert!((out[0].unwrap() - 0.02).abs() < 1e-15);
        assert!((out[2].unwrap() - 0.04).abs() < 1e-15);
    }
}
