//! Terminal progress bars (indicatif) for the library's long steps: the command line's
//! [`ProgressSink`]. Silent when stderr is not a terminal or when the user asked for quiet
//! output, so logs and tests stay clean.
use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Progress, ProgressSink, Tick};

/// Draws a bar per long step on stderr, when it is a terminal and `quiet` is off.
#[derive(Debug, Clone, Copy)]
pub struct TerminalProgress {
    visible: bool,
}

impl TerminalProgress {
    pub fn new(quiet: bool) -> Self {
        TerminalProgress {
            visible: !quiet && std::io::stderr().is_terminal(),
        }
    }
}

struct Bar(ProgressBar);

impl Tick for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl ProgressSink for TerminalProgress {
    fn bar(&self, len: u64, label: &str) -> Progress {
        if !self.visible {
            return Progress::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>24} [{bar:40.cyan/blue}] {pos}/{len} ({elapsed}, eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        Progress::new(Arc::new(Bar(bar)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bar_is_hidden() {
        let p = TerminalProgress::new(true).bar(10, "bootstrap");
        assert_eq!(format!("{p:?}"), "Progress(hidden)");
        p.inc(3);
        p.finish();
    }
}
