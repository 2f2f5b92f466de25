//! Tables printed as Markdown, so a run pastes into `BENCHMARKS.md` as it is.

/// A table with a header row.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// A row of `cells` ending with the rate of `n` changes in `took` and `took` in seconds,
    /// the last two columns of a throughput table.
    pub(crate) fn timed(&mut self, mut cells: Vec<String>, n: usize, took: std::time::Duration) {
        cells.extend([count(crate::setup::rate(n, took)), secs(took)]);
        self.row(cells);
    }

    pub(crate) fn print(&self) {
        println!("| {} |", self.header.join(" | "));
        let align: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        println!("|{}|", align.join("|"));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
        println!();
    }
}

/// `n` with thousands separated by commas.
pub(crate) fn count(n: f64) -> String {
    let whole = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds with three decimals.
pub(crate) fn secs(d: std::time::Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Milliseconds with one decimal.
pub(crate) fn ms(d: std::time::Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// `ours` against `baseline` as a ratio: `0.42×`.
pub(crate) fn ratio(ours: f64, baseline: f64) -> String {
    if baseline <= 0.0 {
        return "–".to_owned();
    }
    format!("{:.2}×", ours / baseline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        for (n, shown) in [(1_234_567.4, "1,234,567"), (999.0, "999"), (1000.0, "1,000")] {
            assert_eq!(count(n), shown);
        }
        for (ours, baseline, shown) in [(1.0, 4.0, "0.25×"), (1.0, 0.0, "–")] {
            assert_eq!(ratio(ours, baseline), shown);
        }
    }
}
