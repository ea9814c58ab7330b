//! Running the `herstel` binary from an integration test.
use serde_json::Value;

/// Runs `herstel ARGS...`, asserts that it succeeded (its stderr in the message) and parses
/// its standard output as JSON (`--json` output).
pub fn herstel_json(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herstel"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
