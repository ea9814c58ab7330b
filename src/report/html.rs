//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external
//! resources) in the order of a CONSORT-style paper: study and methods, participant flow,
//! Table 1, outcomes, admissions, mediation, sites, diagnostics, manifest.
use crate::report::format as f;
use crate::report::plots::Figure;
use crate::report::tables::{html_escape as esc, Table};
use crate::report::ReportOptions;
use crate::results::Results;

const CSS: &str = r#"
:root { --ink: #1a1a1a; --muted: #5a5a5a; --rule: #1a1a1a; --band: #f4f4f4; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 16px/1.5 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; border-bottom: 3px solid var(--accent); }
h1 { font-size: 1.8em; margin: 0 0 4px; }
h2 { font-size: 1.35em; margin: 40px 0 10px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 1.1em; margin: 24px 0 8px; }
p.sub { color: var(--muted); margin: 0 0 16px; }
nav { margin: 12px 0 16px; font-size: .92em; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
table.apa { border-collapse: collapse; margin: 18px 0 8px; font-size: .86em; width: auto;
  border-top: 2px solid var(--rule); border-bottom: 2px solid var(--rule); }
table.apa caption { caption-side: top; text-align: left; font-style: italic; padding: 4px 0 8px; }
table.apa th { border-bottom: 1px solid var(--rule); padding: 4px 10px; text-align: left;
  font-weight: 600; white-space: nowrap; }
table.apa td { padding: 3px 10px; vertical-align: top; }
table.apa .num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.apa tbody tr:nth-child(even) { background: var(--band); }
table.apa tfoot td { border-top: 1px solid var(--rule); font-size: .92em; color: var(--muted);
  padding-top: 6px; white-space: normal; }
.tablewrap { overflow-x: auto; }
figure { margin: 20px 0 28px; }
figure svg { width: 100%; height: auto; max-width: 1000px; display: block; }
figure.wide svg { max-width: 100%; }
figcaption { font-size: .9em; color: var(--muted); margin-top: 6px; max-width: 1000px; }
figcaption b { color: var(--ink); }
.keyresult { background: #eef6fb; border-left: 4px solid var(--accent); padding: 10px 14px; }
.warn { background: #fff6e5; border-left: 4px solid #E69F00; padding: 8px 14px; }
pre { background: var(--band); padding: 12px; overflow-x: auto; font-size: .82em; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
dl.manifest { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.manifest dt { font-weight: 600; }
dl.manifest dd { margin: 0; word-break: break-all; }
footer { color: var(--muted); font-size: .85em; padding: 32px 24px; }
@media print { nav { display: none; } h2 { break-before: auto; } figure { break-inside: avoid; } }
"#;

/// Ids and titles of the report sections, in order. Optional sections appear only when their
/// results exist.
pub const SECTIONS: [(&str, &str); 10] = [
    ("study", "Study"),
    ("methods", "Methods"),
    ("flow", "Participant flow"),
    ("table1", "Baseline characteristics"),
    ("outcomes", "Outcomes"),
    ("admissions", "Admissions"),
    ("mediation", "Mediation"),
    ("sites", "Sites"),
    ("diagnostics", "Model diagnostics"),
    ("manifest", "Manifest"),
];

/// The section ids a report of these results contains.
pub fn present_sections(results: &Results) -> Vec<&'static str> {
    SECTIONS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| match *id {
            "flow" => results.consort.is_some(),
            "table1" => results.table1.is_some(),
            "outcomes" => !results.outcomes.is_empty(),
            "admissions" => results.admissions.is_some(),
            "mediation" => !results.mediation.is_empty(),
            "sites" => !results.sites.is_empty(),
            "diagnostics" => results.outcomes.iter().any(|o| o.diagnostics.is_some()),
            _ => true,
        })
        .collect()
}

fn list_and(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        2 => format!("{} and {}", items[0], items[1]),
        n => format!("{}, and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn study_html(r: &Results) -> String {
    let labels = f::Labels::of(r);
    let s = &r.study;
    let arms: Vec<String> = s.arms.iter().map(|a| esc(a)).collect();
    let waves: Vec<String> = s
        .waves
        .iter()
        .map(|w| format!("{} ({} months)", esc(&w.label), f::num(w.months, 0)))
        .collect();
    let design = if s.design == "cluster" {
        "cluster-randomized trial (IMR training groups randomized)"
    } else {
        "individually randomized trial"
    };
    let mut p = format!(
        "<p>{} of Illness Management and Recovery (IMR): {} participants randomized to {}",
        capitalize(design),
        s.n_participants,
        list_and(&arms)
    );
    if s.n_sites > 0 {
        p.push_str(&format!(
            " at {} site{}",
            s.n_sites,
            if s.n_sites == 1 { "" } else { "s" }
        ));
    }
    p.push('.');
    if s.n_groups > 0 {
        p.push_str(&format!(
            " The intervention arm ({}) was delivered in {} IMR training groups.",
            esc(&s.intervention),
            s.n_groups
        ));
    }
    if !waves.is_empty() {
        p.push_str(&format!(" Assessments at {}.", list_and(&waves)));
    }
    p.push_str("</p>\n");
    if !s.instruments.is_empty() {
        let inst: Vec<String> = s
            .instruments
            .iter()
            .map(|i| esc(&labels.outcome(i)))
            .collect();
        p.push_str(&format!(
            "<p>Instruments in the export: {}.</p>\n",
            list_and(&inst)
        ));
    }
    p
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The methods section: outcomes and models, analysis sets, sensitivity, admission,
/// mediation and site analyses, then the run's warnings and exclusions.
fn methods_html(r: &Results) -> String {
    let labels = f::Labels::of(r);
    let mut out = String::new();
    out.push_str(&outcomes_methods_html(r, &labels));
    out.push_str(&crate::report::sensitivity::methods_html(r));
    out.push_str(&analysis_sets_html(r));
    out.push_str(&sensitivity_methods_html(r));
    out.push_str(&admissions_methods_html(r));
    out.push_str(&mediation_methods_html(r));
    out.push_str(&sites_methods_html(r));
    out.push_str(&warnings_html(r));
    out.push_str(&exclusions_html(r, &labels));
    out
}

/// The paragraph on the outcomes: primary and secondary outcomes, the main models and how
/// they were fitted and tested, and the p-value adjustment. Empty without outcome models.
fn outcomes_methods_html(r: &Results, labels: &f::Labels) -> String {
    let s = &r.study;
    let mut outcomes: Vec<String> = Vec::new();
    for o in &r.outcomes {
        if !outcomes.contains(&o.outcome) {
            outcomes.push(o.outcome.clone());
        }
    }
    if outcomes.is_empty() {
        return String::new();
    }
    let primary = s.primary_outcome.clone().or_else(|| {
        r.outcomes
            .iter()
            .find(|o| o.primary)
            .map(|o| o.outcome.clone())
    });
    let secondary: Vec<String> = outcomes
        .iter()
        .filter(|o| Some(*o) != primary.as_ref())
        .map(|o| esc(&labels.outcome(o)))
        .collect();
    let mut p = String::from("<p>");
    if let Some(pr) = &primary {
        p.push_str(&format!("Primary outcome: {}. ", esc(&labels.outcome(pr))));
    }
    if !secondary.is_empty() {
        p.push_str(&format!("Secondary outcomes: {}. ", list_and(&secondary)));
    }
    p.push_str(&outcome_models_sentence(r));
    if let Some(adj) = &s.p_adjust {
        p.push_str(&format!(
            " p-values of the secondary outcomes are adjusted with the {} method.",
            esc(&capitalize(adj))
        ));
    }
    p.push_str("</p>\n");
    p
}

/// The main models' formulas (outcome written as `score`, each once), the estimation method
/// and degrees of freedom of the first model, and what is reported.
fn outcome_models_sentence(r: &Results) -> String {
    let mut mains: Vec<String> = Vec::new();
    for o in r.outcomes.iter().filter(|o| o.sensitivity.is_none()) {
        let m = format!(
            "<code>{}</code>",
            esc(&o.model.replacen(&o.outcome, "score", 1))
        );
        if !mains.contains(&m) {
            mains.push(m);
        }
    }
    let first = r.outcomes.first();
    let est = first.map_or("REML", |o| if o.reml { "REML" } else { "ML" });
    let df = first.map_or("Satterthwaite".to_string(), |o| {
        f::df_method_label(&o.df_method)
    });
    format!(
        "Each outcome was analysed with a linear mixed model {} fitted by {est} \
         (Bates et al., 2015), with t and F tests on {df} degrees of freedom \
         (Kuznetsova et al., 2017). Estimated marginal means per arm and wave, the \
         intervention minus control contrast at each follow-up wave, and the arm \u{00d7} \
         wave omnibus test are reported; Cohen's d is the contrast over the pooled baseline \
         SD (Feingold, 2009).",
        list_and(&mains)
    )
}

/// The list of analysis sets with their descriptions.
fn analysis_sets_html(r: &Results) -> String {
    let s = &r.study;
    if s.analysis_sets.is_empty() {
        return String::new();
    }
    let mut out = String::from("<p>Analysis sets:</p>\n<ul>\n");
    for a in &s.analysis_sets {
        out.push_str(&format!(
            "<li><b>{}</b>: {}</li>\n",
            esc(&f::analysis_set_label(&a.name)),
            esc(&a.description)
        ));
    }
    out.push_str("</ul>\n");
    out
}

/// The sensitivity models, each sensitivity set once with the formula of its first model.
fn sensitivity_methods_html(r: &Results) -> String {
    let mut sens: Vec<String> = Vec::new();
    for o in &r.outcomes {
        if let Some(sn) = &o.sensitivity {
            let l = format!(
                "{} (<code>{}</code>)",
                esc(&f::sensitivity_label(Some(sn))),
                esc(&o.model)
            );
            if !sens
                .iter()
                .any(|x| x.starts_with(&esc(&f::sensitivity_label(Some(sn)))))
            {
                sens.push(l);
            }
        }
    }
    if sens.is_empty() {
        return String::new();
    }
    format!("<p>Sensitivity models: {}.</p>\n", list_and(&sens))
}

/// The admission models, when a negative-binomial model was fitted.
fn admissions_methods_html(r: &Results) -> String {
    let Some(nb) = r
        .admissions
        .as_ref()
        .and_then(|a| a.negative_binomial.as_ref())
    else {
        return String::new();
    };
    format!(
        "<p>Admissions in the follow-up window were compared with a negative-binomial \
         model <code>{}</code> (theta by maximum likelihood, as MASS::glm.nb) with a \
         Poisson model beside it; any admission by logistic regression, and the change \
         in bed days by the Mann-Whitney U test.</p>\n",
        esc(&nb.model)
    )
}

/// The mediation analyses that were run, with the centring and interval methods cited.
fn mediation_methods_html(r: &Results) -> String {
    if r.mediation.is_empty() {
        return String::new();
    }
    let names: Vec<String> = r
        .mediation
        .iter()
        .map(|m| esc(&f::mediation_label(&m.analysis).to_lowercase()))
        .collect();
    format!(
        "<p>Mediation of self-management on personal recovery through clinical and \
         functional recovery: {} (person-mean centring after Zhang, Zyphur &amp; Preacher, \
         2009; Monte Carlo intervals after Preacher &amp; Selig, 2012).</p>\n",
        list_and(&names)
    )
}

/// How sites were compared, when there is a sites analysis.
fn sites_methods_html(r: &Results) -> String {
    if r.sites.is_empty() {
        return String::new();
    }
    "<p>Sites were compared by the intervention effect within each site, a random-effects \
     meta-analysis of those effects (REML, Knapp-Hartung), and shrunken site-by-arm \
     effects from one mixed model, with ranks and their 95% intervals.</p>\n"
        .to_string()
}

/// The run's warnings as a highlighted list.
fn warnings_html(r: &Results) -> String {
    if r.warnings.is_empty() {
        return String::new();
    }
    let mut out = String::from("<div class=\"warn\"><b>Warnings</b><ul>\n");
    for w in &r.warnings {
        out.push_str(&format!("<li>{}</li>\n", esc(w)));
    }
    out.push_str("</ul></div>\n");
    out
}

/// The exclusions: what (at which wave), how many and why.
fn exclusions_html(r: &Results, labels: &f::Labels) -> String {
    if r.exclusions.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h3>Exclusions</h3>\n<ul>\n");
    for e in &r.exclusions {
        out.push_str(&format!(
            "<li>{}{}: {} ({})</li>\n",
            esc(&labels.outcome(&e.what)),
            e.wave
                .as_ref()
                .map(|w| format!(" at {}", esc(w)))
                .unwrap_or_default(),
            e.count,
            esc(&e.reason)
        ));
    }
    out.push_str("</ul>\n");
    out
}

/// One sentence on the primary outcome's main result.
fn key_result(r: &Results, opts: &ReportOptions) -> Option<String> {
    let labels = f::Labels::of(r);
    let o = r
        .outcomes
        .iter()
        .find(|o| o.primary && o.sensitivity.is_none() && o.analysis_set == "itt")
        .or_else(|| r.main_models().into_iter().next())?;
    let mut s = format!(
        "Primary outcome {} ({}, {} participants, {} observations)",
        esc(&labels.outcome(&o.outcome)),
        esc(&f::analysis_set_label(&o.analysis_set)),
        o.n_participants,
        o.n_observations
    );
    if let Some(t) = &o.interaction_test {
        s.push_str(&format!(
            ": arm \u{00d7} wave <i>F</i>({}, {}) = {}, <i>{}</i>",
            f::df(t.df_num),
            f::df(t.df_den),
            f::num(t.f, 2),
            esc(&f::p_text(t.p_value, opts.p_decimals))
        ));
    }
    let parts: Vec<String> = o
        .contrasts
        .iter()
        .map(|c| {
            let mut x = format!(
                "at {} {} = {} {}",
                esc(&c.wave),
                esc(&c.contrast),
                f::num(c.estimate, opts.decimals),
                f::interval(c.conf_low, c.conf_high, opts.decimals)
            );
            if let Some(d) = c.cohens_d {
                x.push_str(&format!(
                    ", <i>d</i> = {}",
                    f::effect_size(d, opts.decimals)
                ));
            }
            x
        })
        .collect();
    if !parts.is_empty() {
        s.push_str(&format!("; {}", parts.join("; ")));
    }
    s.push('.');
    Some(format!("<p class=\"keyresult\">{s}</p>\n"))
}

fn figure_html(fig: &Figure, number: usize) -> String {
    let svg = match fig.svg.find("<svg") {
        Some(i) => &fig.svg[i..],
        None => fig.svg.as_str(),
    };
    format!(
        "<figure id=\"fig-{}\">\n{}\n<figcaption><b>Figure {number}.</b> {}</figcaption>\n</figure>\n",
        esc(&fig.id),
        svg.trim(),
        esc(&fig.caption)
    )
}

fn tables_html(tables: &[Table], ids: &[&str], opts: &ReportOptions) -> String {
    let mut out = String::new();
    for t in tables
        .iter()
        .filter(|t| ids.iter().any(|i| t.id.starts_with(i)))
    {
        out.push_str("<div class=\"tablewrap\">\n");
        out.push_str(&t.to_html(opts));
        out.push_str("</div>\n");
    }
    out
}

fn manifest_html(r: &Results) -> String {
    let m = &r.manifest;
    let mut out = String::from("<dl class=\"manifest\">\n");
    let mut item =
        |k: &str, v: String| out.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", esc(k), v));
    item("herstel version", esc(&m.herstel_version));
    item("Analysis spec", esc(&m.spec_name));
    item("Seed", m.seed.map_or("\u{2014}".into(), |s| s.to_string()));
    item("Time of run", esc(&m.time));
    if let Some(c) = &m.command {
        item("Command", format!("<code>{}</code>", esc(c)));
    }
    out.push_str("</dl>\n");
    if !m.inputs.is_empty() {
        out.push_str(
            "<div class=\"tablewrap\"><table class=\"apa\" id=\"tab-inputs\"><caption>Input files\
             </caption><thead><tr><th>File</th><th class=\"num\">Bytes</th><th>SHA-256</th></tr>\
             </thead><tbody>\n",
        );
        for i in &m.inputs {
            out.push_str(&format!(
                "<tr><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td></tr>\n",
                esc(&i.path),
                i.bytes,
                esc(&i.sha256)
            ));
        }
        out.push_str("</tbody></table></div>\n");
    }
    if !m.spec.is_empty() {
        out.push_str(&format!(
            "<h3>Analysis spec</h3>\n<pre><code>{}</code></pre>\n",
            esc(&m.spec)
        ));
    }
    out
}

/// The complete report page.
pub fn render(r: &Results, tables: &[Table], figures: &[Figure], opts: &ReportOptions) -> String {
    let sections = present_sections(r);
    let title = if r.study.name.is_empty() {
        "herstel report".to_string()
    } else {
        r.study.name.clone()
    };
    let mut out = String::with_capacity(256 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    ));
    out.push_str(&format!(
        "<header>\n<h1>{}</h1>\n<p class=\"sub\">Trial report written by herstel {} on {}</p>\n<nav>",
        esc(&title),
        esc(&r.manifest.herstel_version),
        esc(&r.manifest.time)
    ));
    for (id, name) in SECTIONS.iter().filter(|(id, _)| sections.contains(id)) {
        out.push_str(&format!("<a href=\"#{id}\">{name}</a>"));
    }
    out.push_str("</nav>\n</header>\n<main>\n");
    let mut fig_no = 0;
    let mut figs_of = |section: &str, out: &mut String| {
        for fig in figures.iter().filter(|f| f.section == section) {
            fig_no += 1;
            out.push_str(&figure_html(fig, fig_no));
        }
    };
    for (id, name) in SECTIONS.iter().filter(|(id, _)| sections.contains(id)) {
        out.push_str(&format!("<section id=\"{id}\">\n<h2>{name}</h2>\n"));
        match *id {
            "study" => out.push_str(&study_html(r)),
            "methods" => out.push_str(&methods_html(r)),
            "flow" => {
                figs_of("flow", &mut out);
                out.push_str(&tables_html(tables, &["consort"], opts));
            }
            "table1" => out.push_str(&tables_html(tables, &["table1"], opts)),
            "outcomes" => {
                out.push_str(&tables_html(tables, &["estimand"], opts));
                if let Some(k) = key_result(r, opts) {
                    out.push_str(&k);
                }
                out.push_str(&tables_html(
                    tables,
                    &[
                        "outcomes_contrasts",
                        "outcomes_interaction",
                        "outcomes_emmeans",
                    ],
                    opts,
                ));
                out.push_str(&tables_html(tables, &["covariate_mi"], opts));
                out.push_str(&crate::report::sensitivity::section_intro_html(r));
                out.push_str(&tables_html(tables, &["sensitivity_missing"], opts));
                figs_of("sensitivity_missing", &mut out);
                figs_of("outcomes", &mut out);
                out.push_str("<details><summary>Fixed effects of every model</summary>\n");
                out.push_str(&tables_html(tables, &["outcomes_fixed_effects"], opts));
                out.push_str("</details>\n");
            }
            "admissions" => {
                out.push_str(&tables_html(tables, &["admissions"], opts));
                figs_of("admissions", &mut out);
            }
            "mediation" => {
                out.push_str(&tables_html(tables, &["mediation"], opts));
                figs_of("mediation", &mut out);
            }
            "sites" => {
                out.push_str(&tables_html(tables, &["sites"], opts));
                figs_of("sites", &mut out);
            }
            "diagnostics" => {
                out.push_str(
                    "<p>Conditional residuals and random intercepts of each model that kept its \
                     diagnostics; points should follow the reference line in the QQ plots and \
                     scatter evenly around zero against the fitted values.</p>\n",
                );
                figs_of("diagnostics", &mut out);
            }
            "manifest" => out.push_str(&manifest_html(r)),
            _ => {}
        }
        out.push_str("</section>\n");
    }
    out.push_str("</main>\n<footer>Every number on this page is read from results.json of the same run; \
                  tables are also in tables/ as CSV, Markdown, LaTeX and HTML, figures in plots/ as SVG \
                  and PNG.</footer>\n</body>\n</html>\n");
    out
}
