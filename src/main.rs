//! Thin binary: parse the command line, call the library, map the result to an exit code.
use clap::Parser;

/// mimalloc instead of the system allocator (see Cargo.toml): large buffers are reused
/// instead of being faulted in again, page by page.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
