//! Pictures as SVG files (plotters' SVG backend: no system library, no font files).
//!
//! [`latency_by_percentile`] draws latency distributions as HdrHistogram's plotter does:
//! latency against percentile on a 1/(1−p) axis, so the tail (99 %, 99.9 %, 99.99 % …)
//! gets as much room as the median. [`waterfall`] draws the phases of an HTTP exchange
//! as a browser's network panel does: one row per phase against time since the request
//! began, a bar for one exchange, a box and whiskers for many.

use std::path::Path;

use plotters::prelude::*;
use sockit::bench::hdrhistogram::Histogram;

/// Curve colours: dark enough on white, told apart (matplotlib's tab10).
const COLORS: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
];

/// Widest x of the axis: 1/(1−p) at p = 99.9999 %.
const X_MAX: f64 = 1e6;

/// The points of one curve: (1/(1−p), latency in µs), from the histogram's percentiles
/// (HdrHistogram's percentile iteration, 5 steps per halving of the distance to 100 %).
fn points(h: &Histogram<u64>, x_max: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q >= 1.0 {
            x_max
        } else {
            (1.0 / (1.0 - q)).min(x_max)
        };
        out.push((x, v.value_iterated_to() as f64 / 1000.0));
        if x >= x_max {
            break;
        }
    }
    out
}

/// A percentile label for x = 1/(1−p): `0%`, `90%`, `99%`, `99.9%` …
fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x.max(1.0));
    let digits = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

/// Checks a `--plot FILE` before a run, so a run is never measured for nothing: the name
/// ends in `.svg` (the only format written), and the file can be created (it is, empty;
/// the picture replaces it at the end).
///
/// # Errors
/// Another extension (a usage error, exit 2); a file that cannot be created, in the
/// `--plot FILE: open: [Errno N] …` form.
pub fn check_target(path: &Path) -> anyhow::Result<()> {
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !svg {
        return Err(sockit::Error::invalid_input(
            "--plot",
            format!(
                "{}: the picture is SVG; name the file FILE.svg",
                path.display()
            ),
        )
        .into());
    }
    std::fs::File::create(path)
        .map(drop)
        .map_err(|e| anyhow::Error::new(e).context(format!("--plot {}: open", path.display())))
}

