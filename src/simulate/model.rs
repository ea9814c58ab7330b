//! The latent model and item generation.
//!
//! Five latent scales per participant i and wave t, each on the metric of its scored outcome:
//! S self-management (IMRS item mean), B clinical (BSI GSI, higher = worse), F functional (SFS),
//! M personal recovery (MHRM sum), H HoNOS sum. Each is a stable part P (mean + site effect +
//! person effect; person effects correlated by `latent.person_cor`; in the cluster design S
//! also has a group intercept) plus a within-person part w:
//!
//! ```text
//! wS = time_S[t] + e_S + IMR * (effect_S[t] * m_i + [t > 0] v_g)
//! wB = time_B[t] + a1 wS + e_B + IMR * effect_B[t]
//! wF = time_F[t] + a2 wS + e_F + IMR * effect_F[t]
//! wM = time_M[t] + c' wS + b1 wB + b2 wF + e_M + IMR * effect_M[t]
//! wH = time_H[t] + h_S wS + h_B wB + e_H + IMR * effect_H[t]
//! ```
//!
//! with occasion residuals e ~ N(0, occasion_sd), the IMR group effect v_g ~ N(0,
//! groups.effect_sd), and the individual effect multiplier m_i (attendance and group
//! fidelity, mean 1 over the intervention arm). The within-person chain is S -> B -> M and
//! S -> F -> M with the direct path S -> M (Roosenschoon et al. 2024, PLoS ONE
//! 10.1371/journal.pone.0313202); HoNOS sits beside it (it does not act on M).
//!
//! Items: `clamp(round(latent_per_item + offset_j + noise))` where latent_per_item is S (IMRS
//! client), S + clinician shift + rater terms (IMRS clinician), B (BSI), M / items (MHRM),
//! H / items (HoNOS), F + person x subscale profile (SFS, one decimal).
use super::config::{Design, ItemSim, ScaleParams, SimConfig};
use super::design::TrialDesign;
use super::rng::{Rng, Stream};

/// Index of the latent scales.
pub const S: usize = 0;
pub const B: usize = 1;
pub const F: usize = 2;
pub const M: usize = 3;
pub const H: usize = 4;

/// Instruments in the order of study.toml and assessments.csv.
pub const INSTRUMENTS: [&str; 6] = [
    "imrs_client",
    "imrs_clinician",
    "mhrm",
    "bsi",
    "sfs",
    "honos",
];

/// HoNOS "not known" code.
pub const HONOS_NOT_KNOWN: f64 = 9.0;

/// How an instrument's score is computed from its answered items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreRule {
    /// Mean of the answered items (IMRS, BSI GSI, SFS).
    Mean,
    /// Mean of the answered items x number of items (MHRM, HoNOS).
    ProratedSum,
}

/// Scoring rule of instrument `k` (index into [`INSTRUMENTS`]).
pub fn score_rule(k: usize) -> ScoreRule {
    match k {
        2 | 5 => ScoreRule::ProratedSum,
        _ => ScoreRule::Mean,
    }
}

/// Scores one instrument's items (NaN = empty; HoNOS 9 = not known): valid when at least 80%
/// are answered (integer rule answered x 5 >= 4 x items, as in the reference scoring), else
/// `None`. Rules: IMRS mean, MHRM and HoNOS prorated sum (mean x items), BSI GSI mean, SFS mean.
pub fn score(k: usize, items: &[f64]) -> Option<f64> {
    let honos = k == 5;
    let mut n = 0usize;
    let mut sum = 0.0;
    for &x in items {
        if x.is_nan() || (honos && x == HONOS_NOT_KNOWN) {
            continue;
        }
        n += 1;
        sum += x;
    }
    if n == 0 || n * 5 < 4 * items.len() {
        return None;
    }
    let mean = sum / n as f64;
    Some(match score_rule(k) {
        ScoreRule::Mean => mean,
        ScoreRule::ProratedSum => mean * items.len() as f64,
    })
}

/// Lower-triangular Cholesky factor of a 5 x 5 matrix (the shared
/// [`crate::stats::linalg::cholesky`]); `None` unless positive definite with every pivot above
/// 1e-12.
pub fn cholesky5(a: &[Vec<f64>]) -> Option<[[f64; 5]; 5]> {
    let mut flat = Vec::with_capacity(25);
    for i in 0..5 {
        let row = a.get(i)?;
        for j in 0..5 {
            flat.push(*row.get(j)?);
        }
    }
    let f = crate::stats::linalg::cholesky(&flat, 5).ok()?;
    let mut l = [[0.0; 5]; 5];
    for i in 0..5 {
        if f[i * 5 + i] * f[i * 5 + i] <= 1e-12 {
            return None;
        }
        for j in 0..=i {
            l[i][j] = f[i * 5 + j];
        }
    }
    Some(l)
}

