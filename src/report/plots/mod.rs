//! Figures with plotters, each written as SVG (also inlined in report.html) and PNG.
//!
//! Hermetic: the DejaVu Sans font in `assets/fonts/` is compiled in and registered with
//! plotters' ab_glyph backend as `sans-serif`, so no system font is looked up. Colours are the
//! Okabe-Ito palette (Okabe & Ito 2008, colour-blind safe); arms also differ by marker shape so
//! figures survive greyscale printing. Sizes are in pixels for a 1000 px wide single-column
//! figure (85 mm at ~300 dpi) with text of 24-34 px (about 6-8 pt at that width); two-column
//! figures are 2000 px wide.
//!
//! Each figure is a [`PlotSpec`]: the data it shows (borrowed from the results) and a `draw`
//! generic over the backend, so the SVG and the PNG come from the same code.
mod admission_periods;
mod admissions;
mod diagnostics;
mod diagrams;
mod forest;
mod sensitivity;
mod sites;
mod trajectories;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, RGBColor};

use crate::report::format::Labels;
use crate::results::{MediationResult, OutcomeResult, Results, SiteResult};

static FONT_REGULAR: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static FONT_BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");
static REGISTER: Once = Once::new();

/// The font family name every figure uses (registered from the embedded TTF).
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded DejaVu Sans (regular and bold) with plotters, once per process.
pub fn register_fonts() {
    REGISTER.call_once(|| {
        // Both files are valid TrueType fonts shipped with the crate; a failure would only
        // mean missing text, never a panic.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_REGULAR);
        let _ = plotters::style::register_font(FAMILY, FontStyle::Bold, FONT_BOLD);
    });
}

/// The Okabe-Ito palette: black, orange, sky blue, bluish green, yellow, blue, vermillion,
/// reddish purple.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0, 0, 0),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(240, 228, 66),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
];

/// Axis tick text: at most three decimals, trailing zeros dropped, never `-0`.
pub fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s == "-0" || s.is_empty() {
        "0".into()
    } else {
        s
    }
}

/// Colour of the i-th arm (control first): blue, vermillion, bluish green, reddish purple,
/// orange.
pub fn arm_color(i: usize) -> RGBColor {
    const ARMS: [usize; 5] = [5, 6, 3, 7, 1];
    OKABE_ITO[ARMS[i % ARMS.len()]]
}

/// Colour of the i-th series that is not an arm (waves, groups): black, orange, sky blue,
/// bluish green, reddish purple.
pub fn series_color(i: usize) -> RGBColor {
    const S: [usize; 5] = [0, 1, 2, 3, 7];
    OKABE_ITO[S[i % S.len()]]
}

/// Light grey for reference lines and grids.
pub const GREY: RGBColor = RGBColor(150, 150, 150);
/// Very light grey for bands.
pub const LIGHT: RGBColor = RGBColor(235, 235, 235);

/// Text of `size` px in the embedded font.
pub fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Bold text of `size` px.
pub fn bold(size: f64) -> TextStyle<'static> {
    (FAMILY, size, FontStyle::Bold).into_font().color(&BLACK)
}

