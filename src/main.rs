//! Thin binary: parse the command line, call the library, map the result to an exit code.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = herstel::cli::Cli::parse();
    match herstel::cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
