//! Line charts as inline SVG for `report.html`: axes with units, grid, legend, and a
//! native tooltip per point. No script and no external resource: the file opens
//! anywhere, offline, and prints.

use std::fmt::Write as _;

const WIDTH: f64 = 920.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 44.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;

/// Colours that stay apart for the colour-blind (Okabe–Ito), then greys.
const PALETTE: [&str; 10] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#777777",
    "#B8A000", "#AAAAAA",
];

/// One line of a chart.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed: a plan or target rather than a measurement.
    pub dashed: bool,
}

/// How the x axis reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XAxis {
    /// Seconds since the start.
    Seconds,
    /// Offered rate, operations per second (linear).
    Rate,
    /// Percentiles, log-scaled towards the tail as HdrHistogram plots are: x is
    /// `1 / (1 − q)` and ticks read 0 %, 90 %, 99 %, 99.9 %, …
    PercentileTail,
}

/// A line chart.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    pub id: String,
    pub title: String,
    pub y_label: String,
    pub x: XAxis,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// A span of time marked on a time chart: an outage or failover window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub from_s: f64,
    pub to_s: f64,
    pub label: String,
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" step near `span / 5`: 1, 2 or 5 times a power of ten.
/// Most ticks on an axis: every tick loop is bounded by it, so a report with absurd
/// values still renders, and in bounded time.
const MAX_TICKS: usize = 64;

/// Powers of ten from `lo` up to `hi`, at most [`MAX_TICKS`].
fn decades(lo: f64, hi: f64) -> Vec<f64> {
    std::iter::successors(Some(lo), |t| Some(t * 10.0))
        .take(MAX_TICKS)
        .take_while(|t| *t <= hi * 1.0001)
        .collect()
}