/// Writes an SVG of each named histogram's latency (nanoseconds) against percentile on a
/// 1/(1−p) axis, one curve per histogram, with a legend. Empty histograms are left out;
/// when all are empty the picture says so.
///
/// # Errors
/// When the file cannot be written (the error names it).
pub fn latency_by_percentile(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> anyhow::Result<()> {
    let drawn: Vec<(&String, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| {
            // the axis reaches as far as the largest run's count resolves percentiles
            (name, points(h, (h.len() as f64).clamp(100.0, X_MAX)))
        })
        .collect();
    let x_max = drawn
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(100.0f64, f64::max);
    let x_max = 10f64.powf(x_max.log10().ceil()).min(X_MAX);
    let y_max = drawn
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.05;
    let failed = |e: String| anyhow::anyhow!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)
        .map_err(|e| failed(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&percentile_label)
        .y_label_formatter(&|y: &f64| {
            if y_max > 20.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .draw()
        .map_err(|e| failed(e.to_string()))?;
    if drawn.is_empty() {
        root.draw(&Text::new(
            "no round trip was measured",
            (380, 300),
            ("sans-serif", 18),
        ))
        .map_err(|e| failed(e.to_string()))?;
    }
    for (i, (name, pts)) in drawn.into_iter().enumerate() {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let color = RGBColor(r, g, b);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| failed(e.to_string()))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(e.to_string()))?;
    root.present().map_err(|e| failed(e.to_string()))?;
    Ok(())
}

/// One row of a [`waterfall`], times in milliseconds since the request began.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseRow {
    /// The phase (`connect`, `first byte` …).
    pub label: String,
    /// The filled bar: the phase's own span (one exchange) or p25–p75 (many).
    pub bar: (f64, f64),
    /// Whiskers min–max (many exchanges).
    pub whiskers: Option<(f64, f64)>,
    /// The median mark (many exchanges).
    pub median: Option<f64>,
}

/// Writes an SVG waterfall of `rows`, top to bottom: each phase a bar against
/// milliseconds since the request began (with whiskers and a median mark when given).
///
/// # Errors
/// When the file cannot be written (the error names it).
pub fn waterfall(path: &Path, title: &str, rows: &[PhaseRow]) -> anyhow::Result<()> {
    let failed = |e: String| anyhow::anyhow!("{}: {e}", path.display());
    let x_max = rows
        .iter()
        .map(|r| r.whiskers.map_or(r.bar.1, |w| w.1).max(r.bar.1))
        .fold(0.001f64, f64::max)
        * 1.08;
    let n = rows.len().max(1) as i32;
    let height = (140 + 44 * n).clamp(260, 900) as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
    let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .margin_right(48)
        .x_label_area_size(40)
        .y_label_area_size(180)
        .build_cartesian_2d(0f64..x_max, 0f64..f64::from(n))
        .map_err(|e| failed(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("ms since the request began")
        .x_label_formatter(&|x: &f64| {
            if x_max > 20.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        })
        .draw()
        .map_err(|e| failed(e.to_string()))?;
    // Row i (from the top) spans y in [n-i-1, n-i].
    let top = |i: usize| f64::from(n) - i as f64;
    for (i, row) in rows.iter().enumerate() {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let color = RGBColor(r, g, b);
        let (y0, y1) = (top(i) - 0.75, top(i) - 0.25);
        let mid = top(i) - 0.5;
        if let Some((lo, hi)) = row.whiskers {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(lo, mid), (hi, mid)],
                    BLACK.stroke_width(1),
                )))
                .map_err(|e| failed(e.to_string()))?;
            for x in [lo, hi] {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, mid - 0.15), (x, mid + 0.15)],
                        BLACK.stroke_width(1),
                    )))
                    .map_err(|e| failed(e.to_string()))?;
            }
        }
        let (a, z) = row.bar;
        // a bar of zero width is drawn one pixel wide: the phase happened
        let z = if z - a < x_max / 900.0 {
            a + x_max / 900.0
        } else {
            z
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, y0), (z, y1)],
                color.filled(),
            )))
            .map_err(|e| failed(e.to_string()))?;
        if let Some(m) = row.median {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m, y0 - 0.05), (m, y1 + 0.05)],
                    BLACK.stroke_width(3),
                )))
                .map_err(|e| failed(e.to_string()))?;
        }
    }
    // Phase names beside their rows, left of the plot area.
    let area = chart.plotting_area();
    for (i, label) in labels.iter().enumerate() {
        let (_, py) = area.map_coordinate(&(0.0, top(i) - 0.5));
        root.draw(&Text::new(label.clone(), (12, py - 7), ("sans-serif", 14)))
            .map_err(|e| failed(e.to_string()))?;
    }
    root.present().map_err(|e| failed(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_target_is_checked_before_the_run() {
        // Regression: `bench --plot /nonexistent/x.svg` failed only after the whole run,
        // in plotters' words, and `--plot x.png` wrote SVG into x.png.
        let e = check_target(Path::new("/nonexistent/x.svg")).unwrap_err();
        assert_eq!(
            crate::exit::python_text(&e),
            "--plot /nonexistent/x.svg: open: [Errno 2] No such file or directory"
        );
        let e = check_target(Path::new("x.png")).unwrap_err();
        assert_eq!(crate::exit::code_for(&e), 2);
        assert!(e.to_string().contains("name the file FILE.svg"), "{e}");
        let dir = std::env::temp_dir().join(format!("sockit-plot-{}.svg", std::process::id()));
        check_target(&dir).expect("a writable path");
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn percentiles_are_labelled_as_people_read_them() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&1e5), "99.999%");
    }
}
