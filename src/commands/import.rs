//! `herstel import SOURCE... --map MAP.toml --out EXPORT [--schema DIR] [--json]`: map SPSS,
//! Stata, CSV or Parquet sources into a trial export, write `import-log.csv` beside it and
//! validate the result. `herstel import SOURCE... --guess [--out MAP.toml]` writes a draft
//! map instead. Exit code 1 when the data have errors (the import's grouped messages, or the
//! validation of the written export), 2 when a file or the map cannot be read or does not fit.
use std::path::PathBuf;
use std::process::ExitCode;

use super::CmdResult;
use crate::ingest::import::{self, bind, guess, load_map};
use crate::ingest::{read_export, ValidateOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source files: .sav, .zsav, .dta, .csv/.tsv/.txt, .parquet (joined on the participant id).
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The import map (TOML); see the README and analyses/import-map.toml.
    #[arg(long, value_name = "MAP.toml", required_unless_present = "guess")]
    pub map: Option<PathBuf>,
    /// The export folder to write (with --guess: the draft map file; default stdout).
    #[arg(long, value_name = "EXPORT")]
    pub out: Option<PathBuf>,
    /// Write a draft map from the sources' column names and labels instead of importing.
    #[arg(long, conflicts_with = "map")]
    pub guess: bool,
    /// A folder with tables/*.toml and instruments/*.toml that replace or extend the built-in
    /// data schema.
    #[arg(long, value_name = "DIR")]
    pub schema: Option<PathBuf>,
    /// Print the import problems and the validation report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> CmdResult {
    let schema = crate::ingest::load_schema(args.schema.as_deref())?;
    if args.guess {
        let empty = import::map::parse_map(
            "[study]\narms = [\"a\", \"b\"]\n[[waves]]\nlabel = \"T0\"\nmonths = 0\n[participants]\nid = \"id\"\narm = \"arm\"\n",
            std::path::Path::new("(guess)"),
        )?;
        let bound = bind::bind_sources(&args.sources, &empty).or_else(|_| {
            // bind every source as its own entry
            let mut lm = empty.clone();
            lm.map.sources = args
                .sources
                .iter()
                .map(|p| import::map::SourceMap {
                    file: p.file_name().map(|f| f.to_string_lossy().into_owned()),
                    ..Default::default()
                })
                .collect();
            bind::bind_sources(&args.sources, &lm)
        })?;
        let (text, unplaced) = guess::guess_map(&bound, &schema);
        match &args.out {
            Some(p) => {
                std::fs::write(p, &text)?;
                eprintln!(
                    "draft map written to {} (review every `guess:` line)",
                    p.display()
                );
            }
            None => print!("{text}"),
        }
        if !unplaced.is_empty() {
            eprintln!("{} columns could not be placed:", unplaced.len());
            for u in &unplaced {
                eprintln!("  {u}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(map_path), Some(out)) = (&args.map, &args.out) else {
        return Err("herstel import: give --map MAP.toml and --out EXPORT (or --guess)".into());
    };
    let lm = load_map(map_path)?;
    let assembled = import::import(&args.sources, &lm, &schema)?;
    let groups = assembled.problems.groups();
    if args.json && assembled.problems.has_errors() {
        println!("{}", serde_json::json!({ "import_problems": groups }));
        return Ok(ExitCode::from(1));
    }
    for n in &assembled.notes {
        eprintln!("{n}");
    }
    for g in &groups {
        eprintln!("{g}");
    }
    if assembled.problems.has_errors() {
        eprintln!(
            "herstel import: nothing written; correct the map or the sources (errors above), then run again"
        );
        return Ok(ExitCode::from(1));
    }
    import::write_export(out, &assembled)?;
    eprintln!(
        "wrote {} ({} participants, {} assessment rows) and import-log.csv ({} lines)",
        out.display(),
        assembled.n_participants,
        assembled.n_assessments,
        assembled.log.entries.len()
    );
    let ingested = read_export(out, &schema, &ValidateOptions::default());
    let report = &ingested.report;
    std::fs::write(out.join("validation.txt"), report.to_string())?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "import_problems": groups, "validation": report })
        );
    } else {
        println!("{report}");
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
