//! The bench's report: every figure beside the limit measured in the same
//! run and their ratio, and the goal it is held to, written to
//! `target/bench/report.md` and `report.json`, with a plot of latency
//! against offered load (`load.svg`).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::cpu::CpuUse;

/// What a figure is held to.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// The figure over its limit, at least this.
    RatioAtLeast(f64),
    /// The figure itself, below this.
    Below(f64),
}

impl Goal {
    fn met(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Goal::RatioAtLeast(floor) => ratio.map(|ratio| ratio >= floor),
            Goal::Below(ceiling) => Some(value < ceiling),
        }
    }

    fn text(self, unit: &str) -> String {
        match self {
            Goal::RatioAtLeast(floor) => format!("ratio ≥ {floor}"),
            Goal::Below(ceiling) => format!("< {ceiling} {unit}"),
        }
    }
}

struct Row {
    figure: String,
    value: f64,
    unit: &'static str,
    limit: Option<(String, f64)>,
    goal: Option<Goal>,
}

/// One step of the load curve: creates offered per second, taken per
/// second, and the request latency.
pub struct LoadStep {
    pub offered: f64,
    pub achieved: f64,
    /// Creates answered 503 (load shed) while the step was counted.
    pub shed: usize,
    pub p50: f64,
    pub p99: f64,
}

/// Where the CPU went during one figure.
struct CpuRow {
    figure: String,
    operations: usize,
    cpu: CpuUse,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    load: Vec<LoadStep>,
    cpu: Vec<CpuRow>,
}

impl Report {
    /// A figure, the limit it is compared with (what, value in the same
    /// unit) and its goal.
    pub fn add(
        &mut self,
        figure: impl Into<String>,
        value: f64,
        unit: &'static str,
        limit: Option<(&str, f64)>,
        goal: Option<Goal>,
    ) {
        self.rows.push(Row {
            figure: figure.into(),
            value,
            unit,
            limit: limit.map(|(what, value)| (what.to_owned(), value)),
            goal,
        });
    }

    pub fn add_load_step(&mut self, step: LoadStep) {
        self.load.push(step);
    }

    /// The CPU a figure of `operations` cost, by process.
    pub fn add_cpu(&mut self, figure: impl Into<String>, operations: usize, cpu: CpuUse) {
        self.cpu.push(CpuRow {
            figure: figure.into(),
            operations,
            cpu,
        });
    }

    /// Writes `report.md`, `report.json` and `load.svg` into `folder`.
    pub fn write(&self, folder: &Path, layout: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(folder)?;
        std::fs::write(folder.join("report.md"), self.markdown(layout))?;
        let json = serde_json::to_string_pretty(&self.json(layout)).expect("a report serializes");
        std::fs::write(folder.join("report.json"), json)?;
        std::fs::write(folder.join("load.svg"), self.svg())?;
        Ok(())
    }

    fn ratio(row: &Row) -> Option<f64> {
        row.limit
            .as_ref()
            .filter(|(_, limit)| *limit > 0.0)
            .map(|(_, limit)| row.value / limit)
    }

