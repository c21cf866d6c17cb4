//! The figures of the `assess` report, drawn with plotters. Each plot is drawn by one function
//! generic over the backend and rendered twice: SVG (inlined in the report, and a file) and RGB
//! pixels (a PNG file and a TensorBoard image). Text uses the embedded DejaVu Sans, so the
//! pixels do not depend on the fonts of the machine.

use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::checkpoint::EpochRecord;
use crate::eval::Confusion;

pub const WIDTH: u32 = 800;
pub const HEIGHT: u32 = 560;
const FONT: &str = "sans-serif";

/// matplotlib's tab10, so the figures look familiar.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A rendered figure.
pub struct Figure {
    /// File stem, e.g. `roc_test`.
    pub name: String,
    pub title: String,
    pub svg: String,
    /// Row-major RGB pixels, WIDTH × HEIGHT.
    pub rgb: Vec<u8>,
}

type Drawn = std::result::Result<(), String>;

/// Turns plotters' backend-specific errors into text.
trait Msg<T> {
    fn msg(self) -> std::result::Result<T, String>;
}

impl<T, E: std::fmt::Debug> Msg<T> for std::result::Result<T, E> {
    fn msg(self) -> std::result::Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// Something that can be drawn on any plotters backend.
pub trait Plot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn;
}

pub fn render<P: Plot>(name: &str, title: &str, plot: &P) -> Result<Figure> {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| unreachable!("the embedded DejaVu Sans is a valid font"));
    });
    let fail = |e: String| anyhow!("drawing figure {name}: {e}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).msg().map_err(fail)?;
        plot.draw(&root).map_err(fail)?;
        root.present().msg().map_err(fail)?;
    }
    let mut rgb = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).msg().map_err(fail)?;
        plot.draw(&root).map_err(fail)?;
        root.present().msg().map_err(fail)?;
    }
    Ok(Figure {
        name: name.into(),
        title: title.into(),
        svg,
        rgb,
    })
}

/// The legend every chart uses, at `at`.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    at: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(14))
        .draw()
        .msg()
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Grouped bars: one group per label, one bar per series, with the value written on top.
pub struct Bars {
    pub title: String,
    pub y_label: String,
    pub groups: Vec<String>,
    /// (series name, one value per group)
    pub series: Vec<(String, Vec<f64>)>,
    /// Fixed y range (metrics in [0, 1]); else 0 to 1.15 × the largest value.
    pub y_max: Option<f64>,
    pub integer_values: bool,
}

impl Plot for Bars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let top = self
            .series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0, f64::max);
        let y_max = self.y_max.unwrap_or((top * 1.15).max(1.0));
        let n = self.groups.len();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
            .msg()?;
        let groups = self.groups.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.max(1) * 2 + 1)
            .x_label_formatter(&move |x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 1e-6 && i < groups.len() {
                    groups[i].clone()
                } else {
                    String::new()
                }
            })
            .y_desc(&self.y_label)
            .y_label_formatter(&|v| {
                if self.integer_values {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .label_style(font(14))
            .draw()
            .msg()?;
        let k = self.series.len().max(1) as f64;
        let width = 0.8 / k;
        for (s, (name, values)) in self.series.iter().enumerate() {
            let color = PALETTE[s % PALETTE.len()];
            let x0 = |g: usize| g as f64 + 0.1 + s as f64 * width;
            chart
                .draw_series(values.iter().enumerate().map(|(g, &v)| {
                    Rectangle::new([(x0(g), 0.0), (x0(g) + width * 0.95, v)], color.filled())
                }))
                .msg()?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
            chart
                .draw_series(values.iter().enumerate().map(|(g, &v)| {
                    let text = if self.integer_values {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.3}")
                    };
                    Text::new(text, (x0(g), v + y_max * 0.01), font(12))
                }))
                .msg()?;
        }
        if self.series.len() > 1 {
            legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
        Ok(())
    }
}

/// Horizontal bars, largest on top, each with its interval as a whisker: feature importances.
pub struct Ranking {
    pub title: String,
    pub x_desc: String,
    /// (label, value, low, high), in the order drawn from the top.
    pub bars: Vec<(String, f64, f64, f64)>,
}

impl Plot for Ranking {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let n = self.bars.len().max(1);
        let lo = self.bars.iter().map(|b| b.2).fold(0.0, f64::min);
        let hi = self.bars.iter().map(|b| b.3.max(b.1)).fold(0.0, f64::max);
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(200)
            .build_cartesian_2d((lo - pad)..(hi + pad), 0f64..n as f64)
            .msg()?;
        let labels: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&move |y| {
                // Bar i is drawn from the top: its centre is at n - i - 0.5.
                let i = n as f64 - y - 0.5;
                let k = i.round();
                if (i - k).abs() < 1e-6 && (k as usize) < labels.len() {
                    labels[k as usize].chars().take(28).collect()
                } else {
                    String::new()
                }
            })
            .x_desc(&self.x_desc)
            .label_style(font(13))
            .draw()
            .msg()?;
        let top = |i: usize| (n - i) as f64;
        chart
            .draw_series(self.bars.iter().enumerate().map(|(i, b)| {
                Rectangle::new(
                    [(0.0, top(i) - 0.85), (b.1, top(i) - 0.15)],
                    PALETTE[0].filled(),
                )
            }))
            .msg()?;
        chart
            .draw_series(self.bars.iter().enumerate().map(|(i, b)| {
                PathElement::new(vec![(b.2, top(i) - 0.5), (b.3, top(i) - 0.5)], BLACK)
            }))
            .msg()?;
        Ok(())
    }
}