/// Text anchored at its centre.
pub fn centered(style: TextStyle<'static>) -> TextStyle<'static> {
    style.pos(Pos::new(HPos::Center, VPos::Center))
}

/// Tick labels.
pub const TICK: f64 = 26.0;
/// Axis titles.
pub const AXIS: f64 = 29.0;
/// Figure title.
pub const TITLE: f64 = 33.0;

/// A drawing failure (backend or layout), with the figure it concerns.
#[derive(Debug, thiserror::Error)]
#[error("figure {figure}: {message}")]
pub struct PlotError {
    /// Figure id.
    pub figure: String,
    /// What went wrong.
    pub message: String,
}

/// Converts a plotters error into a message; the figure id is added by [`render`].
pub(crate) fn de<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// What a figure shows; borrows from [`Results`].
pub enum PlotSpec<'a> {
    /// Marginal means per arm over the waves with CIs.
    Trajectories(&'a OutcomeResult, &'a Results),
    /// Individual observed trajectories per arm.
    Individual(&'a OutcomeResult, &'a Results),
    /// Cohen's d with CI across outcomes and analysis sets.
    Forest(&'a Results),
    /// CONSORT flow diagram.
    Consort(&'a Results),
    /// Mediation path diagram.
    Mediation(&'a MediationResult),
    /// Admissions and bed days per person-year by arm.
    Admissions(&'a Results),
    /// Observed and model-based admission rates and risks per period and arm.
    AdmissionPeriods(&'a crate::results::PerPeriodAdmissions, &'a [String]),
    /// QQ plots and residuals vs fitted of one model.
    Diagnostics(&'a OutcomeResult),
    /// Caterpillar plot of site effects.
    Caterpillar(&'a SiteResult),
    /// Forest plot of per-site contrasts with the pooled estimate.
    SiteForest(&'a SiteResult),
    /// Funnel plot of per-site contrasts.
    Funnel(&'a SiteResult),
    /// Funnel plot of case-mix-adjusted site means of change (routine monitoring).
    RoutineFunnel(&'a crate::results::RoutineResult),
    /// Tipping point: contrast with CI against delta per strategy.
    TippingPoint(&'a crate::results::SensitivityMissing),
}

impl PlotSpec<'_> {
    /// Size in pixels (width, height).
    pub fn size(&self) -> (u32, u32) {
        match self {
            PlotSpec::Trajectories(..) => (1000, 760),
            PlotSpec::Individual(_, r) => ((700 * r.study.arms.len().max(1) as u32).min(2000), 760),
            PlotSpec::Forest(r) => (1500, forest::height(r)),
            PlotSpec::Consort(r) => diagrams::consort_size(r),
            PlotSpec::Mediation(_) => (1500, 1020),
            PlotSpec::Admissions(_) => (1600, 720),
            PlotSpec::AdmissionPeriods(..) => (1600, 760),
            PlotSpec::Diagnostics(_) => (2000, 700),
            PlotSpec::Caterpillar(s) => (
                1000,
                sites::rows_height(s.per_site.len().max(s.shrunken.len())),
            ),
            PlotSpec::SiteForest(s) => (1000, sites::rows_height(s.per_site.len() + 2)),
            PlotSpec::Funnel(_) => (1000, 800),
            PlotSpec::RoutineFunnel(_) => (1000, 800),
            PlotSpec::TippingPoint(_) => (1200, 860),
        }
    }

    /// Draws the figure on any plotters backend.
    pub fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        labels: &Labels,
    ) -> Result<(), String> {
        root.fill(&WHITE).map_err(de)?;
        match self {
            PlotSpec::Trajectories(o, r) => trajectories::draw_means(root, o, r, labels),
            PlotSpec::Individual(o, r) => trajectories::draw_individual(root, o, r, labels),
            PlotSpec::Forest(r) => forest::draw(root, r, labels),
            PlotSpec::Consort(r) => diagrams::draw_consort(root, r),
            PlotSpec::Mediation(m) => diagrams::draw_mediation(root, m, labels),
            PlotSpec::Admissions(r) => admissions::draw(root, r),
            PlotSpec::AdmissionPeriods(pp, arms) => admission_periods::draw(root, pp, arms),
            PlotSpec::Diagnostics(o) => diagnostics::draw(root, o, labels),
            PlotSpec::Caterpillar(s) => sites::draw_caterpillar(root, s, labels),
            PlotSpec::SiteForest(s) => sites::draw_forest(root, s, labels),
            PlotSpec::Funnel(s) => sites::draw_funnel(root, s, labels),
            PlotSpec::RoutineFunnel(r) => sites::draw_routine_funnel(root, r, labels),
            PlotSpec::TippingPoint(s) => sensitivity::draw(root, s, labels),
        }
    }
}

/// A figure to render: file stem, title, caption, the report section it belongs to, and data.
pub struct FigureJob<'a> {
    /// File stem (`trajectories_imrs_client`).
    pub id: String,
    /// Report section id (`outcomes`).
    pub section: &'static str,
    /// Caption for the report.
    pub caption: String,
    /// What to draw.
    pub spec: PlotSpec<'a>,
    /// Outcome names and units from the instruments' schema metadata.
    pub labels: Labels,
}

/// A rendered figure: the SVG text (for inlining) and where its files are.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File stem.
    pub id: String,
    /// Report section id.
    pub section: &'static str,
    /// Caption.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn mediation_title(a: &str) -> String {
    crate::report::format::mediation_label(a)
}

/// Every figure the results support, in report order. Sections without results give none.
pub fn jobs(results: &Results) -> Vec<FigureJob<'_>> {
    let mut jobs = JobList {
        labels: Labels::of(results),
        jobs: Vec::new(),
    };
    flow_jobs(&mut jobs, results);
    outcome_jobs(&mut jobs, results);
    sensitivity_missing_jobs(&mut jobs, results);
    admissions_jobs(&mut jobs, results);
    mediation_jobs(&mut jobs, results);
    site_jobs(&mut jobs, results);
    diagnostics_jobs(&mut jobs, results);
    jobs.jobs
}

/// The figures collected so far, with the labels every figure carries.
struct JobList<'a> {
    labels: Labels,
    jobs: Vec<FigureJob<'a>>,
}

impl<'a> JobList<'a> {
    /// Appends one figure (with a copy of the labels).
    fn push(&mut self, id: String, section: &'static str, caption: String, spec: PlotSpec<'a>) {
        self.jobs.push(FigureJob {
            labels: self.labels.clone(),
            id,
            section,
            caption,
            spec,
        });
    }
}

/// The CONSORT flow diagram, when the results have a flow.
fn flow_jobs<'a>(jobs: &mut JobList<'a>, results: &'a Results) {
    if results.consort.is_some() {
        jobs.push(
            "consort_flow".into(),
            "flow",
            "CONSORT flow diagram: participants randomized, followed up and analysed \
             per arm."
                .into(),
            PlotSpec::Consort(results),
        );
    }
}

/// The outcome section: estimated means per main model, then observed individual
/// trajectories per main model, then the forest plot of standardized effects.
fn outcome_jobs<'a>(jobs: &mut JobList<'a>, results: &'a Results) {
    for o in results.main_models() {
        if o.emmeans.is_empty() {
            continue;
        }
        let label = jobs.labels.outcome(&o.outcome);
        jobs.push(
            format!("trajectories_{}", file_safe(&o.outcome)),
            "outcomes",
            format!(
                "{label}: estimated marginal means per arm and wave with 95% confidence \
                 intervals ({} analysis set, model {}).",
                crate::report::format::analysis_set_label(&o.analysis_set),
                o.model
            ),
            PlotSpec::Trajectories(o, results),
        );
    }
    for o in results.main_models() {
        if o.trajectories.as_ref().is_some_and(|t| !t.is_empty()) {
            let label = jobs.labels.outcome(&o.outcome);
            jobs.push(
                format!("individual_{}", file_safe(&o.outcome)),
                "outcomes",
                format!(
                    "{label}: observed individual trajectories (thin lines) per arm, with the \
                     estimated marginal means (thick line)."
                ),
                PlotSpec::Individual(o, results),
            );
        }
    }
    if results.outcomes.iter().any(|o| {
        o.contrasts
            .iter()
            .any(|c| c.cohens_d.is_some_and(f64::is_finite))
    }) {
        jobs.push(
            "forest_effect_sizes".into(),
            "outcomes",
            "Standardized effects (Cohen's d, intervention minus control over the \
             pooled baseline SD) with 95% confidence intervals, per outcome, analysis \
             set, model and follow-up wave."
                .into(),
            PlotSpec::Forest(results),
        );
    }
}

/// The tipping-point plot of each missing-data sensitivity analysis with a delta grid.
fn sensitivity_missing_jobs<'a>(jobs: &mut JobList<'a>, results: &'a Results) {
    for s in &results.sensitivity_missing {
        let Some(t) = s.tipping_point.first() else {
            continue;
        };
        let label = jobs.labels.outcome(&s.outcome);
        jobs.push(
            format!("tipping_point_{}", file_safe(&s.outcome)),
            "sensitivity_missing",
            format!(
                "{label} at {}: {} minus {} with {:.0}% jackknife confidence band against delta, \
                 the shift added to the conditional-mean imputed values after dropout in {} \
                 (delta = 0: no shift); dashed vertical lines: tipping points, where the \
                 difference loses significance.",
                t.wave,
                s.active_arm,
                s.reference_arm,
                100.0 * s.conf_level,
                crate::report::sensitivity::shift_text(t)
            ),
            PlotSpec::TippingPoint(s),
        );
    }
}

/// The admissions figure, when admissions were summarized by arm.
fn admissions_jobs<'a>(jobs: &mut JobList<'a>, results: &'a Results) {
    if let Some(a) = &results.admissions {
        if !a.by_arm.is_empty() {
            jobs.push(
                "admissions".into(),
                "admissions",
                "Psychiatric admissions and bed days per person-year by arm, before \
                 randomization and during follow-up."
                    .into(),
                PlotSpec::Admissions(results),
            );
        }
        if let Some(pp) = &a.per_period {
            jobs.push(
                "admissions_per_period".into(),
                "admissions",
                "Psychiatric admissions per period between waves: observed (open circles) and \
                 model-based marginal rates per person-year at risk (negative binomial GLMM) and \
                 risks of any admission (logistic GLMM) per arm, with 95% confidence intervals."
                    .into(),
                PlotSpec::AdmissionPeriods(pp, &results.study.arms),
            );
        }
    }
}