    pub fn markdown(&self, layout: &str) -> String {
        let mut text = format!("# TaskFlow bench\n\n{layout}\n\n");
        text.push_str("| figure | value | limit measured beside it | ratio | goal | met |\n");
        text.push_str("|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let ratio = Self::ratio(row);
            let limit = row.limit.as_ref().map_or("–".to_owned(), |(what, value)| {
                format!("{what}: {}", number(*value, row.unit))
            });
            let met = row.goal.and_then(|goal| goal.met(row.value, ratio));
            let _ = writeln!(
                text,
                "| {} | {} | {limit} | {} | {} | {} |",
                row.figure,
                number(row.value, row.unit),
                ratio.map_or("–".to_owned(), |ratio| format!("{ratio:.2}")),
                row.goal.map_or("–".to_owned(), |goal| goal.text(row.unit)),
                match met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "–",
                }
            );
        }
        if !self.load.is_empty() {
            text.push_str("\nHTTP creates against offered load (open loop; `load.svg`):\n\n");
            text.push_str(
                "| offered/s | taken/s | answered 503 | p50 ms (taken) | p99 ms (taken) |\n",
            );
            text.push_str("|---|---|---|---|---|\n");
            for step in &self.load {
                let _ = writeln!(
                    text,
                    "| {:.0} | {:.0} | {} | {:.2} | {:.2} |",
                    step.offered, step.achieved, step.shed, step.p50, step.p99
                );
            }
        }
        if !self.cpu.is_empty() {
            text.push_str(
                "\nWhere the CPU goes (from `/proc`, every process of the machine counted):\n\n",
            );
            text.push_str("| figure | CPU per operation, by process (ms) | cores busy of 2 |\n");
            text.push_str("|---|---|---|\n");
            for row in &self.cpu {
                let _ = writeln!(
                    text,
                    "| {} | {} | {:.2} |",
                    row.figure,
                    row.cpu.by_part(row.operations),
                    row.cpu.cores_busy
                );
            }
        }
        text
    }

    fn json(&self, layout: &str) -> serde_json::Value {
        let figures: Vec<_> = self
            .rows
            .iter()
            .map(|row| {
                let ratio = Self::ratio(row);
                json!({
                    "figure": row.figure,
                    "value": row.value,
                    "unit": row.unit,
                    "limit": row.limit.as_ref().map(|(what, value)| json!({"what": what, "value": value})),
                    "ratio": ratio,
                    "goal": row.goal.map(|goal| goal.text(row.unit)),
                    "met": row.goal.and_then(|goal| goal.met(row.value, ratio)),
                })
            })
            .collect();
        let load: Vec<_> = self
            .load
            .iter()
            .map(|step| {
                json!({"offered_per_s": step.offered, "taken_per_s": step.achieved, "answered_503": step.shed,
                       "p50_ms": step.p50, "p99_ms": step.p99})
            })
            .collect();
        let cpu: Vec<_> = self
            .cpu
            .iter()
            .map(|row| {
                let parts: serde_json::Map<String, serde_json::Value> = row
                    .cpu
                    .parts
                    .iter()
                    .map(|(part, seconds)| (part.clone(), json!(seconds)))
                    .collect();
                json!({"figure": row.figure, "operations": row.operations,
                       "cpu_seconds": parts, "cores_busy": row.cpu.cores_busy})
            })
            .collect();
        json!({"layout": layout, "figures": figures, "load": load, "cpu": cpu})
    }

    /// p50 and p99 of the request latency against offered load, as lines.
    fn svg(&self) -> String {
        let (width, height, margin) = (640.0, 400.0, 56.0);
        let max_x = self.load.iter().map(|s| s.offered).fold(1.0, f64::max);
        let max_y = self.load.iter().map(|s| s.p99).fold(1.0, f64::max) * 1.1;
        let x = |v: f64| margin + v / max_x * (width - 2.0 * margin);
        let y = |v: f64| height - margin - v / max_y * (height - 2.0 * margin);
        let line = |pick: fn(&LoadStep) -> f64| {
            self.load
                .iter()
                .map(|step| format!("{:.1},{:.1}", x(step.offered), y(pick(step))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>
<line x1="{m}" y1="{t}" x2="{m}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{h1}" text-anchor="middle">creates offered per second (HTTP, open loop)</text>
<text x="14" y="{cy}" transform="rotate(-90 14 {cy})" text-anchor="middle">request latency, ms</text>
<text x="{r}" y="{b2}" text-anchor="end">{max_x:.0}</text>
<text x="{m2}" y="{t2}" text-anchor="end">{max_y:.0}</text>
<polyline fill="none" stroke="#d62728" stroke-width="2" points="{p99}"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{p50}"/>
<text x="{lx}" y="{t2}" fill="#d62728">p99</text>
<text x="{lx}" y="{t3}" fill="#1f77b4">p50</text>
"##,
            m = margin,
            r = width - margin,
            b = height - margin,
            t = margin,
            b2 = height - margin + 16.0,
            t2 = margin + 4.0,
            t3 = margin + 20.0,
            m2 = margin - 4.0,
            lx = width - margin - 40.0,
            cx = width / 2.0,
            cy = height / 2.0,
            h1 = height - 16.0,
            p99 = line(|step| step.p99),
            p50 = line(|step| step.p50),
        );
        for step in &self.load {
            let _ = writeln!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#d62728"/>"##,
                x(step.offered),
                y(step.p99)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// A value in its unit, with the precision the unit deserves.
fn number(value: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{value:.2} ms"),
        "s" => format!("{value:.2} s"),
        _ => format!("{value:.0} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_is_met_by_its_ratio_or_its_value() {
        let mut report = Report::default();
        report.add(
            "creates",
            900.0,
            "/s",
            Some(("raw", 1000.0)),
            Some(Goal::RatioAtLeast(0.8)),
        );
        report.add(
            "p99",
            12.0,
            "ms",
            Some(("raw p99", 3.0)),
            Some(Goal::Below(10.0)),
        );
        let text = report.markdown("layout");
        assert!(
            text.contains("| creates | 900 /s | raw: 1000 /s | 0.90 | ratio ≥ 0.8 | yes |"),
            "{text}"
        );
        assert!(
            text.contains("| p99 | 12.00 ms | raw p99: 3.00 ms | 4.00 | < 10 ms | no |"),
            "{text}"
        );
    }
}
