//! Analytic derivatives of the MMRM criterion in the natural covariance parameters gamma,
//! and from them Satterthwaite (lmerTest's definition, Kuznetsova et al. 2017) and
//! Kenward-Roger (Kenward & Roger 1997; pbkrtest's `vcovAdj`/`Lb_ddf`, Halekoh & Hojsgaard
//! 2014) inference, both summed over missingness patterns (see [`super::fit`]), so their cost
//! does not grow with the number of participants.
//!
//! With `V = blockdiag(V_i)`, `G_k = dV/dgamma_k`, `G_kl` its second derivatives,
//! `P = V^-1 - V^-1 X C X'V^-1`, `C = (X'V^-1 X)^-1`:
//! * REML deviance gradient `tr(P G_k) - y'P G_k P y`; observed Hessian
//!   `-tr(P G_k P G_l) + tr(P G_kl) + 2 y'P G_k P G_l P y - y'P G_kl P y`
//!   (ML: `V^-1` in place of `P` in the traces).
//! * Satterthwaite: `A = 2 H^-1` of that Hessian, `dC/dgamma_k = C X'V^-1 G_k V^-1 X C`,
//!   `df = 2 (l'Cl)^2 / (g'A g)`: invariant to the parametrization at the optimum, the same
//!   df as lmerTest's numerical derivatives give on any parametrization.
//! * Kenward-Roger: pbkrtest's `P_k = -X'V^-1 G_k V^-1 X`, `Q_kl = X'V^-1 G_k V^-1 G_l V^-1 X`,
//!   the expected information `I_E = tr(V^-1 G_k V^-1 G_l) - 2 tr(C Q_kl) + tr(C P_k C P_l)`,
//!   `W = 2 I_E^-1`, `Phi_A = C + 2 C U C`. For `us`, `cs` and `toep` V is linear in gamma
//!   and this is the full Kenward-Roger (SAS DDFM=KR, pbkrtest on the gls); for `csh`,
//!   `ar1`, `ar1h` the second-derivative term of Kenward & Roger is left out (as pbkrtest,
//!   which assumes linearity; the R mmrm package's "Kenward-Roger-Linear" idea), so KR there
//!   depends on the parametrization (variances and correlation).
//! * Random effects (`Z G Z'`, linear in the entries of `G`), per-stratum residual variances
//!   (linear) and `varIdent` ratios on a wave structure (quadratic: second derivatives
//!   `d2V/d delta_s d delta_t` enter the Hessian exactly, and are left out of KR as above) all
//!   enter through the per-pattern derivatives of `V`.
use crate::lmm::inference::DfError;
use nalgebra::DMatrix;

/// First derivatives and (row-major k x k) second derivatives of `Sigma`.
type SigmaDerivatives = (Vec<DMatrix<f64>>, Vec<DMatrix<f64>>);

use super::fit::{sub, CovParams, Evaluation, MmrmData, Pattern, Residual};
use super::structures::CovKind;
use crate::lmm::inference::kenward_roger::{kr_from_sums, KrAdjusted};
use crate::lmm::inference::satterthwaite::{lmertest_a, Satterthwaite};

/// First and second derivatives of `Sigma_g` in its gamma (t x t each).
fn sigma_derivatives(kind: CovKind, t: usize, gamma: &[f64]) -> Option<SigmaDerivatives> {
    let k = gamma.len();
    let base = kind.sigma_gamma(t, gamma)?;
    if kind.is_linear() {
        let zero = vec![0.0; k];
        let s0 = kind.sigma_gamma(t, &zero)?;
        let first = (0..k)
            .map(|i| {
                let mut e = zero.clone();
                e[i] = 1.0;
                kind.sigma_gamma(t, &e).map(|s| s - &s0)
            })
            .collect::<Option<Vec<_>>>()?;
        return Some((first, Vec::new()));
    }
    let h: Vec<f64> = gamma.iter().map(|g| 1e-4 * g.abs().max(1e-2)).collect();
    let at = |d: &[(usize, f64)]| {
        let mut gg = gamma.to_vec();
        for &(i, v) in d {
            gg[i] += v;
        }
        kind.sigma_gamma(t, &gg)
    };
    let mut first = Vec::with_capacity(k);
    for (i, &hi) in h.iter().enumerate() {
        let sp = at(&[(i, hi)])?;
        let sm = at(&[(i, -hi)])?;
        first.push((sp - sm) / (2.0 * hi));
    }
    let mut second = vec![DMatrix::zeros(t, t); k * k];
    for i in 0..k {
        for j in i..k {
            let d = if i == j {
                let sp = at(&[(i, h[i])])?;
                let sm = at(&[(i, -h[i])])?;
                (sp - &base * 2.0 + sm) / (h[i] * h[i])
            } else {
                let pp = at(&[(i, h[i]), (j, h[j])])?;
                let pm = at(&[(i, h[i]), (j, -h[j])])?;
                let mp = at(&[(i, -h[i]), (j, h[j])])?;
                let mm = at(&[(i, -h[i]), (j, -h[j])])?;
                (pp - pm - mp + mm) / (4.0 * h[i] * h[j])
            };
            second[i * k + j] = d.clone();
            second[j * k + i] = d;
        }
    }
    Some((first, second))
}

