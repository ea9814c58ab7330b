//! One driver per subcommand: parse arguments (clap derive), call the library, print or write.

pub mod fit;
pub mod import;
pub mod power;
pub mod progress;
pub mod run;
pub mod score;
pub mod simulate;
pub mod timings;
pub mod validate;

/// Result of a subcommand: the process exit code, or an error printed by `main`.
pub type CmdResult = Result<std::process::ExitCode, Box<dyn std::error::Error + Send + Sync>>;
