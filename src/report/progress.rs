//! Progress bars for long steps (bootstrap resamples, many fits, simulations), wrapping
//! indicatif. Silent when stderr is not a terminal or when the user asked for quiet output, so
//! logs and tests stay clean.
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that draws on stderr only when it is a terminal and `quiet` is off.
/// Cheap to clone and safe to share across rayon threads (`inc` is atomic).
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar of `len` steps labelled `message`; hidden when `quiet` or stderr is no terminal.
    pub fn new(len: u64, message: &str, quiet: bool) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(len), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>24} [{bar:40.cyan/blue}] {pos}/{len} ({elapsed}, eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        Progress { bar }
    }

    /// A bar that never draws (for library callers and tests).
    pub fn hidden() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    /// Advances by `n` steps.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Steps done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Whether the bar draws nothing.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Finishes and removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bar_is_hidden_and_counts() {
        let p = Progress::new(10, "bootstrap", true);
        assert!(p.is_hidden());
        p.inc(3);
        let q = p.clone();
        q.inc(2);
        assert_eq!(p.position(), 5);
        p.finish();
    }
}