fn nice_step(span: f64) -> f64 {
    let raw = (span / 5.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn percentile_label(x: f64) -> String {
    // x = 1/(1-q)
    let q = 1.0 - 1.0 / x;
    let pct = q * 100.0;
    if pct == 0.0 {
        "0%".into()
    } else {
        let digits = (x.log10().round() as usize).saturating_sub(2);
        format!("{pct:.digits$}%")
    }
}

impl Chart {
    #[cfg(test)]
    /// Points over all series.
    pub(crate) fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    #[cfg(test)]
    pub(crate) fn render(&self) -> String {
        self.render_marked(&[])
    }

    /// Render with `marks` shaded behind the series (time charts only).
    pub(crate) fn render_marked(&self, marks: &[Mark]) -> String {
        let mut out = String::new();
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let _ = write!(
            out,
            r#"<svg class="chart" id="{}" data-points="{}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
            escape(&self.id),
            pts.len(),
            escape(&self.title)
        );
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="20" class="title">{}</text>"#,
            escape(&self.title)
        );
        if pts.is_empty() {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" class="empty">no data</text></svg>"#,
                LEFT + PLOT_W / 2.0 - 30.0,
                TOP + PLOT_H / 2.0
            );
            return out;
        }
        let frame = self.frame(&pts);
        self.grid(&frame, &mut out);
        if self.x == XAxis::Seconds {
            for m in marks {
                let (a, b) = (frame.x_to(m.from_s), frame.x_to(m.to_s.max(m.from_s)));
                let _ = write!(
                    out,
                    r#"<rect class="mark" x="{:.1}" y="{TOP}" width="{:.1}" height="{PLOT_H}"><title>{}</title></rect>"#,
                    a.clamp(LEFT, LEFT + PLOT_W),
                    (b.clamp(LEFT, LEFT + PLOT_W) - a.clamp(LEFT, LEFT + PLOT_W)).max(1.0),
                    escape(&m.label)
                );
            }
        }
        self.axes(&mut out);
        for (i, s) in self.series.iter().enumerate() {
            self.series_line(i, s, &frame, &mut out);
        }
        out.push_str("</svg>");
        out
    }

    /// The ranges of both axes, from the points.
    fn frame(&self, pts: &[(f64, f64)]) -> Frame {
        let (x_lo, x_hi) = match self.x {
            XAxis::Seconds | XAxis::Rate => (
                pts.iter()
                    .map(|p| p.0)
                    .fold(f64::INFINITY, f64::min)
                    .min(0.0),
                pts.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9),
            ),
            XAxis::PercentileTail => (1.0, pts.iter().map(|p| p.0).fold(10.0, f64::max)),
        };
        let y_max = pts.iter().map(|p| p.1).fold(0.0, f64::max);
        let (y_lo, y_hi, y_ticks): (f64, f64, Vec<f64>) = if self.log_y {
            let positive_min = pts
                .iter()
                .map(|p| p.1)
                .filter(|y| *y > 0.0)
                .fold(f64::INFINITY, f64::min);
            let lo = if positive_min.is_finite() {
                10f64.powf(positive_min.log10().floor())
            } else {
                0.001
            };
            let hi = 10f64.powf(y_max.max(lo * 10.0).log10().ceil());
            (lo, hi, decades(lo, hi))
        } else {
            let hi = if y_max > 0.0 { y_max * 1.08 } else { 1.0 };
            let step = nice_step(hi);
            let top = (hi / step).ceil() * step;
            let ticks = (0..=((top / step).round() as usize).min(MAX_TICKS))
                .map(|k| k as f64 * step)
                .collect();
            (0.0, top, ticks)
        };
        Frame {
            x: self.x,
            log_y: self.log_y,
            x_lo,
            x_hi,
            y_lo,
            y_hi,
            y_ticks,
        }
    }

    /// The grid, with the ticks of both axes.
    fn grid(&self, f: &Frame, out: &mut String) {
        for t in &f.y_ticks {
            let y = f.y_to(*t);
            let _ = write!(
                out,
                r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
                LEFT + PLOT_W,
                LEFT - 6.0,
                y + 4.0,
                fmt_num(*t)
            );
        }
        let x_ticks: Vec<f64> = match self.x {
            XAxis::Seconds | XAxis::Rate => {
                let step = nice_step(f.x_hi - f.x_lo);
                let first = (f.x_lo / step).ceil() * step;
                (0..MAX_TICKS)
                    .map(|k| first + k as f64 * step)
                    .take_while(|t| *t <= f.x_hi + 1e-9)
                    .collect()
            }
            XAxis::PercentileTail => decades(1.0, f.x_hi),
        };
        for t in &x_ticks {
            let x = f.x_to(*t);
            let label = match self.x {
                XAxis::Seconds | XAxis::Rate => fmt_num(*t),
                XAxis::PercentileTail => percentile_label(*t),
            };
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" class="tick" text-anchor="middle">{label}</text>"#,
                TOP + PLOT_H,
                TOP + PLOT_H + 16.0
            );
        }
    }

    /// Both axes and their labels.
    fn axes(&self, out: &mut String) {
        let _ = write!(
            out,
            r#"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" class="axis"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" class="axis"/>"#,
            TOP + PLOT_H,
            LEFT + PLOT_W,
            TOP + PLOT_H,
            TOP + PLOT_H
        );
        let x_label = match self.x {
            XAxis::Seconds => "time since start (s)",
            XAxis::Rate => "offered rate (ops/s)",
            XAxis::PercentileTail => "percentile",
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="middle">{x_label}</text><text x="14" y="{:.1}" class="label" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
            LEFT + PLOT_W / 2.0,
            HEIGHT - 6.0,
            TOP + PLOT_H / 2.0,
            TOP + PLOT_H / 2.0,
            escape(&self.y_label)
        );
    }

    /// Series `i`: its line, its points (when few) and its legend entry.
    fn series_line(&self, i: usize, s: &Series, f: &Frame, out: &mut String) {
        let color = PALETTE[i % PALETTE.len()];
        let mut line = String::new();
        for (x, y) in s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
        {
            let _ = write!(line, "{:.1},{:.1} ", f.x_to(*x), f.y_to(*y));
        }
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<polyline class="series" data-series="{}" points="{}" fill="none" stroke="{color}" stroke-width="1.8"{dash}><title>{}</title></polyline>"#,
            escape(&s.name),
            line.trim_end(),
            escape(&s.name)
        );
        if s.points.len() <= 120 && !s.dashed {
            for (x, y) in &s.points {
                if x.is_finite() && y.is_finite() {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="{color}"><title>{}: {} at {}</title></circle>"#,
                        f.x_to(*x),
                        f.y_to(*y),
                        escape(&s.name),
                        fmt_num(*y),
                        match self.x {
                            XAxis::Seconds => format!("{}s", fmt_num(*x)),
                            XAxis::Rate => format!("{} ops/s", fmt_num(*x)),
                            XAxis::PercentileTail => percentile_label(*x),
                        }
                    );
                }
            }
        }
        let ly = TOP + 6.0 + i as f64 * 18.0;
        let lx = LEFT + PLOT_W + 14.0;
        let _ = write!(
            out,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"#,
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
}

