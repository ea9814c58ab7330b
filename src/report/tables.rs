//! Tables for a paper: built from [`Results`] once, rendered as CSV (tidy, full precision),
//! Markdown, LaTeX (booktabs) and HTML (APA style numbers).
//!
//! A [`Table`] holds typed cells; the display formats format them in APA style with the
//! decimals of [`ReportOptions`], while CSV writes the unrounded numbers (and splits intervals
//! into `_low`/`_high` columns) so the files can be read back by R or a spreadsheet.
use crate::report::format as f;
use crate::report::ReportOptions;
use crate::results::{
    Admissions, BedDays, Consort, CountModel, LogisticResult, MediationResult, OutcomeResult,
    Results, SiteResult, Table1, Table1Statistic,
};

/// How a number is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumStyle {
    /// An estimate with the configured decimals.
    Estimate,
    /// A p-value (APA: `< .001`, no leading zero).
    P,
    /// A standardized effect (no leading zero).
    EffectSize,
    /// Degrees of freedom (one decimal when fractional).
    Df,
    /// A fixed number of decimals.
    Fixed(usize),
}

/// One table cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text, shown as is.
    Text(String),
    /// A number.
    Num(f64, NumStyle),
    /// A confidence interval.
    Interval(f64, f64, NumStyle),
    /// A count.
    Int(u64),
    /// Nothing (not applicable).
    Empty,
}

impl Cell {
    /// The cell as APA-formatted display text.
    pub fn display(&self, opts: &ReportOptions) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Num(x, style) => fmt_styled(*x, *style, opts),
            Cell::Interval(lo, hi, style) => match style {
                NumStyle::EffectSize => f::interval_no_zero(*lo, *hi, opts.decimals),
                NumStyle::Fixed(d) => f::interval(*lo, *hi, *d),
                _ => f::interval(*lo, *hi, opts.decimals),
            },
            Cell::Int(n) => n.to_string(),
            Cell::Empty => String::new(),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Cell::Num(..) | Cell::Interval(..) | Cell::Int(_))
    }

    /// The cell's CSV fields: one, or two for an interval column.
    fn csv_fields(&self, interval_column: bool) -> Vec<String> {
        let v = match self {
            Cell::Text(s) => vec![s.clone()],
            Cell::Num(x, _) => vec![f::raw(*x)],
            Cell::Interval(lo, hi, _) => vec![f::raw(*lo), f::raw(*hi)],
            Cell::Int(n) => vec![n.to_string()],
            Cell::Empty => vec![String::new()],
        };
        match (interval_column, v.len()) {
            (true, 1) => vec![v.into_iter().next().unwrap_or_default(), String::new()],
            _ => v,
        }
    }
}

fn fmt_styled(x: f64, style: NumStyle, opts: &ReportOptions) -> String {
    match style {
        NumStyle::Estimate => f::num(x, opts.decimals),
        NumStyle::P => f::p_value(x, opts.p_decimals),
        NumStyle::EffectSize => f::effect_size(x, opts.decimals),
        NumStyle::Df => f::df(x),
        NumStyle::Fixed(d) => f::num(x, d),
    }
}

/// A column: its display header and its CSV name (snake case).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Header in the display formats.
    pub header: String,
    /// Name in CSV; interval columns become `<key>_low`, `<key>_high`.
    pub key: String,
    /// Whether the column holds intervals.
    pub interval: bool,
}

impl Column {
    pub(super) fn new(header: &str, key: &str) -> Self {
        Column {
            header: header.into(),
            key: key.into(),
            interval: false,
        }
    }
    pub(super) fn ci(header: &str, key: &str) -> Self {
        Column {
            header: header.into(),
            key: key.into(),
            interval: true,
        }
    }
}

/// A table ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File stem and anchor (`table1`, `outcomes_contrasts`).
    pub id: String,
    /// Caption.
    pub title: String,
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows of cells, one per column.
    pub rows: Vec<Vec<Cell>>,
    /// Note under the table (APA "Note.").
    pub note: Option<String>,
    /// Leading columns whose repeated values are blanked in display formats (grouping).
    pub group_columns: usize,
}

impl Table {
    fn numeric_columns(&self) -> Vec<bool> {
        (0..self.columns.len())
            .map(|j| {
                self.rows
                    .iter()
                    .any(|r| r.get(j).is_some_and(|c| c.is_numeric()))
            })
            .collect()
    }