/// Derivatives of the deviance and the matrices inference needs, at gamma.
#[derive(Debug, Clone)]
pub struct Derivatives {
    pub k: usize,
    pub gradient: Vec<f64>,
    /// Observed Hessian of the deviance, k x k.
    pub hessian: DMatrix<f64>,
    /// `X'V^-1 G_k V^-1 X` (= -P_k of pbkrtest).
    pub qx: Vec<DMatrix<f64>>,
    /// `X'V^-1 G_k V^-1 G_l V^-1 X` for `k <= l` at `k * K + l` (pbkrtest's `Q_kl`).
    pub rx: Vec<DMatrix<f64>>,
    /// `tr(V^-1 G_k V^-1 G_l)`.
    pub ktrace: DMatrix<f64>,
    /// `C = (X'V^-1 X)^-1`.
    pub vcov: DMatrix<f64>,
}

/// First derivatives `(index, dV/dgamma_index)` (ascending index) and second derivatives
/// `(i, j, d2V/dgamma_i dgamma_j)`, `i <= j`, of one pattern's `V`.
type PatternDerivatives = (
    Vec<(usize, DMatrix<f64>)>,
    Vec<(usize, usize, DMatrix<f64>)>,
);

/// Derivatives of one pattern's `V = Z G Z' + Lambda Sigma Lambda` (or `+ diag(sigma2_s)`) in
/// gamma (layout of [`MmrmData::gamma_from_params`]).
fn pattern_derivatives(
    data: &MmrmData,
    pat: &Pattern,
    prm: &CovParams,
    sd: &[SigmaDerivatives],
) -> PatternDerivatives {
    let m = pat.strata.len();
    let mut first = Vec::new();
    let mut second = Vec::new();
    if let Some(z) = &pat.z {
        let q = data.q_re;
        let mut idx = 0;
        for b in 0..q {
            for a in b..q {
                let za = z.column(a);
                let zb = z.column(b);
                let mut d = za * zb.transpose();
                if a != b {
                    d += zb * za.transpose();
                }
                first.push((idx, d));
                idx += 1;
            }
        }
    }
    let off = data.n_re_par();
    match data.residual {
        Residual::Waves(kind) => {
            let np = kind.n_par(data.n_waves);
            let goff = off + pat.group * np;
            let soff = off + data.n_sigma_par();
            let d = &prm.strata;
            let ds: Vec<f64> = pat.strata.iter().map(|&s| d[s]).collect();
            let sig = sub(&prm.sigmas[pat.group], &pat.waves);
            let (sfirst, ssecond) = &sd[pat.group];
            let lam = |s: &DMatrix<f64>| DMatrix::from_fn(m, m, |i, j| s[(i, j)] * ds[i] * ds[j]);
            // d(delta_i delta_j)/d delta_s.
            let dlam = |s: &DMatrix<f64>, st: usize| {
                DMatrix::from_fn(m, m, |i, j| {
                    let a = if pat.strata[i] == st { ds[j] } else { 0.0 };
                    let b = if pat.strata[j] == st { ds[i] } else { 0.0 };
                    s[(i, j)] * (a + b)
                })
            };
            let present: Vec<usize> = (1..data.n_strata)
                .filter(|s| pat.strata.contains(s))
                .collect();
            let subs: Vec<DMatrix<f64>> = sfirst.iter().map(|g| sub(g, &pat.waves)).collect();
            for (a, g) in subs.iter().enumerate() {
                first.push((goff + a, lam(g)));
            }
            for &s in &present {
                first.push((soff + s - 1, dlam(&sig, s)));
            }
            if !kind.is_linear() {
                for a in 0..np {
                    for c in a..np {
                        let g2 = sub(&ssecond[a * np + c], &pat.waves);
                        second.push((goff + a, goff + c, lam(&g2)));
                    }
                }
            }
            for (a, g) in subs.iter().enumerate() {
                for &s in &present {
                    second.push((goff + a, soff + s - 1, dlam(g, s)));
                }
            }
            for (i1, &s) in present.iter().enumerate() {
                for &t in &present[i1..] {
                    let dd = DMatrix::from_fn(m, m, |i, j| {
                        let (si, sj) = (pat.strata[i], pat.strata[j]);
                        let v = f64::from(u8::from(si == s && sj == t))
                            + f64::from(u8::from(si == t && sj == s));
                        sig[(i, j)] * v
                    });
                    second.push((soff + s - 1, soff + t - 1, dd));
                }
            }
        }
        Residual::Independent => {
            for s in 0..data.n_strata {
                if pat.strata.contains(&s) {
                    let dd = DMatrix::from_fn(m, m, |i, j| {
                        if i == j && pat.strata[i] == s {
                            1.0
                        } else {
                            0.0
                        }
                    });
                    first.push((off + s, dd));
                }
            }
        }
    }
    (first, second)
}

