//! Pictures as SVG files (plotters' SVG backend: no system library, no font files).
//!
//! [`latency_by_percentile`] draws latency distributions as HdrHistogram's plotter does:
//! latency against percentile on a 1/(1−p) axis, so the tail (99 %, 99.9 %, 99.99 % …)
//! gets as much room as the median.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_labelled_as_people_read_them() {
        assert_eq!(percentile_label(&1.0), "0%");
        assert_eq!(percentile_label(&10.0), "90%");
        assert_eq!(percentile_label(&100.0), "99%");
        assert_eq!(percentile_label(&1000.0), "99.9%");
        assert_eq!(percentile_label(&1e5), "99.999%");
    }
}