    /// Display text of every cell, with repeated group labels blanked.
    fn display_rows(&self, opts: &ReportOptions) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::with_capacity(self.rows.len());
        let mut prev: Vec<String> = Vec::new();
        for row in &self.rows {
            let cells: Vec<String> = (0..self.columns.len())
                .map(|j| row.get(j).map(|c| c.display(opts)).unwrap_or_default())
                .collect();
            let mut shown = cells.clone();
            // Blank a group cell when it and every group cell before it repeat the row above.
            for j in 0..self.group_columns.min(cells.len()) {
                if prev.len() > j && prev[..=j] == cells[..=j] {
                    shown[j] = String::new();
                }
            }
            prev = cells;
            out.push(shown);
        }
        out
    }

    /// RFC 4180 CSV: header of CSV keys, unrounded numbers, intervals in two columns.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self
            .columns
            .iter()
            .flat_map(|c| {
                if c.interval {
                    vec![format!("{}_low", c.key), format!("{}_high", c.key)]
                } else {
                    vec![c.key.clone()]
                }
            })
            .collect();
        push_csv_line(&mut out, &header);
        for row in &self.rows {
            let fields: Vec<String> = self
                .columns
                .iter()
                .enumerate()
                .flat_map(|(j, c)| row.get(j).unwrap_or(&Cell::Empty).csv_fields(c.interval))
                .collect();
            push_csv_line(&mut out, &fields);
        }
        out
    }

    /// A GitHub-flavoured Markdown table with a bold caption and an italic note.
    pub fn to_markdown(&self, opts: &ReportOptions) -> String {
        let mut out = format!("**{}**\n\n", md_escape(&self.title));
        let headers: Vec<String> = self.columns.iter().map(|c| md_escape(&c.header)).collect();
        out.push_str(&format!("| {} |\n", headers.join(" | ")));
        let align: Vec<&str> = self
            .numeric_columns()
            .iter()
            .map(|&n| if n { "---:" } else { ":---" })
            .collect();
        out.push_str(&format!("|{}|\n", align.join("|")));
        for row in self.display_rows(opts) {
            let cells: Vec<String> = row.iter().map(|c| md_escape(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if let Some(note) = &self.note {
            out.push_str(&format!("\n*Note.* {}\n", md_escape(note)));
        }
        out
    }

    /// A LaTeX table with booktabs rules (`\usepackage{booktabs}`).
    pub fn to_latex(&self, opts: &ReportOptions) -> String {
        let spec: String = self
            .numeric_columns()
            .iter()
            .map(|&n| if n { 'r' } else { 'l' })
            .collect();
        let mut out = String::new();
        out.push_str("\\begin{table}[htbp]\n\\centering\n\\small\n");
        out.push_str(&format!("\\caption{{{}}}\n", tex_escape(&self.title)));
        out.push_str(&format!("\\label{{tab:{}}}\n", tex_label(&self.id)));
        out.push_str(&format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));
        let headers: Vec<String> = self.columns.iter().map(|c| tex_escape(&c.header)).collect();
        out.push_str(&format!("{} \\\\\n\\midrule\n", headers.join(" & ")));
        let numeric = self.numeric_columns();
        for row in self.display_rows(opts) {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    if numeric.get(j).copied().unwrap_or(false) {
                        tex_number(c)
                    } else {
                        tex_escape(c)
                    }
                })
                .collect();
            out.push_str(&format!("{} \\\\\n", cells.join(" & ")));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        if let Some(note) = &self.note {
            out.push_str(&format!(
                "\\par\\smallskip\n{{\\footnotesize\\textit{{Note.}} {}\\par}}\n",
                tex_escape(note)
            ));
        }
        out.push_str("\\end{table}\n");
        out
    }

    /// An HTML `<table>` (class `apa`) with caption and note; no styles inline.
    pub fn to_html(&self, opts: &ReportOptions) -> String {
        let numeric = self.numeric_columns();
        let mut out = format!(
            "<table class=\"apa\" id=\"tab-{}\">\n<caption>{}</caption>\n<thead><tr>",
            html_escape(&self.id),
            html_escape(&self.title)
        );
        for (j, c) in self.columns.iter().enumerate() {
            let cls = if numeric.get(j).copied().unwrap_or(false) {
                " class=\"num\""
            } else {
                ""
            };
            out.push_str(&format!("<th{cls}>{}</th>", html_escape(&c.header)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in self.display_rows(opts) {
            out.push_str("<tr>");
            for (j, c) in row.iter().enumerate() {
                let cls = if numeric.get(j).copied().unwrap_or(false) {
                    " class=\"num\""
                } else {
                    ""
                };
                out.push_str(&format!("<td{cls}>{}</td>", html_escape(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n");
        if let Some(note) = &self.note {
            out.push_str(&format!(
                "<tfoot><tr><td colspan=\"{}\"><em>Note.</em> {}</td></tr></tfoot>\n",
                self.columns.len().max(1),
                html_escape(note)
            ));
        }
        out.push_str("</table>\n");
        out
    }
}

fn push_csv_line(out: &mut String, fields: &[String]) {
    let line: Vec<String> = fields.iter().map(|s| csv_quote(s)).collect();
    out.push_str(&line.join(","));
    out.push('\n');
}

/// Quotes a CSV field when it holds a comma, quote, or line break (RFC 4180), doubling quotes.
pub fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Escapes text for a Markdown table cell.
pub fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('*', "\\*")
        .replace('_', "\\_")
        .replace('\n', " ")
}

/// Escapes text for LaTeX (text mode), mapping the non-ASCII symbols herstel prints.
pub fn tex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' => out.push_str("\\&"),
            '%' => out.push_str("\\%"),
            '$' => out.push_str("\\$"),
            '#' => out.push_str("\\#"),
            '_' => out.push_str("\\_"),
            '{' => out.push_str("\\{"),
            '}' => out.push_str("\\}"),
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '\u{2014}' => out.push_str("---"),
            '\u{2013}' => out.push_str("--"),
            '\u{2212}' => out.push_str("$-$"),
            '\u{2265}' => out.push_str("$\\geq$"),
            '\u{2264}' => out.push_str("$\\leq$"),
            '\u{00d7}' => out.push_str("$\\times$"),
            '\u{2192}' => out.push_str("$\\rightarrow$"),
            '\u{2032}' => out.push_str("$'$"),
            '\u{03c4}' => out.push_str("$\\tau$"),
            '\u{03c7}' => out.push_str("$\\chi$"),
            '\u{03b2}' => out.push_str("$\\beta$"),
            '\u{00b2}' => out.push_str("\\textsuperscript{2}"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A numeric display cell for LaTeX: escaped, with minus signs set as math minus.
fn tex_number(s: &str) -> String {
    tex_escape(&s.replace('-', "\u{2212}"))
}

fn tex_label(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Builders: Results -> tables

pub(super) fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}
pub(super) fn est(x: f64) -> Cell {
    Cell::Num(x, NumStyle::Estimate)
}
fn opt_num(x: Option<f64>, style: NumStyle) -> Cell {
    x.map_or(Cell::Empty, |v| Cell::Num(v, style))
}
pub(super) fn opt_interval(lo: Option<f64>, hi: Option<f64>, style: NumStyle) -> Cell {
    match (lo, hi) {
        (Some(l), Some(h)) => Cell::Interval(l, h, style),
        _ => Cell::Empty,
    }
}

pub(super) fn conf_pct(results: &Results) -> String {
    let level = results.study.conf_level;
    let level = if level > 0.0 && level < 1.0 {
        level
    } else {
        0.95
    };
    format!("{}%", f::num(level * 100.0, 0))
}

/// Every table the results support, in report order.
pub fn build_all(results: &Results) -> Vec<Table> {
    let labels = f::Labels::of(results);
    let mut tables = Vec::new();
    if let Some(c) = &results.consort {
        tables.push(consort_table(c, results));
    }
    if let Some(t1) = &results.table1 {
        tables.push(table1(t1));
    }
    if !results.outcomes.is_empty() {
        tables.push(outcome_emmeans(results));
        tables.push(outcome_contrasts(results));
        if results
            .outcomes
            .iter()
            .any(|o| o.interaction_test.is_some())
        {
            tables.push(outcome_interaction(results));
        }
        if results.outcomes.iter().any(|o| !o.fixed_effects.is_empty()) {
            tables.push(outcome_fixed_effects(results));
        }
    }
    tables.extend(crate::report::covariate_mi::tables(results));
    tables.extend(crate::report::sensitivity::tables(results));
    if results.admissions.is_some() {
        tables.extend(admissions_tables(results));
    }
    if !results.mediation.is_empty() {
        tables.push(mediation_paths(&results.mediation, &labels));
        tables.push(mediation_indirect(&results.mediation));
    }
    if !results.sites.is_empty() {
        tables.push(sites_per_site(&results.sites, &labels));
        if results.sites.iter().any(|s| s.meta_analysis.is_some()) {
            tables.push(sites_meta(&results.sites, &labels));
        }
        if results
            .sites
            .iter()
            .any(|s| !s.shrunken.is_empty() || !s.ranks.is_empty())
        {
            tables.push(sites_shrunken(&results.sites, &labels));
        }
    }
    if !results.sites_fidelity.is_empty() {
        tables.push(sites_fidelity(&results.sites_fidelity, &labels));
    }
    if let Some(r) = &results.sites_routine {
        tables.push(sites_routine(r, &labels));
    }
    tables
}

/// Table 1: baseline characteristics by arm.
pub fn table1(t1: &Table1) -> Table {
    let mut columns = vec![Column::new("Characteristic", "variable")];
    columns.push(Column::new("", "level"));
    for a in &t1.arms {
        columns.push(Column::new(
            &format!("{} (n = {})", a.arm, a.n),
            &a.arm.to_lowercase(),
        ));
    }
    let mut rows = Vec::new();
    for r in &t1.rows {
        let label = match r.statistic {
            Table1Statistic::MeanSd => format!("{}, M (SD)", r.variable),
            Table1Statistic::MedianIqr => format!("{}, Mdn [IQR]", r.variable),
            Table1Statistic::CountPercent => format!("{}, n (%)", r.variable),
        };
        let mut row = vec![text(label), text(r.level.clone().unwrap_or_default())];
        for a in &t1.arms {
            let cell = r.cells.iter().find(|c| c.arm == a.arm);
            row.push(match cell {
                None => Cell::Empty,
                Some(c) => text(match r.statistic {
                    Table1Statistic::MeanSd => {
                        f::mean_sd(c.mean.unwrap_or(f64::NAN), c.sd.unwrap_or(f64::NAN), 2)
                    }
                    Table1Statistic::MedianIqr => f::median_iqr(
                        c.median.unwrap_or(f64::NAN),
                        c.q1.unwrap_or(f64::NAN),
                        c.q3.unwrap_or(f64::NAN),
                        1,
                    ),
                    Table1Statistic::CountPercent => {
                        f::count_percent(c.count.unwrap_or(0), c.percent.unwrap_or(f64::NAN))
                    }
                }),
            });
        }
        rows.push(row);
    }
    Table {
        id: "table1".into(),
        title: "Table 1. Baseline characteristics by arm".into(),
        columns,
        rows,
        note: Some(
            "M (SD) = mean (standard deviation); Mdn [IQR] = median [interquartile range]; \
             n (%) of participants with a value."
                .into(),
        ),
        group_columns: 1,
    }
}

/// CONSORT counts per arm.
pub fn consort_table(c: &Consort, results: &Results) -> Table {
    let waves: Vec<String> = results
        .study
        .waves
        .iter()
        .map(|w| w.label.clone())
        .collect();
    let mut columns = vec![
        Column::new("Arm", "arm"),
        Column::new("Randomized", "randomized"),
    ];
    let any_attended = c.arms.iter().any(|a| a.attended_any_session.is_some());
    let any_completers = c.arms.iter().any(|a| a.completers.is_some());
    if any_attended {
        columns.push(Column::new("\u{2265} 1 session", "attended_any_session"));
    }
    if any_completers {
        columns.push(Column::new("Completers", "completers"));
    }
    let wave_list: Vec<String> = if waves.is_empty() {
        c.arms
            .first()
            .map(|a| a.assessed.iter().map(|w| w.wave.clone()).collect())
            .unwrap_or_default()
    } else {
        waves
    };
    for w in &wave_list {
        columns.push(Column::new(
            &format!("Assessed {w}"),
            &format!("assessed_{w}"),
        ));
    }
    for w in wave_list.iter().skip(1) {
        columns.push(Column::new(&format!("Lost {w}"), &format!("lost_{w}")));
    }
    columns.push(Column::new("Analysed", "analysed"));
    let mut rows = Vec::new();
    for a in &c.arms {
        let mut row = vec![text(a.arm.clone()), Cell::Int(a.randomized)];
        if any_attended {
            row.push(a.attended_any_session.map_or(Cell::Empty, Cell::Int));
        }
        if any_completers {
            row.push(a.completers.map_or(Cell::Empty, Cell::Int));
        }
        for w in &wave_list {
            row.push(
                a.assessed
                    .iter()
                    .find(|x| &x.wave == w)
                    .map_or(Cell::Empty, |x| Cell::Int(x.n)),
            );
        }
        for w in wave_list.iter().skip(1) {
            row.push(
                a.lost
                    .iter()
                    .find(|x| &x.wave == w)
                    .map_or(Cell::Empty, |x| Cell::Int(x.n)),
            );
        }
        row.push(Cell::Int(a.analysed));
        rows.push(row);
    }
    Table {
        id: "consort".into(),
        title: "Participant flow (CONSORT)".into(),
        columns,
        rows,
        note: Some(format!(
            "{} participants randomized. Assessed = primary outcome observed at the wave; \
             lost = not assessed at the wave (participants may return at a later wave); \
             analysed = included in the intention-to-treat analysis.",
            c.randomized
        )),
        group_columns: 0,
    }
}

fn model_label(o: &OutcomeResult) -> (String, String) {
    (
        f::analysis_set_label(&o.analysis_set),
        f::sensitivity_label(o.sensitivity.as_deref()),
    )
}

fn outcome_note(results: &Results, extra: &str) -> String {
    let mut methods: Vec<String> = Vec::new();
    for o in &results.outcomes {
        let m = match &o.family {
            Some(fam) => format!(
                "generalized linear mixed model, {fam}, Laplace approximation, Wald z tests; \
                 marginal means on the response scale and ratios (odds or rate ratios) as \
                 emmeans type = \"response\""
            ),
            None => format!(
                "{} estimation with {} degrees of freedom",
                if o.reml { "REML" } else { "ML" },
                f::df_method_label(&o.df_method)
            ),
        };
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    let formulas: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for o in results.outcomes.iter().filter(|o| o.sensitivity.is_none()) {
            let generic = o.model.replacen(&o.outcome, "score", 1);
            if !v.contains(&generic) {
                v.push(generic);
            }
        }
        v
    };
    let kind = if results.outcomes.iter().all(|o| o.family.is_some()) {
        "Mixed models"
    } else {
        "Linear mixed models"
    };
    let mut note = format!(
        "{kind} {}; {}. {} confidence intervals.",
        formulas.join("; "),
        methods.join("; "),
        conf_pct(results)
    );
    if !extra.is_empty() {
        note.push(' ');
        note.push_str(extra);
    }
    note
}

/// Estimated marginal means per outcome, analysis set, arm and wave.
pub fn outcome_emmeans(results: &Results) -> Table {
    let labels = f::Labels::of(results);
    let ci = conf_pct(results);
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Analysis set", "analysis_set"),
        Column::new("Model", "model"),
        Column::new("Arm", "arm"),
        Column::new("Wave", "wave"),
        Column::new("EMM", "estimate"),
        Column::new("SE", "std_error"),
        Column::new("df", "df"),
        Column::ci(&format!("{ci} CI"), "conf"),
    ];
    let mut rows = Vec::new();
    for o in &results.outcomes {
        let (set, model) = model_label(o);
        for e in &o.emmeans {
            rows.push(vec![
                text(labels.outcome(&o.outcome)),
                text(set.clone()),
                text(model.clone()),
                text(e.arm.clone()),
                text(e.wave.clone()),
                est(e.estimate),
                est(e.std_error),
                Cell::Num(e.df, NumStyle::Df),
                Cell::Interval(e.conf_low, e.conf_high, NumStyle::Estimate),
            ]);
        }
    }
    Table {
        id: "outcomes_emmeans".into(),
        title: "Estimated marginal means by arm and wave".into(),
        columns,
        rows,
        note: Some(outcome_note(
            results,
            "EMM = estimated marginal mean (as emmeans).",
        )),
        group_columns: 3,
    }
}

/// Intervention minus control at each follow-up wave, with d and adjusted p.
pub fn outcome_contrasts(results: &Results) -> Table {
    let labels = f::Labels::of(results);
    let ci = conf_pct(results);
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Analysis set", "analysis_set"),
        Column::new("Model", "model"),
        Column::new("Wave", "wave"),
        Column::new("Contrast", "contrast"),
        Column::new("Estimate", "estimate"),
        Column::new("SE", "std_error"),
        Column::new("df", "df"),
        Column::ci(&format!("{ci} CI"), "conf"),
        Column::new("p", "p_value"),
        Column::new("p adj.", "p_adjusted"),
        Column::new("d", "cohens_d"),
        Column::ci(&format!("{ci} CI of d"), "d_conf"),
    ];
    let mut rows = Vec::new();
    for o in &results.outcomes {
        let (set, model) = model_label(o);
        let all = o
            .contrasts
            .iter()
            .map(|c| (c, false))
            .chain(o.change_contrasts.iter().map(|c| (c, true)));
        for (c, change) in all {
            let label = if change {
                format!("{} (change from baseline)", c.contrast)
            } else {
                c.contrast.clone()
            };
            rows.push(vec![
                text(labels.outcome(&o.outcome)),
                text(set.clone()),
                text(model.clone()),
                text(c.wave.clone()),
                text(label),
                est(c.estimate),
                est(c.std_error),
                Cell::Num(c.df, NumStyle::Df),
                Cell::Interval(c.conf_low, c.conf_high, NumStyle::Estimate),
                Cell::Num(c.p_value, NumStyle::P),
                opt_num(c.p_adjusted, NumStyle::P),
                opt_num(c.cohens_d, NumStyle::EffectSize),
                opt_interval(c.d_conf_low, c.d_conf_high, NumStyle::EffectSize),
            ]);
        }
    }
    let adjust = results
        .study
        .p_adjust
        .clone()
        .unwrap_or_else(|| "holm".into());
    let adjust = match adjust.as_str() {
        "holm" => "Holm".to_string(),
        "bonferroni" => "Bonferroni".to_string(),
        "BH" | "fdr" => "Benjamini-Hochberg".to_string(),
        "none" => "no".to_string(),
        other => other.to_string(),
    };
    Table {
        id: "outcomes_contrasts".into(),
        title: "Intervention minus control by wave".into(),
        columns,
        rows,
        note: Some(outcome_note(
            results,
            &format!(
                "p adj. = p-value adjusted across the secondary outcomes ({adjust} method; none \
                 for the primary outcome). d = contrast divided by the pooled baseline SD \
                 (Feingold, 2009)."
            ),
        )),
        group_columns: 3,
    }
}

/// Arm x wave omnibus tests.
pub fn outcome_interaction(results: &Results) -> Table {
    let labels = f::Labels::of(results);
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Analysis set", "analysis_set"),
        Column::new("Model", "model"),
        Column::new("F", "f"),
        Column::new("df1", "df_num"),
        Column::new("df2", "df_den"),
        Column::new("p", "p_value"),
    ];
    let rows = results
        .outcomes
        .iter()
        .filter_map(|o| {
            let t = o.interaction_test.as_ref()?;
            let (set, model) = model_label(o);
            Some(vec![
                text(labels.outcome(&o.outcome)),
                text(set),
                text(model),
                est(t.f),
                Cell::Num(t.df_num, NumStyle::Df),
                Cell::Num(t.df_den, NumStyle::Df),
                Cell::Num(t.p_value, NumStyle::P),
            ])
        })
        .collect();
    Table {
        id: "outcomes_interaction".into(),
        title: "Arm \u{00d7} wave interaction tests".into(),
        columns,
        rows,
        note: Some(outcome_note(
            results,
            "Type III F tests of the arm \u{00d7} wave terms (as lmerTest's anova).",
        )),
        group_columns: 2,
    }
}

/// Fixed effects of every model (broom rows).
pub fn outcome_fixed_effects(results: &Results) -> Table {
    let labels = f::Labels::of(results);
    let ci = conf_pct(results);
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Analysis set", "analysis_set"),
        Column::new("Model", "model"),
        Column::new("Term", "term"),
        Column::new("Estimate", "estimate"),
        Column::new("SE", "std_error"),
        Column::new("t", "statistic"),
        Column::new("df", "df"),
        Column::new("p", "p_value"),
        Column::ci(&format!("{ci} CI"), "conf"),
    ];
    let mut rows = Vec::new();
    for o in &results.outcomes {
        let (set, model) = model_label(o);
        for t in &o.fixed_effects {
            rows.push(vec![
                text(labels.outcome(&o.outcome)),
                text(set.clone()),
                text(model.clone()),
                text(t.term.clone()),
                est(t.estimate),
                est(t.std_error),
                est(t.statistic),
                Cell::Num(t.df, NumStyle::Df),
                Cell::Num(t.p_value, NumStyle::P),
                Cell::Interval(t.conf_low, t.conf_high, NumStyle::Estimate),
            ]);
        }
    }
    Table {
        id: "outcomes_fixed_effects".into(),
        title: "Fixed effects of the outcome models".into(),
        columns,
        rows,
        note: Some(outcome_note(results, "Terms as R names them.")),
        group_columns: 3,
    }
}

/// Admission analyses: effects and descriptives.
pub fn admissions_tables(results: &Results) -> Vec<Table> {
    let Some(a) = &results.admissions else {
        return Vec::new();
    };
    let mut out = vec![admissions_effects_table(a, &conf_pct(results))];
    if !a.by_arm.is_empty() {
        out.push(admissions_by_arm_table(a));
    }
    if let Some(pp) = &a.per_period {
        out.extend(super::period_tables::per_period_tables(
            pp,
            &conf_pct(results),
        ));
    }
    out
}

/// The table of intervention effects on admissions: one row per analysis that was run
/// (negative binomial, Poisson, logistic with its risk difference, bed days).
fn admissions_effects_table(a: &Admissions, ci: &str) -> Table {
    let columns = vec![
        Column::new("Analysis", "analysis"),
        Column::new("Effect", "effect"),
        Column::new("Estimate", "estimate"),
        Column::ci(&format!("{ci} CI"), "conf"),
        Column::new("p", "p_value"),
        Column::new("Details", "details"),
    ];
    let mut rows = Vec::new();
    if let Some(nb) = &a.negative_binomial {
        rows.push(count_model_row(
            "Negative binomial",
            nb,
            nb.theta.map(|t| format!("theta = {}", f::num(t, 3))),
        ));
    }
    if let Some(p) = &a.poisson {
        rows.push(count_model_row(
            "Poisson",
            p,
            p.dispersion
                .map(|d| format!("dispersion = {}", f::num(d, 2))),
        ));
    }
    if let Some(l) = &a.logistic {
        rows.extend(logistic_rows(l));
    }
    if let Some(b) = &a.bed_days {
        rows.push(bed_days_row(b));
    }
    Table {
        id: "admissions".into(),
        title: "Psychiatric admissions: intervention effects".into(),
        columns,
        rows,
        note: Some(admissions_note(a)),
        group_columns: 1,
    }
}

/// The rate-ratio row of a count model, with its details (theta or dispersion) when known.
fn count_model_row(analysis: &str, m: &CountModel, details: Option<String>) -> Vec<Cell> {
    vec![
        text(analysis),
        text("Rate ratio"),
        est(m.rate_ratio),
        Cell::Interval(m.conf_low, m.conf_high, NumStyle::Estimate),
        Cell::Num(m.p_value, NumStyle::P),
        text(details.unwrap_or_default()),
    ]
}

/// The odds-ratio row of the logistic model (with the risk per arm), then the risk
/// difference row when it was estimated.
fn logistic_rows(l: &LogisticResult) -> Vec<Vec<Cell>> {
    let risks: Vec<String> = l
        .risks
        .iter()
        .map(|r| {
            let pct = if r.n > 0 {
                100.0 * r.events as f64 / r.n as f64
            } else {
                f64::NAN
            };
            format!("{} {}/{} ({}%)", r.arm, r.events, r.n, f::num(pct, 1))
        })
        .collect();
    let mut rows = vec![vec![
        text("Logistic (any admission)"),
        text("Odds ratio"),
        est(l.odds_ratio),
        Cell::Interval(l.conf_low, l.conf_high, NumStyle::Estimate),
        Cell::Num(l.p_value, NumStyle::P),
        text(risks.join("; ")),
    ]];
    if let Some(rd) = l.risk_difference {
        rows.push(vec![
            text("Logistic (any admission)"),
            text("Risk difference"),
            est(rd),
            opt_interval(l.rd_conf_low, l.rd_conf_high, NumStyle::Estimate),
            Cell::Empty,
            text("intervention minus control"),
        ]);
    }
    rows
}

/// The rank test of the change in bed days, with median and quartiles per arm.
fn bed_days_row(b: &BedDays) -> Vec<Cell> {
    let by: Vec<String> = b
        .by_arm
        .iter()
        .map(|d| {
            format!(
                "{} Mdn {} [{}, {}]",
                d.arm,
                f::num(d.median, 1),
                f::num(d.q1, 1),
                f::num(d.q3, 1)
            )
        })
        .collect();
    vec![
        text(if b.test.is_empty() {
            "Mann-Whitney U (change in bed days)".to_string()
        } else {
            b.test.clone()
        }),
        text("U"),
        Cell::Num(b.u, NumStyle::Fixed(1)),
        Cell::Empty,
        Cell::Num(b.p_value, NumStyle::P),
        text(by.join("; ")),
    ]
}

/// The note under the effects table: the windows, the count model, and how ratios read.
fn admissions_note(a: &Admissions) -> String {
    let mut note = String::new();
    if !a.followup_window.is_empty() {
        note.push_str(&format!("Follow-up window: {}. ", a.followup_window));
    }
    if !a.prior_window.is_empty() {
        note.push_str(&format!("Prior window: {}. ", a.prior_window));
    }
    if let Some(nb) = &a.negative_binomial {
        if !nb.model.is_empty() {
            note.push_str(&format!("Count model: {}. ", nb.model));
        }
    }
    note.push_str(
        "Rate and odds ratios are intervention over control; Wald intervals on the log scale.",
    );
    note
}

/// Admissions, bed days and person-years per arm, before randomization and during follow-up.
fn admissions_by_arm_table(a: &Admissions) -> Table {
    let columns = vec![
        Column::new("Arm", "arm"),
        Column::new("n", "n"),
        Column::new("Admissions, prior", "admissions_prior"),
        Column::new("Admissions, follow-up", "admissions_followup"),
        Column::new("Bed days, prior", "bed_days_prior"),
        Column::new("Bed days, follow-up", "bed_days_followup"),
        Column::new("Person-years, prior", "exposure_years_prior"),
        Column::new("Person-years, follow-up", "exposure_years_followup"),
    ];
    let rows = a
        .by_arm
        .iter()
        .map(|r| {
            vec![
                text(r.arm.clone()),
                Cell::Int(r.n),
                Cell::Int(r.admissions_prior),
                Cell::Int(r.admissions_followup),
                Cell::Int(r.bed_days_prior),
                Cell::Int(r.bed_days_followup),
                Cell::Num(r.exposure_years_prior, NumStyle::Fixed(1)),
                Cell::Num(r.exposure_years_followup, NumStyle::Fixed(1)),
            ]
        })
        .collect();
    Table {
        id: "admissions_by_arm".into(),
        title: "Psychiatric admissions and bed days by arm".into(),
        columns,
        rows,
        note: None,
        group_columns: 0,
    }
}

fn path_between(m: &MediationResult, path: &str, labels: &f::Labels) -> String {
    let med = |i: usize| {
        m.mediators
            .get(i)
            .map(|s| labels.outcome(s))
            .unwrap_or_else(|| "M".into())
    };
    let x = labels.outcome(&m.x);
    let y = labels.outcome(&m.y);
    match path {
        "a" | "a1" => format!("{x} \u{2192} {}", med(0)),
        "a2" => format!("{x} \u{2192} {}", med(1)),
        "b" | "b1" => format!("{} \u{2192} {y}", med(0)),
        "b2" => format!("{} \u{2192} {y}", med(1)),
        "c_prime" => format!("{x} \u{2192} {y} (direct)"),
        "c" => format!("{x} \u{2192} {y} (total)"),
        _ => String::new(),
    }
}

/// Mediation paths of every analysis.
pub fn mediation_paths(meds: &[MediationResult], labels: &f::Labels) -> Table {
    let columns = vec![
        Column::new("Analysis", "analysis"),
        Column::new("Level", "level"),
        Column::new("Path", "path"),
        Column::new("Effect of", "relation"),
        Column::new("B", "estimate"),
        Column::new("SE", "std_error"),
        Column::new("\u{03b2}", "std_estimate"),
        Column::new("p", "p_value"),
        Column::ci("95% CI", "conf"),
    ];
    let mut rows = Vec::new();
    for m in meds {
        let levels = [("within", &m.paths), ("between", &m.between_paths)];
        for (level, paths) in levels {
            if paths.is_empty() {
                continue;
            }
            let level = if m.between_paths.is_empty() {
                ""
            } else {
                level
            };
            for p in paths.iter() {
                rows.push(vec![
                    text(f::mediation_label(&m.analysis)),
                    text(level),
                    text(f::path_label(&p.path)),
                    text(path_between(m, &p.path, labels)),
                    est(p.estimate),
                    est(p.std_error),
                    opt_num(p.std_estimate, NumStyle::EffectSize),
                    opt_num(p.p_value, NumStyle::P),
                    opt_interval(p.conf_low, p.conf_high, NumStyle::Estimate),
                ]);
            }
        }
    }
    let n: Vec<String> = meds
        .iter()
        .map(|m| {
            format!(
                "{}: n = {} used, {} excluded",
                f::mediation_label(&m.analysis),
                m.n_used,
                m.n_excluded
            )
        })
        .collect();
    Table {
        id: "mediation_paths".into(),
        title: "Mediation: path coefficients".into(),
        columns,
        rows,
        note: Some(format!(
            "B = unstandardized, \u{03b2} = standardized coefficient. a: predictor to mediator; \
             b: mediator to outcome; c\u{2032}: direct effect; c: total effect. {}.",
            n.join("; ")
        )),
        group_columns: 2,
    }
}

/// Indirect effects with bootstrap and Monte Carlo intervals.
pub fn mediation_indirect(meds: &[MediationResult]) -> Table {
    let columns = vec![
        Column::new("Analysis", "analysis"),
        Column::new("Effect", "effect"),
        Column::new("Estimate", "estimate"),
        Column::new("\u{03b2}", "std_estimate"),
        Column::new("Sobel SE", "sobel_se"),
        Column::ci("Bootstrap 95% CI", "bootstrap"),
        Column::ci("Monte Carlo 95% CI", "monte_carlo"),
    ];
    let mut rows = Vec::new();
    for m in meds {
        for i in &m.indirect {
            rows.push(vec![
                text(f::mediation_label(&m.analysis)),
                text(f::path_label(&i.effect)),
                est(i.estimate),
                opt_num(i.std_estimate, NumStyle::EffectSize),
                opt_num(i.sobel_se, NumStyle::Estimate),
                i.bootstrap.map_or(Cell::Empty, |b| {
                    Cell::Interval(b.conf_low, b.conf_high, NumStyle::Estimate)
                }),
                i.monte_carlo.map_or(Cell::Empty, |b| {
                    Cell::Interval(b.conf_low, b.conf_high, NumStyle::Estimate)
                }),
            ]);
        }
    }
    let mut notes = vec![
        "Percentile bootstrap resampling participants; Monte Carlo intervals after Preacher and \
         Selig (2012)."
            .to_string(),
    ];
    for m in meds {
        if let Some(b) = m.bootstrap_resamples {
            notes.push(format!(
                "{}: {b} bootstrap resamples.",
                f::mediation_label(&m.analysis)
            ));
        }
        if let Some(pm) = m.proportion_mediated {
            notes.push(format!(
                "{}: proportion mediated {}.",
                f::mediation_label(&m.analysis),
                f::num(pm, 2)
            ));
        }
    }
    Table {
        id: "mediation_indirect".into(),
        title: "Mediation: indirect effects".into(),
        columns,
        rows,
        note: Some(notes.join(" ")),
        group_columns: 1,
    }
}

/// Per-site contrasts.
pub fn sites_per_site(sites: &[SiteResult], labels: &f::Labels) -> Table {
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Wave", "wave"),
        Column::new("Site", "site_id"),
        Column::new("n", "n_participants"),
        Column::new("Estimate", "estimate"),
        Column::new("SE", "std_error"),
        Column::new("df", "df"),
        Column::ci("95% CI", "conf"),
    ];
    let mut rows = Vec::new();
    for s in sites {
        for p in &s.per_site {
            rows.push(vec![
                text(labels.outcome(&s.outcome)),
                text(s.wave.clone()),
                text(p.site_id.clone()),
                Cell::Int(p.n_participants),
                est(p.estimate),
                est(p.std_error),
                Cell::Num(p.df, NumStyle::Df),
                Cell::Interval(p.conf_low, p.conf_high, NumStyle::Estimate),
            ]);
        }
    }
    Table {
        id: "sites_per_site".into(),
        title: "Intervention minus control within each site".into(),
        columns,
        rows,
        note: Some(
            "Contrast at the wave from the outcome model fitted to each site's data (least \
             squares when that fit is singular)."
                .into(),
        ),
        group_columns: 2,
    }
}

/// The treatment effect by group-fidelity band (each band against all controls) and the
/// fidelity moderation per point of the IMR Fidelity Scale.
pub fn sites_fidelity(fid: &[crate::results::FidelityResult], labels: &f::Labels) -> Table {
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Fidelity", "band"),
        Column::new("Wave", "wave"),
        Column::new("n IMR / control", "n"),
        Column::new("Groups", "n_groups"),
        Column::new("Estimate", "estimate"),
        Column::new("SE", "std_error"),
        Column::new("df", "df"),
        Column::ci("95% CI", "conf"),
        Column::new("p", "p_value"),
    ];
    let mut rows = Vec::new();
    for f in fid {
        for b in &f.bands {
            let method = match b.method {
                crate::results::FitMethod::Lmm => "",
                crate::results::FitMethod::Ols => " (OLS)",
            };
            rows.push(vec![
                text(labels.outcome(&f.outcome)),
                text(format!("{} ({}){method}", b.band, b.range)),
                text(b.wave.clone()),
                text(format!("{} / {}", b.n_intervention, b.n_control)),
                Cell::Int(b.n_groups),
                est(b.estimate),
                est(b.std_error),
                Cell::Num(b.df, NumStyle::Df),
                Cell::Interval(b.conf_low, b.conf_high, NumStyle::Estimate),
                Cell::Num(b.p_value, NumStyle::P),
            ]);
        }
        if let Some(m) = &f.moderator {
            for r in &m.rows {
                rows.push(vec![
                    text(labels.outcome(&f.outcome)),
                    text("per fidelity point (moderator)"),
                    text(r.wave.clone()),
                    text(format!("{} participants", m.n_participants)),
                    Cell::Int(m.n_groups),
                    est(r.estimate),
                    est(r.std_error),
                    Cell::Num(r.df, NumStyle::Df),
                    Cell::Interval(r.conf_low, r.conf_high, NumStyle::Estimate),
                    Cell::Num(r.p_value, NumStyle::P),
                ]);
            }
        }
    }
    Table {
        id: "sites_fidelity".into(),
        title: "Treatment effect by IMR group fidelity".into(),
        columns,
        rows,
        note: Some(
            "Bands: intervention participants whose training group scored in the band on the IMR \
             Fidelity Scale against all controls, with the trial's outcome model (OLS when the mixed \
             model was singular). Moderator: change of the intervention minus control contrast per \
             fidelity point in the partially nested model."
                .into(),
        ),
        group_columns: 2,
    }
}

/// Routine outcome monitoring: case-mix-adjusted site means of change with funnel limits.
pub fn sites_routine(r: &crate::results::RoutineResult, labels: &f::Labels) -> Table {
    let columns = vec![
        Column::new("Site", "site_id"),
        Column::new("n", "n"),
        Column::new("Observed change", "observed"),
        Column::new("Expected (case mix)", "expected"),
        Column::new("Adjusted change", "adjusted"),
        Column::new("SE", "std_error"),
        Column::ci("95% limits", "limit95"),
        Column::ci("99.8% limits", "limit998"),
        Column::new("Funnel", "funnel"),
        Column::new("Shrunken", "shrunken"),
        Column::new("Conditional SD", "conditional_sd"),
    ];
    let rows = r
        .rows
        .iter()
        .map(|x| {
            vec![
                text(x.site_id.clone()),
                Cell::Int(x.n),
                est(x.observed),
                est(x.expected),
                est(x.adjusted),
                est(x.std_error),
                Cell::Interval(x.limit95_low, x.limit95_high, NumStyle::Estimate),
                Cell::Interval(x.limit998_low, x.limit998_high, NumStyle::Estimate),
                text(x.funnel.clone()),
                est(x.shrunken),
                est(x.conditional_sd),
            ]
        })
        .collect();
    Table {
        id: "sites_routine".into(),
        title: format!(
            "Routine outcome monitoring: {} change {} to {} by site, adjusted for case mix",
            labels.outcome(&r.outcome),
            r.baseline_wave,
            r.wave
        ),
        columns,
        rows,
        note: Some(format!(
            "Case-mix model {}; adjusted = overall mean change ({:.2}) + observed \u{2212} expected; \
             funnel limits around the overall mean; shrunken = conditional mode of the site intercept in {}. \
             {} participants, {} without both scores or a covariate.",
            r.model, r.overall_mean_change, r.shrinkage_model, r.n_participants, r.n_excluded
        )),
        group_columns: 0,
    }
}

/// Random-effects meta-analyses across sites.
pub fn sites_meta(sites: &[SiteResult], labels: &f::Labels) -> Table {
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Wave", "wave"),
        Column::new("k", "k"),
        Column::new("Estimate", "estimate"),
        Column::new("SE", "std_error"),
        Column::ci("95% CI", "conf"),
        Column::new("\u{03c4}\u{00b2}", "tau2"),
        Column::new("I\u{00b2} (%)", "i2"),
        Column::new("Q", "q"),
        Column::new("p (Q)", "q_p_value"),
        Column::ci("95% PI", "pi"),
    ];
    let rows = sites
        .iter()
        .filter_map(|s| {
            let m = s.meta_analysis.as_ref()?;
            Some(vec![
                text(labels.outcome(&s.outcome)),
                text(s.wave.clone()),
                Cell::Int(m.k),
                est(m.estimate),
                est(m.std_error),
                Cell::Interval(m.conf_low, m.conf_high, NumStyle::Estimate),
                Cell::Num(m.tau2, NumStyle::Fixed(3)),
                Cell::Num(m.i2, NumStyle::Fixed(1)),
                est(m.q),
                Cell::Num(m.q_p_value, NumStyle::P),
                Cell::Interval(m.pi_low, m.pi_high, NumStyle::Estimate),
            ])
        })
        .collect();
    Table {
        id: "sites_meta_analysis".into(),
        title: "Random-effects meta-analysis of the site contrasts".into(),
        columns,
        rows,
        note: Some(
            "REML estimate of \u{03c4}\u{00b2} with Knapp-Hartung intervals (as metafor::rma); \
             PI = prediction interval for a new site."
                .into(),
        ),
        group_columns: 1,
    }
}

/// Shrunken site effects and ranks.
pub fn sites_shrunken(sites: &[SiteResult], labels: &f::Labels) -> Table {
    let columns = vec![
        Column::new("Outcome", "outcome"),
        Column::new("Wave", "wave"),
        Column::new("Site", "site_id"),
        Column::new("Shrunken effect", "arm_effect"),
        Column::new("Conditional SD", "conditional_sd"),
        Column::new("Rank", "rank"),
        Column::new("Rank 2.5%", "rank_low"),
        Column::new("Rank 97.5%", "rank_high"),
    ];
    let mut rows = Vec::new();
    for s in sites {
        let mut ids: Vec<&str> = s.shrunken.iter().map(|r| r.site_id.as_str()).collect();
        for r in &s.ranks {
            if !ids.contains(&r.site_id.as_str()) {
                ids.push(&r.site_id);
            }
        }
        for id in ids {
            let sh = s.shrunken.iter().find(|r| r.site_id == id);
            let rk = s.ranks.iter().find(|r| r.site_id == id);
            rows.push(vec![
                text(labels.outcome(&s.outcome)),
                text(s.wave.clone()),
                text(id),
                sh.map_or(Cell::Empty, |r| est(r.arm_effect)),
                sh.map_or(Cell::Empty, |r| est(r.conditional_sd)),
                rk.map_or(Cell::Empty, |r| Cell::Int(r.rank)),
                rk.map_or(Cell::Empty, |r| Cell::Int(r.rank_low)),
                rk.map_or(Cell::Empty, |r| Cell::Int(r.rank_high)),
            ]);
        }
    }
    Table {
        id: "sites_shrunken".into(),
        title: "Shrunken site effects and ranks".into(),
        columns,
        rows,
        note: Some(
            "Conditional modes of the random site-by-arm effects (deviations from the average \
             effect); rank 1 = largest effect, with a 95% interval from parametric simulation."
                .into(),
        ),
        group_columns: 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ReportOptions {
        ReportOptions::default()
    }

    fn sample() -> Table {
        Table {
            id: "t".into(),
            title: "A & B: 50% of $x_1$".into(),
            columns: vec![
                Column::new("Name", "name"),
                Column::new("p", "p"),
                Column::ci("95% CI", "conf"),
            ],
            rows: vec![
                vec![
                    text("a, \"quoted\""),
                    Cell::Num(0.0004, NumStyle::P),
                    Cell::Interval(-0.5, 1.25, NumStyle::Estimate),
                ],
                vec![
                    text("a, \"quoted\""),
                    Cell::Num(0.2, NumStyle::P),
                    Cell::Empty,
                ],
            ],
            note: Some("x < y".into()),
            group_columns: 1,
        }
    }

    #[test]
    fn csv_quotes_and_splits_intervals() {
        let csv = sample().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "name,p,conf_low,conf_high");
        assert_eq!(lines[1], "\"a, \"\"quoted\"\"\",0.0004,-0.5,1.25");
        assert_eq!(lines[2], "\"a, \"\"quoted\"\"\",0.2,,");
        assert_eq!(csv_quote("plain"), "plain");
        assert_eq!(csv_quote("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn latex_escapes_specials_and_uses_booktabs() {
        let tex = sample().to_latex(&opts());
        assert!(tex.contains("\\caption{A \\& B: 50\\% of \\$x\\_1\\$}"));
        assert!(tex.contains("\\toprule") && tex.contains("\\midrule"));
        assert!(tex.contains("\\bottomrule"));
        assert!(tex.contains("\\textless{} .001"));
        assert!(tex.contains("[$-$0.50, 1.25]"));
        assert!(tex.contains("x \\textless{} y"));
        assert_eq!(
            tex_escape("a_b{c}~^\\"),
            "a\\_b\\{c\\}\\textasciitilde{}\\textasciicircum{}\\textbackslash{}"
        );
        // Repeated group label is blanked in the second row.
        assert!(tex.contains("\n & .200 & "));
    }

    #[test]
    fn markdown_and_html() {
        let md = sample().to_markdown(&opts());
        assert!(md.contains("| Name | p | 95% CI |"));
        assert!(md.contains("|:---|---:|---:|"));
        assert!(md.contains("< .001"));
        let html = sample().to_html(&opts());
        assert!(html.contains("<caption>A &amp; B: 50% of $x_1$</caption>"));
        assert!(html.contains("&lt; .001"));
        assert!(html.contains("a, &quot;quoted&quot;"));
        assert!(html.contains("<em>Note.</em> x &lt; y"));
    }
}
