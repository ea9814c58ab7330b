//! Helpers shared by `tests/missing.rs` and `tests/missing_ice.rs`: the fixture of
//! `tests/fixtures/missing/` as wide data, the comparison with the R reference at 1e-6, and
//! trial-small. Included with `#[path = "common/missing_fixture.rs"] mod missing_fixture;`.
#![allow(dead_code)] // each test file uses its own subset
use std::cell::RefCell;

use herstel::missing::WideData;
use serde_json::Value;

pub fn fixture(name: &str) -> String {
    let p = format!(
        "{}/tests/fixtures/missing/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The fixture's long CSV as wide data (participants sorted by id, TAU = reference).
pub fn wide() -> WideData {
    let text = fixture("data.csv");
    let waves = vec!["T1".to_string(), "T2".to_string(), "T3".to_string()];
    let arms = vec!["TAU".to_string(), "IMR".to_string()];
    let mut d = WideData {
        ids: Vec::new(),
        arms: arms.clone(),
        arm: Vec::new(),
        waves: waves.clone(),
        baseline: Vec::new(),
        y: Vec::new(),
    };
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').map(|s| s.trim_matches('"')).collect();
        let (id, arm, wave, y, b) = (f[0], f[1], f[2], f[3], f[4]);
        if d.ids.last().map(String::as_str) != Some(id) {
            d.ids.push(id.to_string());
            d.arm.push(arms.iter().position(|a| a == arm).unwrap());
            d.baseline.push(b.parse().unwrap());
            d.y.push(vec![None; 3]);
        }
        let w = waves.iter().position(|x| x == wave).unwrap();
        d.y.last_mut().unwrap()[w] = (!y.is_empty()).then(|| y.parse().unwrap());
    }
    d
}

/// Records the worst relative error of every comparison and fails above 1e-6.
pub struct Check {
    worst: RefCell<(f64, String)>,
    failures: RefCell<Vec<String>>,
}

impl Check {
    pub fn new() -> Check {
        Check {
            worst: RefCell::new((0.0, String::new())),
            failures: RefCell::new(Vec::new()),
        }
    }
    pub fn rel(&self, what: &str, got: f64, want: f64) {
        let e = (got - want).abs() / want.abs().max(1e-300);
        let e = if got == want { 0.0 } else { e };
        if e > self.worst.borrow().0 || e.is_nan() {
            *self.worst.borrow_mut() = (e, what.to_string());
        }
        if e.is_nan() || e > 1e-6 {
            self.failures.borrow_mut().push(format!(
                "{what}: got {got:.15e}, R {want:.15e} (rel {e:.2e})"
            ));
        }
    }
    pub fn finish(&self, label: &str) {
        let (w, at) = self.worst.borrow().clone();
        eprintln!("{label}: worst relative error {w:.3e} at {at}");
        let f = self.failures.borrow();
        assert!(f.is_empty(), "{} mismatches:\n{}", f.len(), f.join("\n"));
    }
}

pub fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

pub fn trial_small() -> (herstel::ingest::Trial, herstel::scoring::Scored) {
    let schema = herstel::ingest::load_schema(None).unwrap();
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trial-small/export");
    let (trial, _) = herstel::ingest::load_trial(&dir, &schema, &Default::default())
        .unwrap_or_else(|r| panic!("trial-small does not validate:\n{r}"));
    let scored = herstel::scoring::score(&trial, &trial.instruments);
    (trial, scored)
}