/// One path diagram per mediation analysis with paths.
fn mediation_jobs<'a>(jobs: &mut JobList<'a>, results: &'a Results) {
    for m in &results.mediation {
        if m.paths.is_empty() {
            continue;
        }
        jobs.push(
            format!("mediation_{}", file_safe(&m.analysis)),
            "mediation",
            format!(
                "Mediation path diagram, {}: unstandardized estimates with 95% confidence \
                 intervals (or standard errors) on the arrows; dashed: direct effect c\u{2032}.",
                mediation_title(&m.analysis).to_lowercase()
            ),
            PlotSpec::Mediation(m),
        );
    }
}

/// The sites section: per site analysis a caterpillar, forest and funnel plot (each when
/// its data are there), then the routine-data funnel.
fn site_jobs<'a>(jobs: &mut JobList<'a>, results: &'a Results) {
    for s in &results.sites {
        site_analysis_jobs(jobs, s);
    }
    if let Some(r) = &results.sites_routine {
        jobs.push(
            format!("sites_routine_funnel_{}", file_safe(&r.outcome)),
            "sites",
            format!(
                "{}: case-mix-adjusted mean change {} to {} per site against its number of \
                 participants, with the overall mean and 95% and 99.8% funnel limits.",
                jobs.labels.outcome(&r.outcome),
                r.baseline_wave,
                r.wave
            ),
            PlotSpec::RoutineFunnel(r),
        );
    }
}