/// Counts as a heat map (rows: `y_desc`, columns: `x_desc`), each cell shaded by its share of
/// its row, showing the count or that share: confusion matrices, clusters by class.
pub struct Heatmap {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub rows: Vec<String>,
    pub columns: Vec<String>,
    pub counts: Vec<Vec<usize>>,
    pub normalized: bool,
}

impl Heatmap {
    /// A 2×2 confusion matrix: actual rows, predicted columns.
    pub fn confusion(title: String, c: &Confusion, normalized: bool) -> Heatmap {
        let names = vec!["normal".to_string(), "anomaly".to_string()];
        Heatmap {
            title,
            x_desc: "predicted".into(),
            y_desc: "actual".into(),
            rows: names.clone(),
            columns: names,
            counts: vec![vec![c.tn, c.fp], vec![c.fn_, c.tp]],
            normalized,
        }
    }
}

impl Plot for Heatmap {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let (nr, nc) = (self.rows.len(), self.columns.len());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..nc as f64, 0f64..nr as f64)
            .msg()?;
        // Labels sit at cell centres (half-integer ticks); rows run top to bottom.
        let at = |names: &[String], v: f64| {
            let twice = (v * 2.0).round() as i64;
            let i = ((twice - 1) / 2) as usize;
            if twice % 2 == 1 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        };
        let (rows, columns) = (self.rows.clone(), self.columns.clone());
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * nc + 1)
            .y_labels(2 * nr + 1)
            .x_label_formatter(&|v| at(&columns, *v))
            .y_label_formatter(&|v| at(&rows, nr as f64 - v))
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .label_style(font(16))
            .draw()
            .msg()?;
        let text_size = if nr * nc > 16 { 16 } else { 26 };
        for (row, counts) in self.counts.iter().enumerate() {
            let total = counts.iter().sum::<usize>().max(1) as f64;
            for (col, &count) in counts.iter().enumerate() {
                let share = count as f64 / total;
                let shade = 1.0 - 0.75 * share;
                let color = RGBColor(
                    (31.0 + 224.0 * shade) as u8,
                    (119.0 + 136.0 * shade) as u8,
                    (180.0 + 75.0 * shade) as u8,
                );
                let (x, y) = (col as f64, (nr - 1 - row) as f64);
                chart
                    .draw_series([Rectangle::new([(x, y), (x + 1.0, y + 1.0)], color.filled())])
                    .msg()?;
                let text = if self.normalized {
                    format!("{share:.3}")
                } else {
                    format!("{count}")
                };
                let ink = if share > 0.55 { WHITE } else { BLACK };
                let style = font(text_size).color(&ink);
                chart
                    .draw_series([Text::new(text, (x + 0.4, y + 0.55), style)])
                    .msg()?;
            }
        }
        Ok(())
    }
}

/// Points in the plane, coloured by group (a 2-D projection of rows, by cluster).
pub struct Scatter {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    /// (x, y, group index into `groups`)
    pub points: Vec<(f64, f64, usize)>,
    pub groups: Vec<String>,
}

