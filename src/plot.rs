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

/// Marker shapes, so that series stay apart in greyscale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Marker {
    #[default]
    Circle,
    Square,
    Triangle,
    Cross,
    /// An unfilled circle.
    Ring,
}

/// One line or scatter series.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub line: bool,
    pub markers: bool,
    pub marker: Marker,
    /// Optional text next to each point (e.g. `L=4`); empty: none.
    pub point_labels: Vec<String>,
    /// Optional vertical interval per point ([lo, hi] in y units); empty: none.
    pub y_err: Vec<[f64; 2]>,
    /// Dashed line instead of solid.
    pub dashed: bool,
    /// Put the point labels below the points instead of above (when two series share
    /// positions).
    pub labels_below: bool,
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
        /// Horizontal reference lines (label, y), drawn dashed in grey.
        hlines: Vec<(String, f64)>,
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

type Xy<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One series of an x-y chart: line, interval whiskers, markers of its shape, point labels.
fn draw_series<DB: DrawingBackend>(
    ch: &mut Xy<'_, DB>,
    s: &Series,
    col: RGBColor,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB::ErrorType: 'static,
{
    let ok = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(ok).collect();
    let stroke = col.stroke_width(2);
    if s.line && s.dashed {
        ch.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, stroke))?;
    } else if s.line {
        ch.draw_series(LineSeries::new(pts.clone(), stroke))?;
    }
    for (p, e) in s.points.iter().zip(&s.y_err).filter(|(p, _)| ok(p)) {
        ch.draw_series(std::iter::once(ErrorBar::new_vertical(
            p.0,
            e[0],
            p.1,
            e[1],
            col.stroke_width(1),
            6,
        )))?;
    }
    if s.markers {
        markers(ch, &pts, s.marker, col)?;
    }
    Ok(())
}

/// The point labels of every series, placed after all series are drawn so that no two
/// overlap each other or a marker: each takes the first of a few offsets (its preferred side
/// first) whose box is free, in pixel space.
fn draw_labels<DB: DrawingBackend>(
    ch: &mut Xy<'_, DB>,
    series: &[Series],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB::ErrorType: 'static,
{
    const ABOVE: [(i32, i32); 6] = [(7, -16), (7, 3), (7, -28), (7, 15), (7, -40), (7, 27)];
    // every marker is taken space too (a 12 px box around the point)
    let mut placed: Vec<(i32, i32, i32, i32)> = series
        .iter()
        .filter(|s| s.markers)
        .flat_map(|s| s.points.iter())
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|p| {
            let (x, y) = ch.backend_coord(p);
            (x - 6, y - 6, 12, 12)
        })
        .collect();
    let free = |r: (i32, i32, i32, i32), placed: &[(i32, i32, i32, i32)]| {
        placed
            .iter()
            .all(|q| r.0 + r.2 <= q.0 || q.0 + q.2 <= r.0 || r.1 + r.3 <= q.1 || q.1 + q.3 <= r.1)
    };
    for s in series {
        let order: Vec<(i32, i32)> = if s.labels_below {
            let mut o = ABOVE.to_vec();
            o.swap(0, 1);
            o
        } else {
            ABOVE.to_vec()
        };
        for (p, t) in s.points.iter().zip(&s.point_labels) {
            if !(p.0.is_finite() && p.1.is_finite()) || t.is_empty() {
                continue;
            }
            let (px, py) = ch.backend_coord(p);
            // DejaVu Sans at 11 px: about 6.5 px per character, 12 px high
            // plus 3 px of clearance
            let w = (6.5 * t.chars().count() as f64).ceil() as i32 + 3;
            let rect = |(dx, dy): (i32, i32)| (px + dx - 1, py + dy - 1, w, 14);
            let off = order
                .iter()
                .copied()
                .find(|&o| free(rect(o), &placed))
                .unwrap_or(order[0]);
            placed.push(rect(off));
            ch.draw_series(std::iter::once(
                EmptyElement::at(*p) + Text::new(t.clone(), off, ("sans-serif", 11).into_font()),
            ))?;
        }
    }
    Ok(())
}

/// Markers of shape `m` at `pts` (the legend strip draws its own samples).
fn markers<DB: DrawingBackend>(
    ch: &mut Xy<'_, DB>,
    pts: &[(f64, f64)],
    m: Marker,
    col: RGBColor,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB::ErrorType: 'static,
{
    let (fill, stroke) = (col.filled(), col.stroke_width(2));
    let at = |p: &(f64, f64)| EmptyElement::at(*p);
    match m {
        Marker::Circle => {
            ch.draw_series(pts.iter().map(|p| at(p) + Circle::new((0, 0), 4, fill)))?
        }
        Marker::Square => ch.draw_series(
            pts.iter()
                .map(|p| at(p) + Rectangle::new([(-4, -4), (4, 4)], fill)),
        )?,
        Marker::Triangle => ch.draw_series(
            pts.iter()
                .map(|p| at(p) + TriangleMarker::new((0, 0), 6, fill)),
        )?,
        Marker::Cross => {
            ch.draw_series(pts.iter().map(|p| at(p) + Cross::new((0, 0), 5, stroke)))?
        }
        Marker::Ring => {
            ch.draw_series(pts.iter().map(|p| at(p) + Circle::new((0, 0), 5, stroke)))?
        }
    };
    Ok(())
}

/// Width of the legend strip of x-y charts, pixels.
const LEGEND_W: i32 = 175;

/// The legend of a bar chart, in its own strip: a filled square per group.
fn bar_legend<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    names: impl Iterator<Item = &'a str>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 13).into_font();
    for (i, name) in names.enumerate() {
        let y = 40 + 22 * i as i32;
        let col = PALETTE[i % PALETTE.len()];
        area.draw(&Rectangle::new([(12, y - 6), (26, y + 6)], col.filled()))?;
        area.draw(&Text::new(name.to_string(), (38, y - 7), font.clone()))?;
    }
    Ok(())
}