/// The caterpillar, forest and funnel plots of one site analysis (outcome at a wave).
fn site_analysis_jobs<'a>(jobs: &mut JobList<'a>, s: &'a SiteResult) {
    let stem = format!("{}_{}", file_safe(&s.outcome), file_safe(&s.wave));
    let label = jobs.labels.outcome(&s.outcome);
    if !s.shrunken.is_empty() || !s.per_site.is_empty() {
        jobs.push(
            format!("sites_caterpillar_{stem}"),
            "sites",
            if s.shrunken.is_empty() {
                format!(
                    "{label} at {}: site-specific intervention effects with 95% CIs, ordered.",
                    s.wave
                )
            } else {
                format!(
                    "{label} at {}: shrunken site-by-arm effects (conditional modes, deviation \
                     from the average effect) \u{00b1} 1.96 conditional SD, ordered.",
                    s.wave
                )
            },
            PlotSpec::Caterpillar(s),
        );
    }
    if !s.per_site.is_empty() {
        jobs.push(
            format!("sites_forest_{stem}"),
            "sites",
            format!(
                "{label} at {}: intervention minus control per site with 95% CIs; diamond: \
                 random-effects pooled estimate; bar: 95% prediction interval.",
                s.wave
            ),
            PlotSpec::SiteForest(s),
        );
    }
    if s.meta_analysis.is_some() && s.per_site.len() >= 2 {
        jobs.push(
            format!("sites_funnel_{stem}"),
            "sites",
            format!(
                "{label} at {}: funnel plot of site contrasts against their standard error, \
                 with the pooled estimate and pseudo 95% limits.",
                s.wave
            ),
            PlotSpec::Funnel(s),
        );
    }
}

/// One residual-diagnostics figure per model with residuals (sensitivity models included).
fn diagnostics_jobs<'a>(jobs: &mut JobList<'a>, results: &'a Results) {
    for o in &results.outcomes {
        let Some(d) = &o.diagnostics else { continue };
        if d.residuals.is_empty() {
            continue;
        }
        let mut id = format!(
            "diagnostics_{}_{}",
            file_safe(&o.outcome),
            file_safe(&o.analysis_set)
        );
        if let Some(s) = &o.sensitivity {
            id.push('_');
            id.push_str(&file_safe(s));
        }
        jobs.push(
            id,
            "diagnostics",
            format!(
                "{}, {} ({}): normal QQ plots of the conditional residuals and of the \
                 random intercepts, and residuals against fitted values.",
                jobs.labels.outcome(&o.outcome),
                crate::report::format::analysis_set_label(&o.analysis_set),
                crate::report::format::sensitivity_label(o.sensitivity.as_deref())
            ),
            PlotSpec::Diagnostics(o),
        );
    }
}