impl Plot for Scatter {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let range = |f: fn(&(f64, f64, usize)) -> f64| {
            let (lo, hi) = self
                .points
                .iter()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                });
            let pad = ((hi - lo) * 0.05).max(1e-3);
            if lo.is_finite() {
                (lo - pad)..(hi + pad)
            } else {
                -1.0..1.0
            }
        };
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(range(|p| p.0), range(|p| p.1))
            .msg()?;
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .label_style(font(14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .msg()?;
        for (g, name) in self.groups.iter().enumerate() {
            // The palette, then again half-transparent.
            let base = PALETTE[g % PALETTE.len()];
            let color = if g < PALETTE.len() {
                base.to_rgba()
            } else {
                base.mix(0.5)
            };
            let points = self.points.iter().filter(|p| p.2 == g);
            chart
                .draw_series(points.map(|p| Circle::new((p.0, p.1), 2, color.filled())))
                .msg()?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 7, y), 4, color.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// Lines in the unit square: ROC and precision-recall curves, threshold sweeps.
pub struct Curves {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Draw the chance diagonal (ROC).
    pub diagonal: bool,
    /// A dashed vertical marker, e.g. the decision threshold.
    pub marker: Option<(String, f64)>,
    pub legend: SeriesLabelPosition,
}

impl Plot for Curves {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
            .msg()?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(font(14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .msg()?;
        if self.diagonal {
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    6,
                    4,
                    RGBColor(150, 150, 150).into(),
                ))
                .msg()?
                .label("chance (AUC 0.5)")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
        }
        if let Some((label, x)) = &self.marker {
            chart
                .draw_series(DashedLineSeries::new(
                    [(*x, 0.0), (*x, 1.02)],
                    6,
                    4,
                    BLACK.into(),
                ))
                .msg()?
                .label(label.as_str())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        }
        for (i, (label, points)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .msg()?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart, self.legend.clone())?;
        Ok(())
    }
}

/// The score distributions of the two classes (share of each class per bin), over [0, 1] for
/// probabilities, widened to the scores' range for detectors whose scores are not.
pub struct Scores {
    pub title: String,
    pub normal: Vec<f32>,
    pub anomalous: Vec<f32>,
    pub threshold: f32,
}

impl Plot for Scores {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        const BINS: usize = 40;
        let (lo, hi) = self
            .normal
            .iter()
            .chain(&self.anomalous)
            .chain([&self.threshold])
            .filter(|v| v.is_finite())
            .fold((0.0f64, 1.0f64), |(lo, hi), &v| {
                (lo.min(v as f64), hi.max(v as f64))
            });
        let w = (hi - lo) / BINS as f64;
        let hist = |v: &[f32]| {
            let mut h = vec![0.0f64; BINS];
            for &p in v {
                let at = ((p as f64 - lo) / w).clamp(0.0, (BINS - 1) as f64);
                h[at as usize] += 1.0;
            }
            let n = v.len().max(1) as f64;
            h.iter_mut().for_each(|x| *x /= n);
            h
        };
        let (hn, ha) = (hist(&self.normal), hist(&self.anomalous));
        let top = hn.iter().chain(&ha).copied().fold(0.0, f64::max).max(0.01) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0f64..top)
            .msg()?;
        chart
            .configure_mesh()
            .x_desc(if (lo, hi) == (0.0, 1.0) {
                "anomaly probability"
            } else {
                "anomaly score"
            })
            .y_desc("share of the class's rows")
            .label_style(font(14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .msg()?;
        for (i, (label, h, n)) in [
            ("normal", &hn, self.normal.len()),
            ("anomalous", &ha, self.anomalous.len()),
        ]
        .into_iter()
        .enumerate()
        {
            let color = PALETTE[i];
            chart
                .draw_series(h.iter().enumerate().map(|(b, &v)| {
                    Rectangle::new(
                        [(lo + b as f64 * w, 0.0), (lo + (b + 1) as f64 * w, v)],
                        color.mix(0.45).filled(),
                    )
                }))
                .msg()?
                .label(format!("{label} ({n} rows)"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.mix(0.45).filled())
                });
        }
        let t = self.threshold as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [(t, 0.0), (t, top)],
                6,
                4,
                BLACK.into(),
            ))
            .msg()?
            .label(format!("threshold {t:.3}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        legend(&mut chart, SeriesLabelPosition::UpperMiddle)?;
        Ok(())
    }
}

/// Training and validation loss per epoch, and the learning rate beneath.
pub struct Training {
    pub title: String,
    pub history: Vec<EpochRecord>,
    pub best_epoch: usize,
}

impl Plot for Training {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        let (upper, lower) = root.split_vertically(HEIGHT * 2 / 3);
        let last = self.history.last().map_or(1, |r| r.epoch) as f64;
        let losses = self
            .history
            .iter()
            .flat_map(|r| [r.train_loss, r.val_loss])
            .filter(|v| v.is_finite());
        let top = losses.fold(0.0, f64::max).max(1e-3) * 1.05;
        let mut chart = ChartBuilder::on(&upper)
            .caption(&self.title, font(22))
            .margin(15)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5f64..last + 0.5, 0f64..top)
            .msg()?;
        chart
            .configure_mesh()
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("loss")
            .label_style(font(14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .msg()?;
        for (i, (label, pick)) in [
            (
                "train",
                (|r: &EpochRecord| r.train_loss) as fn(&EpochRecord) -> f64,
            ),
            ("validation", |r| r.val_loss),
        ]
        .into_iter()
        .enumerate()
        {
            let color = PALETTE[i];
            let points: Vec<(f64, f64)> = self
                .history
                .iter()
                .map(|r| (r.epoch as f64, pick(r)))
                .filter(|p| p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .msg()?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        let b = self.best_epoch as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [(b, 0.0), (b, top)],
                6,
                4,
                BLACK.into(),
            ))
            .msg()?
            .label(format!("best epoch {}", self.best_epoch))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;

        let lr_top = self
            .history
            .iter()
            .map(|r| r.learning_rate)
            .fold(0.0, f64::max)
            .max(1e-12)
            * 1.1;
        let mut chart = ChartBuilder::on(&lower)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.5f64..last + 0.5, 0f64..lr_top)
            .msg()?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("learning rate")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .label_style(font(14))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .msg()?;
        chart
            .draw_series(LineSeries::new(
                self.history
                    .iter()
                    .map(|r| (r.epoch as f64, r.learning_rate)),
                PALETTE[2].stroke_width(2),
            ))
            .msg()?;
        Ok(())
    }
}
