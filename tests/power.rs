//! Power by simulation (issue 16): plans, errors, seeding and sharding, and the agreement with
//! closed forms (golden values from tests/r/power_theory.R in tests/fixtures/power/).
use herstel::power::{run_trials, summarise, Plan, Shard};
use herstel::progress::Silent;

fn plan(text: &str) -> Plan {
    Plan::from_toml_str(text).expect("plan parses")
}

const BASE: &str = r#"
seed = 7
simulations = 20
[arms]
labels = ["CAU", "ERH"]
[design]
type = "individual"
[waves]
labels = ["T0", "T1", "T2"]
months = [0, 6, 12]
[outcome]
baseline_mean = 3.4
baseline_sd = 0.6
icc_participant = 0.5
[effect]
scale = "d"
values = { T1 = 0.2, T2 = 0.4 }
[sample_size]
participants = [100, 400]
"#;

#[test]
fn timing_probe() {
    let p = plan(BASE);
    let t0 = std::time::Instant::now();
    let recs = run_trials(&p, Shard::ALL, &Silent).unwrap();
    let el = t0.elapsed().as_secs_f64();
    let res = summarise(&p, &recs).unwrap();
    eprintln!("{} trials in {el:.2}s", recs.len());
    eprintln!("{}", serde_json::to_string_pretty(&res.summary).unwrap());
}