/// Random effects and person-level draws of one trial.
#[derive(Debug, Clone)]
pub struct LatentDraws {
    /// Site effects: `[site][scale]`.
    pub site_effects: Vec<[f64; 5]>,
    /// IMR group effect on S at follow-up (intervention groups; 0 for control groups).
    pub group_effects: Vec<f64>,
    /// Cluster design: group intercept on S at every wave (0 in the individual design).
    pub group_intercepts: Vec<f64>,
    /// Per person: stable part P of each scale.
    pub stable: Vec<[f64; 5]>,
    /// Per person: standardized person effect on H (drives admissions).
    pub z_honos: Vec<f64>,
    /// Per person: effect multiplier m_i (1 for control participants).
    pub multiplier: Vec<f64>,
    /// Per person: clinician rater deviation.
    pub rater: Vec<f64>,
    /// Per person: SFS subscale profile deviations.
    pub sfs_profile: Vec<Vec<f64>>,
    /// Per person x wave: latent values S, B, F, M, H and the clinician's view of S.
    pub waves: Vec<Vec<[f64; 6]>>,
}

/// Draws the latent model for a design (stream `Latent`).
pub fn draw_latent(cfg: &SimConfig, design: &TrialDesign, seed: u64) -> LatentDraws {
    let mut rng = Rng::new(seed, Stream::Latent);
    let l = &cfg.latent;
    let scales = [
        &l.self_management,
        &l.clinical,
        &l.functional,
        &l.personal,
        &l.honos,
    ];
    let site_effects = draw_site_effects(cfg, &scales, &mut rng);
    let (group_effects, group_intercepts) = draw_group_effects(cfg, design, &mut rng);
    let chol = cholesky5(&l.person_cor).unwrap_or([
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ]);
    let expected_dose = {
        let w = cfg.sessions.dose_weight;
        (1.0 - w) + w * super::design::expected_sessions(cfg) / f64::from(cfg.sessions.offered)
    };
    let model = LatentModel {
        cfg,
        design,
        scales,
        chol,
        expected_dose,
    };
    let n = design.persons.len();
    let mut out = LatentDraws {
        site_effects,
        group_effects,
        group_intercepts,
        stable: Vec::with_capacity(n),
        z_honos: Vec::with_capacity(n),
        multiplier: Vec::with_capacity(n),
        rater: Vec::with_capacity(n),
        sfs_profile: Vec::with_capacity(n),
        waves: Vec::with_capacity(n),
    };
    for person in &design.persons {
        model.draw_person(person, &mut rng, &mut out);
    }
    out
}

/// Site effects `[site][scale]`, one normal draw per site and scale.
fn draw_site_effects(cfg: &SimConfig, scales: &[&ScaleParams; 5], rng: &mut Rng) -> Vec<[f64; 5]> {
    cfg.sites
        .iter()
        .map(|_| {
            let mut e = [0.0; 5];
            for (k, sc) in scales.iter().enumerate() {
                e[k] = rng.normal(0.0, sc.site_sd);
            }
            e
        })
        .collect()
}

/// Per group: the IMR group effect on S at follow-up (intervention groups only) and the
/// cluster-design intercept on S (0 in the individual design); both are drawn for every
/// group so that the stream does not depend on the design.
fn draw_group_effects(
    cfg: &SimConfig,
    design: &TrialDesign,
    rng: &mut Rng,
) -> (Vec<f64>, Vec<f64>) {
    let mut group_effects = Vec::with_capacity(design.groups.len());
    let mut group_intercepts = Vec::with_capacity(design.groups.len());
    for g in &design.groups {
        let v = rng.normal(0.0, cfg.groups.effect_sd);
        let c = rng.normal(0.0, cfg.groups.cluster_intercept_sd);
        group_effects.push(if g.arm == 1 { v } else { 0.0 });
        group_intercepts.push(if cfg.study.design == Design::Cluster {
            c
        } else {
            0.0
        });
    }
    (group_effects, group_intercepts)
}

/// The parameters every person's draws share.
struct LatentModel<'c> {
    cfg: &'c SimConfig,
    design: &'c TrialDesign,
    /// S, B, F, M, H.
    scales: [&'c ScaleParams; 5],
    /// Cholesky factor of the person correlation matrix.
    chol: [[f64; 5]; 5],
    /// The dose multiplier of the expected number of sessions (rescales to mean 1).
    expected_dose: f64,
}

