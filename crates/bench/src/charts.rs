//! SVG line charts of the results, drawn with plotters' SVG backend. Text
//! is left to the viewer's sans-serif font, so no font files are needed.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A chart with a logarithmic x axis.
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label of the x axis.
    pub x_label: &'a str,
    /// Label of the y axis.
    pub y_label: &'a str,
    /// Whether the y axis is logarithmic too.
    pub y_log: bool,
    /// The lines.
    pub series: &'a [Series],
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 440;

/// Colors of the lines, in order; a chart has at most this many.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(127, 127, 127),
];

/// Draws `chart` into the SVG file `path`.
pub fn write_svg(chart: &Chart<'_>, path: &Path) -> anyhow::Result<()> {
    let svg = render(chart)?;
    std::fs::write(path, svg).with_context(|| format!("could not write {}", path.display()))
}

/// Returns `chart` as SVG text.
pub fn render(chart: &Chart<'_>) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|error| anyhow::anyhow!("could not draw a chart: {error}"))?;
        root.present()
            .map_err(|error| anyhow::anyhow!("could not draw a chart: {error}"))?;
    }
    Ok(svg)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart<'_>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (x_min, x_max) = bounds(chart.series, |(x, _)| x);
    let (y_min, y_max) = bounds(chart.series, |(_, y)| y);
    // Some room around the points on the logarithmic axes.
    let x_range = (x_min / 1.5).max(0.5)..x_max * 1.5;

    let mut builder = ChartBuilder::on(root);
    builder
        .caption(chart.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72);

    if chart.y_log {
        let y_range = (y_min / 2.0).max(1e-3)..y_max * 2.0;
        let mut plot = builder.build_cartesian_2d(x_range.log_scale(), y_range.log_scale())?;
        plot.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_label_formatter(&|x| format_number(*x))
            .y_label_formatter(&|y| format_number(*y))
            .draw()?;
        draw_lines(&mut plot, chart.series)?;
        legend(&mut plot)?;
    } else {
        let mut plot = builder.build_cartesian_2d(x_range.log_scale(), 0.0..y_max * 1.15)?;
        plot.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .x_label_formatter(&|x| format_number(*x))
            .y_label_formatter(&|y| format_number(*y))
            .draw()?;
        draw_lines(&mut plot, chart.series)?;
        legend(&mut plot)?;
    }
    Ok(())
}

fn draw_lines<'a, DB, X, Y>(
    plot: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (index, line) in series.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        plot.draw_series(LineSeries::new(
            line.points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(line.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        plot.draw_series(
            line.points
                .iter()
                .map(|point| Circle::new(*point, 4, color.filled())),
        )?;
    }
    Ok(())
}

fn legend<'a, DB, X, Y>(
    plot: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// Returns the smallest and largest value of `pick` over all points,
/// `(1, 1)` when there are none.
fn bounds(series: &[Series], pick: impl Fn((f64, f64)) -> f64) -> (f64, f64) {
    let values = series
        .iter()
        .flat_map(|line| line.points.iter().copied().map(&pick));
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(min, max), value| {
        (min.min(value), max.max(value))
    });
    if min.is_finite() && max.is_finite() {
        (min, max.max(min))
    } else {
        (1.0, 1.0)
    }
}

/// Formats an axis value without needless decimals: 128, 2.5, 0.25.
pub fn format_number(value: f64) -> String {
    if value >= 100.0 || value == value.round() {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Vec<Series> {
        vec![
            Series {
                name: "create".into(),
                points: vec![(1.0, 100.0), (8.0, 400.0), (128.0, 380.0)],
            },
            Series {
                name: "plain insert".into(),
                points: vec![(1.0, 300.0), (128.0, 2000.0)],
            },
        ]
    }

    #[test]
    fn chart_is_svg_with_title_and_legend() {
        let lines = series();
        let svg = render(&Chart {
            title: "Record create",
            x_label: "concurrent clients",
            y_label: "requests/s",
            y_log: false,
            series: &lines,
        })
        .unwrap();

        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Record create"));
        assert!(svg.contains("plain insert"));
        assert!(svg.contains("concurrent clients"));
    }

    #[test]
    fn log_chart_renders() {
        let lines = series();
        let svg = render(&Chart {
            title: "p99",
            x_label: "clients",
            y_label: "ms",
            y_log: true,
            series: &lines,
        })
        .unwrap();
        assert!(svg.contains("<circle"));
    }

    #[test]
    fn bounds_span_all_series() {
        assert_eq!(bounds(&series(), |(x, _)| x), (1.0, 128.0));
        assert_eq!(bounds(&series(), |(_, y)| y), (100.0, 2000.0));
        assert_eq!(bounds(&[], |(x, _)| x), (1.0, 1.0));
    }

    #[test]
    fn numbers_drop_needless_decimals() {
        assert_eq!(format_number(128.0), "128");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(1234.56), "1235");
    }
}