/// Renders one figure to `dir/<id>.svg` and, when `png` is set, `dir/<id>.png`; returns the
/// SVG text for inlining.
pub fn render(job: &FigureJob<'_>, dir: &Path, png: bool) -> Result<Figure, PlotError> {
    register_fonts();
    let fail = |message: String| PlotError {
        figure: job.id.clone(),
        message,
    };
    let size = job.spec.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        job.spec.draw(&root, &job.labels).map_err(fail)?;
        root.present().map_err(|e| fail(de(e)))?;
    }
    std::fs::write(dir.join(format!("{}.svg", job.id)), &svg)
        .map_err(|e| fail(format!("writing SVG: {e}")))?;
    if png {
        let path = dir.join(format!("{}.png", job.id));
        write_png(&path, size, |root| job.spec.draw(root, &job.labels)).map_err(fail)?;
    }
    Ok(Figure {
        id: job.id.clone(),
        section: job.section,
        caption: job.caption.clone(),
        svg,
    })
}

/// Draws a figure into an RGB bitmap of `size` pixels and writes it to `path` as an 8-bit RGB
/// PNG. Encoded by the png crate with its fast compression (fdeflate) and the Sub filter,
/// instead of plotters' `bitmap_encoder` (the image crate, default deflate and adaptive
/// filters: about 7% of the default run's CPU time for the report's PNGs). Same pixels;
/// the files are somewhat larger.
pub(crate) fn write_png(
    path: &Path,
    size: (u32, u32),
    draw: impl for<'b> FnOnce(&DrawingArea<BitMapBackend<'b>, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(de)?;
    }
    let file = std::fs::File::create(path).map_err(|e| format!("writing PNG: {e}"))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), size.0, size.1);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(png::FilterType::Sub);
    let mut writer = enc
        .write_header()
        .map_err(|e| format!("writing PNG: {e}"))?;
    writer
        .write_image_data(&pixels)
        .and_then(|()| writer.finish())
        .map_err(|e| format!("writing PNG: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Shared drawing helpers

/// Range covering all finite values with `pad` (fraction of the span) on both sides; a
/// unit range around the value when there is only one, (0, 1) when there is none.
pub(crate) fn padded_range(values: impl IntoIterator<Item = f64>, pad: f64) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= 0.0 {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    (lo - pad * span, hi + pad * span)
}

/// A chart for grouped categories (x from `x.start` to `x.end`, no x ticks or grid) from 0 to
/// `ymax`, with the house axis style and the y-axis title `ylab`.
pub(crate) fn category_chart<'a, DB: DrawingBackend + 'a>(
    panel: &'a DrawingArea<DB, Shift>,
    x: std::ops::Range<f64>,
    ymax: f64,
    ylab: &str,
    x_label_area: u32,
) -> Result<
    ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    String,
> {
    let mut chart = ChartBuilder::on(panel)
        .margin_right(30)
        .x_label_area_size(x_label_area)
        .y_label_area_size(120)
        .build_cartesian_2d(x, 0.0..ymax)
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .y_desc(ylab)
        .label_style(font(TICK))
        .axis_desc_style(font(AXIS))
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(de)?;
    Ok(chart)
}

/// A confidence interval at `x` from `lo` to `hi` as a vertical line with caps, in pixels on
/// `area` (so the caps keep their width whatever the scale).
pub(crate) fn error_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    x: f64,
    (lo, hi): (f64, f64),
    color: RGBColor,
) -> Result<(), String> {
    let (ox, oy) = area.get_base_pixel();
    let (bx, l) = chart.backend_coord(&(x, lo));
    let (_, h) = chart.backend_coord(&(x, hi));
    let (bx, l, h) = (bx - ox, l - oy, h - oy);
    let st = color.stroke_width(3);
    area.draw(&PathElement::new(vec![(bx, l), (bx, h)], st))
        .map_err(de)?;
    area.draw(&PathElement::new(vec![(bx - 9, l), (bx + 9, l)], st))
        .map_err(de)?;
    area.draw(&PathElement::new(vec![(bx - 9, h), (bx + 9, h)], st))
        .map_err(de)?;
    Ok(())
}

/// Draws a marker of the i-th arm (circle, triangle, square, diamond, cross) at pixel `p`.
pub(crate) fn draw_marker<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    i: usize,
    p: (i32, i32),
    r: i32,
    color: RGBColor,
) -> Result<(), String> {
    let style = color.filled();
    let (x, y) = p;
    match i % 4 {
        0 => root.draw(&Circle::new(p, r, style)).map_err(de),
        1 => root
            .draw(&Polygon::new(
                vec![(x, y - r - 2), (x - r - 2, y + r), (x + r + 2, y + r)],
                style,
            ))
            .map_err(de),
        2 => root
            .draw(&Rectangle::new([(x - r, y - r), (x + r, y + r)], style))
            .map_err(de),
        _ => root
            .draw(&Polygon::new(
                vec![
                    (x, y - r - 2),
                    (x + r + 2, y),
                    (x, y + r + 2),
                    (x - r - 2, y),
                ],
                style,
            ))
            .map_err(de),
    }
}

