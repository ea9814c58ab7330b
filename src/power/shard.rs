//! Running part of the simulations (`--shard i/n`) and combining the parts
//! (`herstel power merge`). Trial `j` of sample size `k` has the global number
//! `g = k * simulations + j` and belongs to shard `g mod n` (1-based: shard `i` holds
//! `g mod n = i - 1`), so the shards are balanced over the sizes. Each trial draws from its own
//! stream (see [`super::design::trial_stream`]), so its result does not depend on the sharding;
//! the merged records, sorted by (size, trial), are those of an unsharded run and give the same
//! output bytes.
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::summary::TrialRecord;

/// Which part of the simulations to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Everything.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Parses `i/n` (1 <= i <= n).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad =
            || format!("--shard {text}: expected i/n with 1 <= i <= n <= {MAX_SHARDS} (e.g. 3/10)");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count || count > MAX_SHARDS {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether global trial number `g` is in this shard.
    pub fn holds(&self, g: usize) -> bool {
        g % self.count == self.index - 1
    }
}

/// The file a shard writes (`shard-<i>-of-<n>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardFile {
    pub format: String,
    pub herstel_version: String,
    pub plan: Plan,
    pub shard: Shard,
    pub records: Vec<TrialRecord>,
}

/// Most shards of one run.
pub const MAX_SHARDS: usize = 1_000_000;

/// The format tag of shard files.
pub const SHARD_FORMAT: &str = "herstel-power-shard/1";

impl ShardFile {
    /// The file name of a shard.
    pub fn file_name(shard: Shard) -> String {
        format!("shard-{:04}-of-{:04}.json", shard.index, shard.count)
    }
}

/// Combines shard files: the same plan (seed included) and shard count in all, every shard
/// once, every trial exactly once. Returns the plan and the records in (size, trial) order.
pub fn merge(files: Vec<ShardFile>) -> Result<(Plan, Vec<TrialRecord>), String> {
    let Some(first) = files.first() else {
        return Err("no shard files to merge".into());
    };
    let plan = first.plan.clone();
    let count = first.shard.count;
    if count == 0 || count > MAX_SHARDS {
        return Err(format!("a split into {count} shards (1 to {MAX_SHARDS})"));
    }
    let mut seen = vec![false; count];
    for f in &files {
        if f.format != SHARD_FORMAT {
            return Err(format!(
                "shard {}: format {:?}, expected {SHARD_FORMAT:?}",
                f.shard.index, f.format
            ));
        }
        if f.plan != plan {
            return Err(format!(
                "shard {}/{} was run with another plan or seed than shard {}/{}",
                f.shard.index, f.shard.count, first.shard.index, first.shard.count
            ));
        }
        if f.shard.count != count {
            return Err(format!(
                "shard {}/{} does not belong to a split into {count}",
                f.shard.index, f.shard.count
            ));
        }
        if f.shard.index == 0 || f.shard.index > count {
            return Err(format!(
                "shard {}/{count}: the index must be in 1..={count}",
                f.shard.index
            ));
        }
        let k = f.shard.index - 1;
        if seen[k] {
            return Err(format!("shard {}/{count} is given twice", f.shard.index));
        }
        seen[k] = true;
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| !**s)
        .map(|(i, _)| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        return Err(format!("shards missing: {}", missing.join(", ")));
    }
    let mut records: Vec<TrialRecord> = files.into_iter().flat_map(|f| f.records).collect();
    records.sort_by_key(|r| (r.size_index, r.trial));
    let sims = plan.simulations;
    let expected = plan.sizes().len() * sims;
    if records.len() != expected {
        return Err(format!(
            "the shards hold {} trials, the plan {expected}",
            records.len()
        ));
    }
    for (g, r) in records.iter().enumerate() {
        if (r.size_index, r.trial) != (g / sims.max(1), g % sims.max(1)) {
            return Err(format!(
                "trial {} of size {} is missing or duplicated",
                g % sims,
                g / sims
            ));
        }
    }
    Ok((plan, records))
}
