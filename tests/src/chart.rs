//! A line chart as a standalone SVG, for BENCHMARKS.md: lines of (x, y) points on
//! logarithmic axes, with decade grid lines, labels and a legend.
//!
//! Hand-written: the charting crates (plotters and its SVG backend) lay out text with
//! font files, which a fresh machine need not have; an SVG's `<text>` needs none.

use std::fmt::Write;

/// One line of the chart.
pub struct Series {
    pub name: String,
    /// An SVG colour.
    pub color: &'static str,
    /// Points with x > 0 and y > 0; others are left out.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 55.0;

/// Escapes text for an SVG element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The decades (powers of ten) that cover `low..=high`.
fn decades(low: f64, high: f64) -> (i32, i32) {
    let low = low.log10().floor() as i32;
    let high = (high.log10().ceil() as i32).max(low + 1);
    (low, high)
}

fn label(value: f64) -> String {
    if value >= 1000.0 {
        format!("{}", value as u64)
    } else if value >= 1.0 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// The chart as SVG text. `None` when no series has a point to draw.
pub fn log_log(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Option<String> {
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|&(x, y)| x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite())
        .collect();
    if points.is_empty() {
        return None;
    }
    let fold = |f: fn(f64, f64) -> f64, start: f64, pick: fn(&(f64, f64)) -> f64| {
        points.iter().map(pick).fold(start, f)
    };
    let (x0, x1) = decades(
        fold(f64::min, f64::MAX, |p| p.0),
        fold(f64::max, 0.0, |p| p.0),
    );
    let (y0, y1) = decades(
        fold(f64::min, f64::MAX, |p| p.1),
        fold(f64::max, 0.0, |p| p.1),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x.log10() - f64::from(x0)) / f64::from(x1 - x0) * plot_w;
    let sy = |y: f64| TOP + plot_h - (y.log10() - f64::from(y0)) / f64::from(y1 - y0) * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>
"##,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    for decade in x0..=x1 {
        let value = 10f64.powi(decade);
        let x = sx(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            label(value)
        );
    }
    for decade in y0..=y1 {
        let value = 10f64.powi(decade);
        let y = sy(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            label(value)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0,
        escape(x_label),
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (i, line) in series.iter().enumerate() {
        let drawn: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x > 0.0 && y > 0.0 && x.is_finite() && y.is_finite())
            .map(|(x, y)| (sx(x), sy(y)))
            .collect();
        let path: Vec<String> = drawn
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"##,
            path.join(" "),
            line.color
        );
        for (x, y) in &drawn {
            let _ = writeln!(
                svg,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{}"/>"##,
                line.color
            );
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + plot_w + 14.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            lx + 20.0,
            line.color,
            lx + 26.0,
            ly + 4.0,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_land_inside_the_plot_on_log_axes() {
        let svg = log_log(
            "Fan-out <p50>",
            "room size",
            "ms",
            &[
                Series {
                    name: "Rust".into(),
                    color: "#c33",
                    points: vec![(10.0, 2.0), (1000.0, 50.0), (0.0, 1.0)],
                },
                Series {
                    name: "none".into(),
                    color: "#33c",
                    points: vec![],
                },
            ],
        )
        .unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("Fan-out &lt;p50&gt;"));
        // Two drawn points (the x = 0 one is left out), decades 10..1000 and 1..100.
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">1000</text>") && svg.contains(">100</text>"));
        // 10 is the left edge of the plot, 1000 the right one.
        assert!(svg.contains(r#"<circle cx="70.0""#), "{svg}");
        assert!(svg.contains(r#"<circle cx="540.0""#), "{svg}");
        assert!(log_log("t", "x", "y", &[]).is_none());
    }
}
