//! Bar charts as SVG, written by a run given `--charts DIR` and shown in `BENCHMARKS.md`.
//! Hand-written SVG keeps the build lean: a chart is a few rectangles and labels.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};

/// Where charts go (`--charts DIR`); none are written without it.
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Writes this run's charts into `dir`.
pub(crate) fn write_into(dir: PathBuf) {
    let _ = DIR.set(dir);
}

/// The colours of the series, in order.
const COLOURS: &[&str] = &["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"];

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 90.0;

/// Grouped bars: one group per x label (a line break in a label starts a second line), one
/// bar per series in each, and an optional horizontal reference line (a baseline).
pub(crate) struct BarChart {
    title: String,
    unit: String,
    series: Vec<String>,
    groups: Vec<(String, Vec<f64>)>,
    reference: Option<(String, f64)>,
}

impl BarChart {
    /// An empty chart of `series`, its values in `unit`.
    pub(crate) fn new(title: &str, unit: &str, series: &[&str]) -> Self {
        Self {
            title: title.to_owned(),
            unit: unit.to_owned(),
            series: series.iter().map(|s| (*s).to_owned()).collect(),
            groups: Vec::new(),
            reference: None,
        }
    }

    /// A group of bars, one value per series.
    pub(crate) fn group(&mut self, label: impl Into<String>, values: Vec<f64>) {
        self.groups.push((label.into(), values));
    }

    /// A dashed horizontal line at `value`, labelled.
    pub(crate) fn reference(&mut self, label: impl Into<String>, value: f64) {
        self.reference = Some((label.into(), value));
    }

    /// Writes the chart as `name` into the `--charts` directory, when one was given.
    pub(crate) fn save(&self, name: &str) -> Result<()> {
        let Some(dir) = DIR.get() else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path: &Path = &dir.join(name);
        std::fs::write(path, self.svg()).with_context(|| format!("cannot write {}", path.display()))?;
        println!("Chart: {}\n", path.display());
        Ok(())
    }

    /// The chart as an SVG document.
    pub(crate) fn svg(&self) -> String {
        let highest = self
            .groups
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .chain(self.reference.iter().map(|(_, v)| *v))
            .fold(0.0_f64, f64::max);
        let top = nice_ceiling(highest);
        let plot_h = HEIGHT - TOP - BOTTOM;
        let plot_w = WIDTH - LEFT - RIGHT;
        let y = |v: f64| TOP + plot_h * (1.0 - v / top);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = write!(
            s,
            r#"<text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
            WIDTH / 2.0,
            escape(&self.title)
        );
        for tick in 0..=4 {
            let v = top * f64::from(tick) / 4.0;
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y(v) + 4.0,
                short(v),
                y = y(v)
            );
        }
        let _ = write!(
            s,
            r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.unit)
        );
        let slot = plot_w / self.groups.len().max(1) as f64;
        let bar = (slot * 0.8 / self.series.len().max(1) as f64).min(90.0);
        for (g, (label, values)) in self.groups.iter().enumerate() {
            let x0 = LEFT + slot * (g as f64 + 0.5) - bar * values.len() as f64 / 2.0;
            for (i, v) in values.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                let x = x0 + bar * i as f64;
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {}</title></rect>"#,
                    y(*v),
                    bar * 0.92,
                    (TOP + plot_h - y(*v)).max(0.0),
                    escape(&self.series[i]),
                    short(*v)
                );
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                    x + bar * 0.46,
                    y(*v) - 3.0,
                    short(*v)
                );
            }
            let centre = LEFT + slot * (g as f64 + 0.5);
            for (line, text) in label.lines().enumerate() {
                let _ = write!(
                    s,
                    r#"<text x="{centre:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    TOP + plot_h + 16.0 + 14.0 * line as f64,
                    escape(text)
                );
            }
        }
        if let Some((label, v)) = &self.reference {
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#c53030" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" fill="#c53030" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                WIDTH - RIGHT,
                y(*v) - 5.0,
                escape(&format!("{label}: {}", short(*v))),
                y = y(*v)
            );
        }
        let legend_y = HEIGHT - BOTTOM + 55.0;
        let mut x = LEFT;
        for (i, name) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{legend_y:.1}">{}</text>"#,
                legend_y - 10.0,
                x + 16.0,
                escape(name)
            );
            x += 24.0 + 6.5 * name.chars().count() as f64;
        }
        s.push_str("</svg>\n");
        s
    }
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `v`, so the axis ends on a
/// round figure.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let power = 10_f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * power)
}

/// A figure for a label: thousands as `k`, small ones with a decimal.
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `text` safe inside SVG text and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_ends_on_a_round_figure_at_or_above_the_highest_bar() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(5_307.0), 10_000.0);
        assert_eq!(nice_ceiling(1_000.0), 1_000.0);
        assert_eq!(nice_ceiling(1_001.0), 2_000.0);
    }

    #[test]
    fn a_chart_draws_a_bar_per_value_and_escapes_its_labels() {
        let mut c = BarChart::new("a <b> & c", "changes/s", &["ours", "seed"]);
        c.group("batch 100", vec![1_000.0, 2_000.0]);
        c.group("batch 1000", vec![4_000.0, 2_000.0]);
        c.reference("raw", 5_000.0);
        let svg = c.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 4);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains("stroke-dasharray"));
    }
}