impl Derivatives {
    /// Computes the derivatives. `eval` must be the evaluation at `gamma`.
    ///
    /// A named numerical kernel (one piece: the first and second derivatives of `V_i` per
    /// pattern are accumulated in one pass over the patterns).
    pub fn compute(
        data: &MmrmData,
        gamma: &[f64],
        eval: &Evaluation,
        reml: bool,
    ) -> Result<Derivatives, DfError> {
        let kk = data.n_par();
        if gamma.len() != kk {
            return Err(DfError::WrongParameterCount);
        }
        let prm = data
            .params_from_gamma_psd(gamma)
            .ok_or(DfError::InvalidParameters)?;
        let p = data.p;
        let q = p + 1;
        let sd: Vec<SigmaDerivatives> = match data.residual {
            Residual::Waves(kind) => {
                let np = kind.n_par(data.n_waves);
                let off = data.n_re_par();
                (0..data.n_groups)
                    .map(|g| {
                        sigma_derivatives(
                            kind,
                            data.n_waves,
                            &gamma[off + g * np..off + (g + 1) * np],
                        )
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or(DfError::DerivativesNotFinite)?
            }
            Residual::Independent => Vec::new(),
        };
        let linear = data.is_linear();
        let zq = DMatrix::<f64>::zeros(q, q);
        let mut b = vec![zq.clone(); kk];
        let mut d = vec![zq.clone(); kk * kk];
        let mut e = vec![zq.clone(); if linear { 0 } else { kk * kk }];
        let mut tr1 = vec![0.0; kk];
        let mut ktrace = DMatrix::<f64>::zeros(kk, kk);
        let mut tr2 = DMatrix::<f64>::zeros(kk, kk);
        for pat in &data.patterns {
            let v = data.pattern_v(pat, &prm).ok_or(DfError::MissingPattern)?;
            let vinv = v
                .cholesky()
                .ok_or(DfError::PatternNotPositiveDefinite)?
                .inverse();
            let nsub = pat.n_subjects as f64;
            let (first, second) = pattern_derivatives(data, pat, &prm, &sd);
            let vg: Vec<DMatrix<f64>> = first.iter().map(|(_, m)| &vinv * m).collect();
            // One participant: with U = V^-1 [X y], Z'V^-1 G_a V^-1 Z = U' G_a U and
            // Z'V^-1 G_a V^-1 G_c V^-1 Z = (V^-1 G_a U)' (G_c U): q x m products only.
            let single = (pat.n_subjects == 1).then(|| {
                let u = &vinv * &pat.rows;
                let mg: Vec<DMatrix<f64>> = first.iter().map(|(_, g)| g * &u).collect();
                let kg: Vec<DMatrix<f64>> = mg.iter().map(|m| &vinv * m).collect();
                (u, mg, kg)
            });
            for (ia, (a, _)) in first.iter().enumerate() {
                let a = *a;
                tr1[a] += nsub * vg[ia].trace();
                let hv = match &single {
                    Some((u, mg, _)) => {
                        b[a] += u.transpose() * &mg[ia];
                        None
                    }
                    None => {
                        let hv = &vg[ia] * &vinv;
                        pat.add_qform(&mut b[a], &hv);
                        Some(hv)
                    }
                };
                for (ic, (c, gc)) in first.iter().enumerate().skip(ia) {
                    let c = *c;
                    match (&single, &hv) {
                        (Some((_, mg, kg)), _) => d[a * kk + c] += kg[ia].transpose() * &mg[ic],
                        (None, Some(hv)) => {
                            let j = hv * gc * &vinv;
                            pat.add_qform(&mut d[a * kk + c], &j);
                        }
                        _ => {}
                    }
                    let tr = nsub * vg[ia].component_mul(&vg[ic].transpose()).sum();
                    ktrace[(a, c)] += tr;
                    if c != a {
                        ktrace[(c, a)] += tr;
                    }
                }
            }
            if !linear {
                for (a, c, g2) in &second {
                    let h2 = &vinv * g2 * &vinv;
                    pat.add_qform(&mut e[a * kk + c], &h2);
                    let t2 = nsub * (&vinv * g2).trace();
                    tr2[(*a, *c)] += t2;
                    if c != a {
                        tr2[(*c, *a)] += t2;
                    }
                }
            }
        }
        let cmat = &eval.vcov;
        let mut cvec = DMatrix::<f64>::zeros(q, 1);
        for i in 0..p {
            cvec[(i, 0)] = -eval.beta[i];
        }
        cvec[(p, 0)] = 1.0;
        let quad = |m: &DMatrix<f64>| (cvec.transpose() * m * &cvec)[(0, 0)];
        let xpart = |m: &DMatrix<f64>| m.view((0, 0), (p, p)).into_owned();
        let qx: Vec<DMatrix<f64>> = b.iter().map(xpart).collect();
        let av: Vec<DMatrix<f64>> = b
            .iter()
            .map(|m| m.view((0, 0), (p, q)).into_owned() * &cvec)
            .collect();
        let mut gradient = vec![0.0; kk];
        for a in 0..kk {
            let mut gv = tr1[a] - quad(&b[a]);
            if reml {
                gv -= (cmat * &qx[a]).trace();
            }
            gradient[a] = gv;
        }
        let cq: Vec<DMatrix<f64>> = qx.iter().map(|m| cmat * m).collect();
        let mut rx = vec![DMatrix::<f64>::zeros(p, p); kk * kk];
        let mut hessian = DMatrix::<f64>::zeros(kk, kk);
        for a in 0..kk {
            for c in a..kk {
                let dac = &d[a * kk + c];
                let r = xpart(dac);
                let mut trpp = ktrace[(a, c)];
                if reml {
                    trpp += -2.0 * (cmat * &r).trace() + (&cq[a] * &cq[c]).trace();
                }
                let ypy = quad(dac) - (av[a].transpose() * cmat * &av[c])[(0, 0)];
                let mut h = -trpp + 2.0 * ypy;
                if !linear {
                    let eac = &e[a * kk + c];
                    let mut trp2 = tr2[(a, c)];
                    if reml {
                        trp2 -= (cmat * xpart(eac)).trace();
                    }
                    h += trp2 - quad(eac);
                }
                hessian[(a, c)] = h;
                hessian[(c, a)] = h;
                rx[a * kk + c] = r;
            }
        }
        Ok(Derivatives {
            k: kk,
            gradient,
            hessian,
            qx,
            rx,
            ktrace,
            vcov: cmat.clone(),
        })
    }

    /// Satterthwaite ingredients in the shape of [`crate::lmm::inference::satterthwaite`]:
    /// `A = 2 H^+` (eigenvalues above 1e-8, lmerTest's rule) and `dC/dgamma_k`.
    pub fn satterthwaite(&self) -> Satterthwaite {
        let (a, warnings) = lmertest_a(&self.hessian);
        let jac = self
            .qx
            .iter()
            .map(|m| &self.vcov * m * &self.vcov)
            .collect();
        Satterthwaite {
            vcov: self.vcov.clone(),
            jac,
            a,
            warnings,
        }
    }

    /// Kenward-Roger adjusted covariance (pbkrtest `vcovAdj16_internal`, summed by pattern).
    pub fn kenward_roger(&self) -> Result<KrAdjusted, DfError> {
        let pp: Vec<DMatrix<f64>> = self.qx.iter().map(|m| -m).collect();
        kr_from_sums(&self.vcov, pp, &self.rx, &self.ktrace)
    }
}