/// A horizontal legend centred at `y`: marker, line and label per item.
pub(crate) fn legend_row<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    items: &[(String, RGBColor, usize)],
    y: i32,
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    let style = font(TICK);
    let widths: Vec<i32> = items
        .iter()
        .map(|(s, _, _)| {
            root.estimate_text_size(s, &style)
                .map(|(w, _)| w as i32)
                .unwrap_or(10 * s.len() as i32)
        })
        .collect();
    let total: i32 = widths.iter().map(|w| w + 70 + 40).sum::<i32>() - 40;
    let mut x = (w as i32 - total) / 2;
    for ((label, color, marker), tw) in items.iter().zip(widths) {
        root.draw(&PathElement::new(
            vec![(x, y), (x + 56, y)],
            color.stroke_width(4),
        ))
        .map_err(de)?;
        draw_marker(root, *marker, (x + 28, y), 8, *color)?;
        root.draw(&Text::new(
            label.clone(),
            (x + 68, y),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(de)?;
        x += tw + 70 + 40;
    }
    Ok(())
}

/// An arrow from `a` to `b` (pixels) with a filled head.
pub(crate) fn arrow<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    style: ShapeStyle,
    dashed: bool,
) -> Result<(), String> {
    let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
    let len = (dx * dx + dy * dy).sqrt();
    if len < 1.0 {
        return Ok(());
    }
    let (ux, uy) = (dx / len, dy / len);
    let head = 22.0;
    let base = (b.0 as f64 - ux * head, b.1 as f64 - uy * head);
    if dashed {
        let mut t = 0.0;
        while t < len - head {
            let t1 = (t + 18.0).min(len - head);
            root.draw(&PathElement::new(
                vec![
                    (a.0 + (ux * t) as i32, a.1 + (uy * t) as i32),
                    (a.0 + (ux * t1) as i32, a.1 + (uy * t1) as i32),
                ],
                style,
            ))
            .map_err(de)?;
            t += 30.0;
        }
    } else {
        root.draw(&PathElement::new(
            vec![a, (base.0 as i32, base.1 as i32)],
            style,
        ))
        .map_err(de)?;
    }
    let (px, py) = (-uy * head * 0.45, ux * head * 0.45);
    root.draw(&Polygon::new(
        vec![
            b,
            ((base.0 + px) as i32, (base.1 + py) as i32),
            ((base.0 - px) as i32, (base.1 - py) as i32),
        ],
        style.color.filled(),
    ))
    .map_err(de)
}

/// Text with a white box behind it, centred at `p`.
pub(crate) fn label_box<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    lines: &[String],
    p: (i32, i32),
    style: &TextStyle<'static>,
) -> Result<(), String> {
    let line_h = (style.font.get_size() * 1.25) as i32;
    let w = lines
        .iter()
        .map(|l| {
            root.estimate_text_size(l, style)
                .map(|(w, _)| w as i32)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let h = line_h * lines.len() as i32;
    root.draw(&Rectangle::new(
        [
            (p.0 - w / 2 - 8, p.1 - h / 2 - 4),
            (p.0 + w / 2 + 8, p.1 + h / 2 + 4),
        ],
        WHITE.mix(0.9).filled(),
    ))
    .map_err(de)?;
    for (k, l) in lines.iter().enumerate() {
        let y = p.1 - h / 2 + line_h * k as i32 + line_h / 2;
        root.draw(&Text::new(l.clone(), (p.0, y), centered(style.clone())))
            .map_err(de)?;
    }
    Ok(())
}