/// The legend of an x-y chart, drawn in its own strip: reference lines, then each series with
/// its line and / or marker.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    hlines: &[(String, f64)],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 13).into_font();
    let mut y = 40;
    let grey = RGBColor(90, 90, 90);
    for (name, _) in hlines {
        area.draw(&PathElement::new(
            vec![(8, y), (30, y)],
            grey.stroke_width(1),
        ))?;
        area.draw(&Text::new(name.clone(), (38, y - 7), font.clone()))?;
        y += 22;
    }
    for (i, s) in series.iter().enumerate() {
        let col = PALETTE[i % PALETTE.len()];
        if s.line {
            let pts = if s.dashed {
                vec![(8, y), (16, y)]
            } else {
                vec![(8, y), (30, y)]
            };
            area.draw(&PathElement::new(pts, col.stroke_width(2)))?;
            if s.dashed {
                area.draw(&PathElement::new(
                    vec![(21, y), (30, y)],
                    col.stroke_width(2),
                ))?;
            }
        }
        if s.markers {
            let (c, f) = ((19, y), col.filled());
            match s.marker {
                Marker::Circle => area.draw(&Circle::new(c, 4, f))?,
                Marker::Square => area.draw(&Rectangle::new([(15, y - 4), (23, y + 4)], f))?,
                Marker::Triangle => area.draw(&TriangleMarker::new(c, 6, f))?,
                Marker::Cross => area.draw(&Cross::new(c, 5, col.stroke_width(2)))?,
                Marker::Ring => area.draw(&Circle::new(c, 5, col.stroke_width(2)))?,
            }
        }
        area.draw(&Text::new(s.name.clone(), (38, y - 7), font.clone()))?;
        y += 22;
    }
    Ok(())
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
            hlines,
        } => {
            let (x0, x1) = span(
                series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
                false,
            );
            let (y0, y1) = span(
                series
                    .iter()
                    .flat_map(|s| {
                        s.points
                            .iter()
                            .map(|p| p.1)
                            .chain(s.y_err.iter().flatten().copied())
                    })
                    .chain(hlines.iter().map(|h| h.1)),
                false,
            );
            // The legend gets its own strip right of the plot, so it covers no data and the
            // axis needs no head room (a percentage axis stays near 100).
            // The title spans the whole figure, legend strip included.
            let root = root.titled(title, ("sans-serif", 20)).map_err(e)?;
            let (root, side) = root.split_horizontally(SIZE.0 as i32 - LEGEND_W);
            legend(&side, series, hlines).map_err(e)?;
            let whole_y = y1 - y0 >= 10.0;
            let mut ch = ChartBuilder::on(&root)
                .margin(12)
                .x_label_area_size(45)
                .y_label_area_size(65)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(e)?;
            // Whole-number x (layer indices) gets whole-number ticks.
            let whole = series
                .iter()
                .flat_map(|s| s.points.iter())
                .all(|p| p.0.fract() == 0.0);
            // Enough decimals that neighbouring ticks differ (a span under 2 needs two).
            let decimals = |span: f64| if span < 2.0 { 2 } else { 1 };
            let (dx, dy) = (decimals(x1 - x0), decimals(y1 - y0));
            let fmt_x = move |v: &f64| {
                if whole {
                    format!("{v:.0}")
                } else {
                    format!("{v:.dx$}")
                }
            };
            ch.configure_mesh()
                .x_desc(x_label.as_str())
                .y_desc(y_label.as_str())
                .x_label_formatter(&fmt_x)
                .y_label_formatter(&|v: &f64| {
                    if whole_y {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.dy$}")
                    }
                })
                .label_style(("sans-serif", 13))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(e)?;
            let grey = RGBColor(90, 90, 90);
            for (_, y) in hlines {
                let y = *y;
                ch.draw_series(DashedLineSeries::new(
                    vec![(x0, y), (x1, y)],
                    6,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(e)?;
            }
            // Last series first: the lines (Pareto front) go under the markers, and the
            // first series (INT8) stays visible inside a ring at the same position.
            for (i, s) in series.iter().enumerate().rev() {
                draw_series(&mut ch, s, PALETTE[i % PALETTE.len()]).map_err(e)?;
            }
            draw_labels(&mut ch, series).map_err(e)?;
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
            // The legend gets its own strip right of the plot (as for x-y charts), so it
            // covers no bar; a little margin above and below.
            let pad = 0.04 * (y1 - y0);
            let (y0, y1) = (if y0 < 0.0 { y0 - pad } else { y0 }, y1 + pad);
            // The title spans the whole figure, legend strip included.
            let root = root.titled(title, ("sans-serif", 20)).map_err(e)?;
            let (root, side) = root.split_horizontally(SIZE.0 as i32 - LEGEND_W);
            bar_legend(&side, groups.iter().map(|g| g.0.as_str())).map_err(e)?;
            let whole = y1 - y0 >= 10.0;
            let cats = categories.clone();
            let mut ch = ChartBuilder::on(&root)
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
                .y_label_formatter(&|v: &f64| {
                    if whole {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.2}")
                    }
                })
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
                let _ = name;
                ch.draw_series(rects).map_err(e)?;
            }
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