/// One person's draws that the waves use.
struct PersonDraw {
    /// Stable part of each scale.
    stable: [f64; 5],
    /// Clinician rater deviation.
    rater: f64,
    /// In the intervention arm.
    imr: bool,
    /// Effect multiplier m_i.
    multiplier: f64,
    /// The person's group effect on S (0 without a group).
    v_g: f64,
}

impl LatentModel<'_> {
    /// Draws one person (correlated person effects, rater, SFS profile, then every wave) and
    /// appends them to `out`.
    fn draw_person(&self, person: &super::design::Person, rng: &mut Rng, out: &mut LatentDraws) {
        let cfg = self.cfg;
        let mut z = [0.0; 5];
        for zk in z.iter_mut() {
            *zk = rng.std_normal();
        }
        let chol = &self.chol;
        let mut corr = [0.0; 5];
        for i in 0..5 {
            corr[i] = (0..=i).map(|j| chol[i][j] * z[j]).sum();
        }
        let site = out
            .site_effects
            .get(person.site)
            .copied()
            .unwrap_or([0.0; 5]);
        let intercept = person
            .group
            .and_then(|g| out.group_intercepts.get(g))
            .copied()
            .unwrap_or(0.0);
        let mut stable = [0.0; 5];
        for k in 0..5 {
            stable[k] = self.scales[k].mean + site[k] + self.scales[k].person_sd * corr[k];
        }
        stable[S] += intercept;
        let rater = rng.normal(0.0, cfg.clinician.person_sd);
        let n_sfs = cfg.instruments.sfs.offsets.len();
        let profile: Vec<f64> = (0..n_sfs)
            .map(|_| rng.normal(0.0, cfg.instruments.sfs.profile_sd))
            .collect();
        let imr = person.arm == 1;
        let multiplier = if imr {
            self.effect_multiplier(person)
        } else {
            1.0
        };
        let v_g = person
            .group
            .and_then(|g| out.group_effects.get(g))
            .copied()
            .unwrap_or(0.0);
        let pd = PersonDraw {
            stable,
            rater,
            imr,
            multiplier,
            v_g,
        };
        let nw = cfg.n_waves();
        let mut waves = Vec::with_capacity(nw);
        for t in 0..nw {
            waves.push(self.draw_wave(&pd, t, rng));
        }
        out.stable.push(stable);
        out.z_honos.push(corr[H]);
        out.multiplier.push(multiplier);
        out.rater.push(rater);
        out.sfs_profile.push(profile);
        out.waves.push(waves);
    }

    /// The effect multiplier of an intervention participant: the dose (sessions attended)
    /// over the expected dose, times the group fidelity's multiplier.
    fn effect_multiplier(&self, person: &super::design::Person) -> f64 {
        let cfg = self.cfg;
        let w = cfg.sessions.dose_weight;
        let dose = (1.0 - w)
            + w * f64::from(person.sessions.unwrap_or(0)) / f64::from(cfg.sessions.offered);
        let fid = person
            .group
            .and_then(|g| self.design.groups.get(g))
            .and_then(|g| g.fidelity);
        let fid_mult = fid.map_or(1.0, |f| {
            1.0 + cfg.sessions.fidelity_slope * (f - cfg.groups.fidelity_mean)
        });
        if self.expected_dose > 0.0 {
            dose / self.expected_dose * fid_mult
        } else {
            fid_mult
        }
    }

    /// One wave's latent values S, B, F, M, H and the clinician's view of S: occasion
    /// noise, the within-person paths S -> B, F -> M (and S, B -> H) and the arm effects.
    fn draw_wave(&self, pd: &PersonDraw, t: usize, rng: &mut Rng) -> [f64; 6] {
        let cfg = self.cfg;
        let scales = &self.scales;
        let p = &cfg.paths;
        let e = &cfg.effects;
        let stable = &pd.stable;
        let mut eps = [0.0; 6];
        for (k, sc) in scales.iter().enumerate() {
            eps[k] = rng.normal(0.0, sc.occasion_sd);
        }
        eps[5] = rng.normal(0.0, cfg.clinician.occasion_sd);
        let arm = if pd.imr { 1.0 } else { 0.0 };
        let at = |v: &Vec<f64>| v.get(t).copied().unwrap_or(0.0);
        let ws = at(&scales[S].time)
            + eps[S]
            + arm * (at(&e.self_management) * pd.multiplier + if t > 0 { pd.v_g } else { 0.0 });
        let wb = at(&scales[B].time)
            + p.a1_clinical_on_self_management * ws
            + eps[B]
            + arm * at(&e.clinical);
        let wf = at(&scales[F].time)
            + p.a2_functional_on_self_management * ws
            + eps[F]
            + arm * at(&e.functional);
        let wm = at(&scales[M].time)
            + p.c_personal_on_self_management * ws
            + p.b1_personal_on_clinical * wb
            + p.b2_personal_on_functional * wf
            + eps[M]
            + arm * at(&e.personal);
        let wh = at(&scales[H].time)
            + p.honos_on_self_management * ws
            + p.honos_on_clinical * wb
            + eps[H]
            + arm * at(&e.honos);
        let s_val = stable[S] + ws;
        [
            s_val,
            stable[B] + wb,
            stable[F] + wf,
            stable[M] + wm,
            stable[H] + wh,
            s_val + cfg.clinician.shift + pd.rater + eps[5],
        ]
    }
}

