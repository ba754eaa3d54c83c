//! Figures as PNG and SVG, drawn in Rust with plotters. A figure is described as data
//! ([`Chart`]) and rendered twice, once per backend, so the two files always agree. Text
//! uses the vendored DejaVu Sans (experiments/data/fonts, Bitstream Vera licence), so
//! rendering does not depend on the fonts of the machine.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../experiments/data/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// One line or scatter series.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub line: bool,
    pub markers: bool,
}

/// What a figure shows.
#[derive(Clone, Debug)]
pub enum Chart {
    /// x-y plot: lines and/or markers.
    Xy {
        title: String,
        x_label: String,
        y_label: String,
        series: Vec<Series>,
    },
    /// Bars per category; one bar per group side by side, or stacked.
    Bars {
        title: String,
        y_label: String,
        categories: Vec<String>,
        /// (group name, one value per category)
        groups: Vec<(String, Vec<f64>)>,
        stacked: bool,
    },
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn span(vals: impl Iterator<Item = f64>, zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-9);
    (if zero && lo >= 0.0 { 0.0 } else { lo - pad }, hi + pad)
}

fn render<DB: DrawingBackend>(
    c: &Chart,
    root: DrawingArea<DB, Shift>,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    match c {
        Chart::Xy {
            title,
            x_label,
            y_label,
            series,
        } => {
            let (x0, x1) = span(
                series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
                false,
            );
            let (y0, y1) = span(
                series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
                false,
            );
            let mut ch = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(65)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(e)?;
            ch.configure_mesh()
                .x_desc(x_label.as_str())
                .y_desc(y_label.as_str())
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(e)?;
            for (i, s) in series.iter().enumerate() {
                let col = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect();
                if s.line {
                    ch.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                        .map_err(e)?
                        .label(s.name.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2))
                        });
                }
                if s.markers {
                    let a = ch
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 4, col.filled())))
                        .map_err(e)?;
                    if !s.line {
                        a.label(s.name.as_str())
                            .legend(move |(x, y)| Circle::new((x + 9, y), 4, col.filled()));
                    }
                }
            }
            ch.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(e)?;
        }
        Chart::Bars {
            title,
            y_label,
            categories,
            groups,
            stacked,
        } => {
            let n = categories.len();
            let vals = groups.iter().flat_map(|g| g.1.iter().copied());
            let (y0, y1) = if *stacked {
                span(
                    (0..n).map(|k| groups.iter().map(|g| g.1[k]).sum::<f64>()),
                    true,
                )
            } else {
                span(vals, true)
            };
            // Head room for the legend.
            let y1 = y1 + 0.25 * (y1 - y0);
            let cats = categories.clone();
            let mut ch = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y0..y1)
                .map_err(e)?;
            ch.configure_mesh()
                .disable_x_mesh()
                .x_labels(n.max(1))
                .x_label_formatter(&move |x: &f64| {
                    let k = x.round();
                    if (x - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < cats.len() {
                        cats[k as usize].clone()
                    } else {
                        String::new()
                    }
                })
                .y_desc(y_label.as_str())
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(e)?;
            let g = groups.len().max(1) as f64;
            let width = 0.8;
            let mut base = vec![0.0f64; n];
            for (i, (name, v)) in groups.iter().enumerate() {
                let col = PALETTE[i % PALETTE.len()];
                let rects: Vec<Rectangle<(f64, f64)>> = (0..n)
                    .map(|k| {
                        let (l, r, b, t) = if *stacked {
                            let b = base[k];
                            base[k] += v[k];
                            (k as f64 - width / 2.0, k as f64 + width / 2.0, b, b + v[k])
                        } else {
                            let w = width / g;
                            let l = k as f64 - width / 2.0 + i as f64 * w;
                            (l, l + w, 0.0, v[k])
                        };
                        Rectangle::new([(l, b), (r, t)], col.filled())
                    })
                    .collect();
                ch.draw_series(rects)
                    .map_err(e)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], col.filled())
                    });
            }
            ch.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(e)?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

/// Width and height of every figure, pixels.
pub const SIZE: (u32, u32) = (900, 560);

/// Render `c` to `<stem>.svg` and `<stem>.png` (each written atomically).
pub fn save(c: &Chart, stem: &Path) -> Result<Vec<PathBuf>> {
    REGISTER.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the vendored DejaVu Sans font is valid"));
    });
    let fail = |path: &Path, reason: String| Error::Output {
        path: path.display().to_string(),
        reason,
    };
    let svg_path = stem.with_extension("svg");
    let mut svg = String::new();
    render(
        c,
        SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
    )
    .map_err(|r| fail(&svg_path, r))?;
    crate::report::write_atomic(&svg_path, svg.as_bytes())?;
    let png_path = stem.with_extension("png");
    let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    render(
        c,
        BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area(),
    )
    .map_err(|r| fail(&png_path, r))?;
    let img = image::RgbImage::from_raw(SIZE.0, SIZE.1, buf)
        .ok_or_else(|| fail(&png_path, "buffer size".into()))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| fail(&png_path, e.to_string()))?;
    crate::report::write_atomic(&png_path, &png.into_inner())?;
    Ok(vec![svg_path, png_path])
}
