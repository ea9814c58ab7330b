//! The layering of the crate, checked from its source: every `crate::module` reference between
//! top-level modules of `src/` must point down the layers of ARCHITECTURE.md, and no two
//! top-level modules may depend on each other (directly or through others).
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of lower layers only; modules of one
/// layer are peers and do not use each other.
const LAYERS: &[&[&str]] = &[
    // foundation: data types and algorithms with no knowledge of trials
    &["stats", "progress", "table", "schema", "results", "emmeans"],
    // model frames (typed columns, read through `table`), formulas and the input edge
    &["frame"],
    &["formula", "ingest"],
    // models and scoring
    // (impute: chained-equation imputation of a wide data set, from stats alone)
    &[
        "lmm", "glm", "meta", "nonparam", "scoring", "simulate", "impute",
    ],
    // models built on them (the GLMM starts from the GLM)
    &["mmrm", "trial_data", "glmm"],
    // analyses: peers
    &[
        "analysis",
        "admissions",
        "mediation",
        "missing",
        "sites",
        "power",
    ],
    &["pipeline"],
    // the output edge
    &["report"],
    &["commands"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`src/lmm/deviance.rs` -> `lmm`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// `crate::x` references and the names inside `crate::{x, y::z}` groups, with line numbers.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push((i + 1, name));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push((i + 1, name));
            }
        }
    }
    out
}

struct Graph {
    modules: BTreeSet<String>,
    /// (from, to) -> first place (file:line).
    edges: BTreeMap<(String, String), String>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    for f in &files {
        if let Some(m) = module_of(&src, f) {
            modules.insert(m);
        }
    }
    let mut edges = BTreeMap::new();
    for f in &files {
        let Some(from) = module_of(&src, f) else {
            continue;
        };
        let text = fs::read_to_string(f).unwrap();
        for (line, to) in references(&text) {
            if to != from && modules.contains(&to) {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| format!("{}:{line}", f.display()));
            }
        }
    }
    Graph { modules, edges }
}

#[test]
fn every_top_level_module_has_a_layer() {
    let g = graph();
    let missing: Vec<&String> = g.modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/architecture.rs (and ARCHITECTURE.md): {missing:?}"
    );
}

#[test]
fn dependencies_point_down_the_layers() {
    let g = graph();
    let bad: Vec<String> = g
        .edges
        .iter()
        .filter(|((a, b), _)| match (layer_of(a), layer_of(b)) {
            (Some(la), Some(lb)) => la <= lb,
            _ => false,
        })
        .map(|((a, b), at)| format!("{a} -> {b} ({at})"))
        .collect();
    assert!(
        bad.is_empty(),
        "dependencies that do not point down:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_dependency_cycle_between_top_level_modules() {
    let g = graph();
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in g.edges.keys() {
        next.entry(a.as_str()).or_default().push(b.as_str());
    }
    let reaches = |from: &str| -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            for &y in next.get(x).map(Vec::as_slice).unwrap_or(&[]) {
                if seen.insert(y) {
                    stack.push(y);
                }
            }
        }
        seen
    };
    let mut cycles = Vec::new();
    for a in &g.modules {
        if reaches(a).contains(a.as_str()) {
            cycles.push(a.clone());
        }
    }
    assert!(
        cycles.is_empty(),
        "modules on a dependency cycle: {cycles:?}"
    );
}

#[test]
fn the_reference_scanner_sees_groups_and_paths() {
    let r = references(
        "use crate::{stats::rng, frame};\nlet x = crate::lmm::fit(); // crate::report\n",
    );
    let names: Vec<&str> = r.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, vec!["stats", "frame", "lmm"]);
}