fn round_to(x: f64, decimals: u32) -> f64 {
    let f = 10f64.powi(decimals as i32);
    (x * f).round() / f
}

fn draw_instrument(
    spec: &ItemSim,
    per_item: f64,
    profile: Option<&[f64]>,
    rng: &mut Rng,
    out: &mut Vec<f64>,
) {
    out.clear();
    for (j, off) in spec.offsets.iter().enumerate() {
        let prof = profile.and_then(|p| p.get(j)).copied().unwrap_or(0.0);
        let x = per_item + off + prof + rng.normal(0.0, spec.noise);
        out.push(round_to(x, spec.decimals).clamp(spec.min, spec.max));
    }
}

/// Item values of one assessment, per instrument in [`INSTRUMENTS`] order (NaN = empty).
pub type RowItems = [Vec<f64>; 6];

/// Draws the complete items of one participant at one wave (stream passed in: `Items`).
pub fn draw_items(
    cfg: &SimConfig,
    latent: &[f64; 6],
    profile: &[f64],
    rng: &mut Rng,
    out: &mut RowItems,
) {
    let ins = &cfg.instruments;
    draw_instrument(&ins.imrs_client, latent[S], None, rng, &mut out[0]);
    draw_instrument(&ins.imrs_clinician, latent[5], None, rng, &mut out[1]);
    let n_m = ins.mhrm.offsets.len().max(1) as f64;
    draw_instrument(&ins.mhrm, latent[M] / n_m, None, rng, &mut out[2]);
    draw_instrument(&ins.bsi, latent[B], None, rng, &mut out[3]);
    draw_instrument(&ins.sfs, latent[F], Some(profile), rng, &mut out[4]);
    let n_h = ins.honos.offsets.len().max(1) as f64;
    draw_instrument(&ins.honos, latent[H] / n_h, None, rng, &mut out[5]);
}

/// Number of items of each instrument.
pub fn item_counts(cfg: &SimConfig) -> [usize; 6] {
    let ins = &cfg.instruments;
    [
        ins.imrs_client.offsets.len(),
        ins.imrs_clinician.offsets.len(),
        ins.mhrm.offsets.len(),
        ins.bsi.offsets.len(),
        ins.sfs.offsets.len(),
        ins.honos.offsets.len(),
    ]
}

/// Empty item buffers.
pub fn empty_row() -> RowItems {
    Default::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_rules() {
        let nan = f64::NAN;
        // 15 IMRS items, 12 answered: valid
        let mut imrs = vec![3.0; 15];
        imrs[0] = nan;
        imrs[1] = nan;
        imrs[2] = nan;
        assert_eq!(score(0, &imrs), Some(3.0));
        imrs[3] = nan;
        assert_eq!(score(0, &imrs), None);
        // HoNOS: 9 is not known; 10 of 12 answered -> prorated sum
        let mut honos = vec![1.0; 12];
        honos[0] = HONOS_NOT_KNOWN;
        honos[1] = nan;
        assert_eq!(score(5, &honos), Some(12.0));
        honos[2] = HONOS_NOT_KNOWN;
        assert_eq!(score(5, &honos), None);
        // MHRM prorated sum
        let mhrm: Vec<f64> = (0..30).map(|j| f64::from(j % 5)).collect();
        assert_eq!(score(2, &mhrm), Some(60.0));
    }

    #[test]
    fn cholesky_rejects_indefinite() {
        let mut a = vec![vec![0.0; 5]; 5];
        for (i, row) in a.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        assert!(cholesky5(&a).is_some());
        a[0][1] = 0.99;
        a[1][0] = 0.99;
        a[0][2] = -0.99;
        a[2][0] = -0.99;
        a[1][2] = 0.99;
        a[2][1] = 0.99;
        assert!(cholesky5(&a).is_none());
    }
}