/// The plotting area of a chart: what its axes span, and where a value is drawn.
struct Frame {
    x: XAxis,
    log_y: bool,
    x_lo: f64,
    x_hi: f64,
    y_lo: f64,
    y_hi: f64,
    y_ticks: Vec<f64>,
}

impl Frame {
    fn x_to(&self, x: f64) -> f64 {
        let f = match self.x {
            XAxis::Seconds | XAxis::Rate => (x - self.x_lo) / (self.x_hi - self.x_lo),
            XAxis::PercentileTail => x.max(1.0).log10() / self.x_hi.log10().max(1e-9),
        };
        LEFT + f * PLOT_W
    }

    fn y_to(&self, y: f64) -> f64 {
        let f = if self.log_y {
            (y.max(self.y_lo).log10() - self.y_lo.log10())
                / (self.y_hi.log10() - self.y_lo.log10()).max(1e-9)
        } else {
            (y - self.y_lo) / (self.y_hi - self.y_lo).max(1e-12)
        };
        TOP + PLOT_H - f.clamp(0.0, 1.0) * PLOT_H
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log_y: bool, x: XAxis, points: Vec<(f64, f64)>) -> Chart {
        Chart {
            id: "c".into(),
            title: "A <chart>".into(),
            y_label: "ops/s".into(),
            x,
            log_y,
            series: vec![Series {
                name: "read & write".into(),
                points,
                dashed: false,
            }],
        }
    }

    #[test]
    fn every_point_is_drawn_inside_the_plot_and_text_is_escaped() {
        let svg = chart(
            false,
            XAxis::Seconds,
            vec![(1.0, 10.0), (2.0, 25.0), (3.0, 0.0)],
        )
        .render();
        assert!(svg.contains(r#"data-points="3""#));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("A &lt;chart&gt;") && svg.contains("read &amp; write"));
        assert!(!svg.contains("NaN"), "{svg}");
        for cap in svg.split("cy=\"").skip(1) {
            let y: f64 = cap.split('"').next().unwrap().parse().unwrap();
            assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "{y}");
        }
    }

    #[test]
    fn log_axes_get_decade_ticks_and_percentile_labels() {
        let svg = chart(
            true,
            XAxis::PercentileTail,
            vec![(1.0, 0.2), (10.0, 1.5), (1000.0, 40.0)],
        )
        .render();
        for label in ["0%", "90%", "99%", "99.9%"] {
            assert!(svg.contains(&format!(">{label}<")), "{label} missing");
        }
        for tick in [">0.10<", ">1<", ">10<", ">100<"] {
            assert!(svg.contains(tick), "{tick} missing");
        }
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = chart(false, XAxis::Seconds, vec![]).render();
        assert!(svg.contains("no data") && svg.contains(r#"data-points="0""#));
    }

    #[test]
    fn tick_labels_are_round_whatever_the_data() {
        // A maximum of 82.775 (as a user's chart had): ticks 0, 20, …, 100, not 82.775.
        let svg = chart(false, XAxis::Seconds, vec![(0.0, 1.0), (30.0, 82.775)]).render();
        for t in [">0<", ">20<", ">40<", ">60<", ">80<", ">100<"] {
            assert!(svg.contains(t), "{t} missing");
        }
        assert!(!svg.contains("82.775<") && !svg.contains("0.550<"));
    }

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(0.3), 0.1);
    }
}
