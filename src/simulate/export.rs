//! The export tables as text (format: `docs/trial-export.md`).
use std::fmt::Write as _;

use super::admissions::Admission;
use super::config::{Design, SimConfig};
use super::dates::format_date;
use super::design::TrialDesign;
use super::missing::{Missingness, WaveStatus};
use super::model::{RowItems, INSTRUMENTS};

/// A CSV field, quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn fmt_months(m: f64) -> String {
    if m.fract() == 0.0 && m.abs() < 1e9 {
        format!("{}", m as i64)
    } else {
        format!("{m}")
    }
}

/// study.toml
pub fn study_toml(cfg: &SimConfig) -> String {
    let st = &cfg.study;
    let mut s = String::new();
    let _ = writeln!(s, "name = {}", toml_string(&st.name));
    let arms: Vec<String> = st.arms.iter().map(|a| toml_string(a)).collect();
    let _ = writeln!(s, "arms = [{}]", arms.join(", "));
    let _ = writeln!(s, "intervention = {}", toml_string(&st.intervention));
    let design = match st.design {
        Design::Individual => "individual",
        Design::Cluster => "cluster",
    };
    let _ = writeln!(s, "design = \"{design}\"");
    let inst: Vec<String> = INSTRUMENTS.iter().map(|i| format!("\"{i}\"")).collect();
    let _ = writeln!(s, "instruments = [{}]", inst.join(", "));
    for w in &st.waves {
        let _ = write!(
            s,
            "\n[[waves]]\nlabel = {}\nmonths = {}\n",
            toml_string(&w.label),
            fmt_months(w.months)
        );
    }
    s
}

/// sites.csv
pub fn sites_csv(cfg: &SimConfig) -> String {
    let mut s = String::from("site_id,site_name\n");
    for site in &cfg.sites {
        let _ = writeln!(
            s,
            "{},{}",
            csv_field(&site.site_id),
            csv_field(&site.site_name)
        );
    }
    s
}

/// groups.csv (fidelity empty for control groups of a cluster trial)
pub fn groups_csv(cfg: &SimConfig, design: &TrialDesign) -> String {
    let mut s = String::from("group_id,site_id,fidelity\n");
    for g in &design.groups {
        let site = cfg.sites.get(g.site).map_or("", |x| x.site_id.as_str());
        let fid = g.fidelity.map(|f| format!("{f:.2}")).unwrap_or_default();
        let _ = writeln!(s, "{},{},{}", csv_field(&g.id), csv_field(site), fid);
    }
    s
}

/// participants.csv
pub fn participants_csv(cfg: &SimConfig, design: &TrialDesign) -> String {
    let mut s = String::from(
        "participant_id,site_id,team_id,arm,group_id,randomized_on,age,sex,diagnosis,sessions_attended\n",
    );
    for p in &design.persons {
        let site = cfg.sites.get(p.site).map_or("", |x| x.site_id.as_str());
        let team = format!("{site}-T{}", p.team + 1);
        let arm = cfg.study.arms.get(p.arm).map_or("", |a| a.as_str());
        let group = p
            .group
            .and_then(|g| design.groups.get(g))
            .map_or("", |g| g.id.as_str());
        let sex = cfg
            .demographics
            .sex
            .get(p.sex)
            .map_or("", |c| c.label.as_str());
        let dx = cfg
            .demographics
            .diagnosis
            .get(p.diagnosis)
            .map_or("", |c| c.label.as_str());
        let sessions = match (p.sessions, p.sessions_recorded) {
            (Some(n), true) => n.to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&p.id),
            csv_field(site),
            csv_field(&team),
            csv_field(arm),
            csv_field(group),
            format_date(p.randomized_on),
            p.age,
            csv_field(sex),
            csv_field(dx),
            sessions
        );
    }
    s
}

/// Header of assessments.csv: participant_id, wave, assessed_on, `<instrument>_<NN>` ...
pub fn assessment_header(counts: &[usize; 6]) -> String {
    let mut s = String::from("participant_id,wave,assessed_on");
    for (name, &n) in INSTRUMENTS.iter().zip(counts) {
        for j in 1..=n {
            let _ = write!(s, ",{name}_{j:02}");
        }
    }
    s.push('\n');
    s
}

/// assessments.csv: one row per participant x wave that has a row (see [`WaveStatus`]).
pub fn assessments_csv(
    cfg: &SimConfig,
    design: &TrialDesign,
    items: &[Vec<RowItems>],
    missing: &Missingness,
    counts: &[usize; 6],
) -> String {
    let decimals = [
        cfg.instruments.imrs_client.decimals,
        cfg.instruments.imrs_clinician.decimals,
        cfg.instruments.mhrm.decimals,
        cfg.instruments.bsi.decimals,
        cfg.instruments.sfs.decimals,
        cfg.instruments.honos.decimals,
    ];
    let mut s = assessment_header(counts);
    for (pi, p) in design.persons.iter().enumerate() {
        for (t, w) in cfg.study.waves.iter().enumerate() {
            let status = missing
                .status
                .get(pi)
                .and_then(|r| r.get(t))
                .copied()
                .unwrap_or(WaveStatus::Absent);
            if status == WaveStatus::Absent {
                continue;
            }
            let date = missing
                .assessed_on
                .get(pi)
                .and_then(|r| r.get(t))
                .copied()
                .flatten();
            let _ = write!(
                s,
                "{},{},{}",
                csv_field(&p.id),
                csv_field(&w.label),
                date.map(format_date).unwrap_or_default()
            );
            let row = items.get(pi).and_then(|r| r.get(t));
            for (k, &n) in counts.iter().enumerate() {
                for j in 0..n {
                    let x = row.and_then(|r| r[k].get(j)).copied().unwrap_or(f64::NAN);
                    if x.is_nan() {
                        s.push(',');
                    } else {
                        let _ = write!(s, ",{:.*}", decimals[k] as usize, x);
                    }
                }
            }
            s.push('\n');
        }
    }
    s
}

/// admissions.csv
pub fn admissions_csv(design: &TrialDesign, admissions: &[Admission]) -> String {
    let mut s = String::from("participant_id,admitted_on,discharged_on,involuntary\n");
    for a in admissions {
        let id = design.persons.get(a.person).map_or("", |p| p.id.as_str());
        let _ = writeln!(
            s,
            "{},{},{},{}",
            csv_field(id),
            format_date(a.admitted_on),
            a.discharged_on.map(format_date).unwrap_or_default(),
            u8::from(a.involuntary)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
    }

    #[test]
    fn study_toml_parses() {
        let cfg = SimConfig::default();
        let text = study_toml(&cfg);
        let v: toml::Value = toml::from_str(&text).expect("valid toml");
        assert_eq!(v["arms"][1].as_str(), Some("IMR"));
        assert_eq!(v["waves"][2]["months"].as_integer(), Some(18));
    }
}
