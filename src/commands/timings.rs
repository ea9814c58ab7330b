//! `--timings`: where the time of one command goes (wall clock, seconds), so users and the
//! benchmark (`benches/lmm_vs_lme4.sh`) can see reading, model frame, fit, df and output apart.
use std::time::Instant;

/// Seconds per step; a step the command does not have stays 0.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    /// Reading the data file(s) into text cells and typed columns (`herstel run`: reading and
    /// validating the export).
    pub read: f64,
    /// `herstel fit`: the formula and the model frame (design matrices, factor levels).
    pub frame: f64,
    /// Fitting (`herstel run`: scoring and every analysis).
    pub fit: f64,
    /// `herstel fit`: denominator df and the coefficient table.
    pub df: f64,
    /// Writing (printing) the output (`herstel run`: tables, plots, report).
    pub output: f64,
    /// The whole command from its start.
    pub total: f64,
}

/// A stopwatch over the steps of a command.
pub struct Stopwatch {
    start: Instant,
    last: Instant,
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        let now = Instant::now();
        Stopwatch {
            start: now,
            last: now,
        }
    }

    /// Seconds since the previous lap (or the start).
    pub fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let s = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        s
    }

    /// Seconds since the start.
    pub fn total(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

impl Timings {
    /// One line for stderr: `timings: read 0.012 s, frame 0.003 s, ...`.
    pub fn to_line(&self) -> String {
        format!(
            "timings: read {:.3} s, frame {:.3} s, fit {:.3} s, df {:.3} s, output {:.3} s, total {:.3} s",
            self.read, self.frame, self.fit, self.df, self.output, self.total
        )
    }
}
