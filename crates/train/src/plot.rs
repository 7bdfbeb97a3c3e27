//! Learning-curve PNGs drawn with `image` and an embedded 8x8 bitmap font (no font files).

use std::path::Path;

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// `(x, low, high)`: a shaded band drawn under the line (e.g. mean ± std across seeds); empty
    /// for none.
    pub band: Vec<(f64, f64, f64)>,
}

impl Series {
    /// A line without a band.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, band: vec![] }
    }
}

/// One chart: a title and its lines.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

const PANEL_W: u32 = 420;
const PANEL_H: u32 = 260;
/// Ten distinct colours (a compare of 3 algorithms x 3 seeds needs nine).
const COLORS: [[u8; 3]; 10] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [23, 190, 207],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
];

/// Draws panels in a grid of `columns` and writes a PNG (the error names the file).
pub fn write_png(panels: &[Panel], columns: u32, out: &Path) -> Result<(), String> {
    let columns = columns.max(1);
    let rows = (panels.len() as u32).div_ceil(columns).max(1);
    let mut img = RgbImage::from_pixel(PANEL_W * columns, PANEL_H * rows, Rgb([255, 255, 255]));
    for (i, panel) in panels.iter().enumerate() {
        let (cx, cy) = ((i as u32 % columns) * PANEL_W, (i as u32 / columns) * PANEL_H);
        draw_panel(&mut img, cx, cy, panel);
    }
    img.save_with_format(out, image::ImageFormat::Png).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

fn draw_panel(img: &mut RgbImage, x0: u32, y0: u32, panel: &Panel) {
    let (left, right, top, bottom) = (x0 + 60, x0 + PANEL_W - 15, y0 + 24, y0 + PANEL_H - 40);
    text(img, x0 + 8, y0 + 6, &panel.title, [0, 0, 0]);
    let band_pts = panel.series.iter().flat_map(|s| s.band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]));
    let pts = panel.series.iter().flat_map(|s| s.points.iter().copied()).chain(band_pts);
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if xmin > xmax {
        text(img, left + 10, (top + bottom) / 2, "no data", [120, 120, 120]);
        return;
    }
    if xmax - xmin < 1e-12 {
        xmax = xmin + 1.0;
    }
    if ymax - ymin < 1e-12 {
        ymin -= 0.5;
        ymax += 0.5;
    }
    // Axes and labels.
    line(img, (left as f64, bottom as f64), (right as f64, bottom as f64), [0, 0, 0]);
    line(img, (left as f64, top as f64), (left as f64, bottom as f64), [0, 0, 0]);
    text(img, x0 + 4, top, &short(ymax), [60, 60, 60]);
    text(img, x0 + 4, bottom - 8, &short(ymin), [60, 60, 60]);
    text(img, left, bottom + 6, &short(xmin), [60, 60, 60]);
    let xr = short(xmax);
    text(img, right.saturating_sub(8 * xr.len() as u32), bottom + 6, &xr, [60, 60, 60]);
    let map = |x: f64, y: f64| {
        (
            left as f64 + (x - xmin) / (xmax - xmin) * (right - left) as f64,
            bottom as f64 - (y - ymin) / (ymax - ymin) * (bottom - top) as f64,
        )
    };
    // Bands first, in a light tint of their line's colour, so every line stays visible on top.
    for (k, s) in panel.series.iter().enumerate() {
        let tint = COLORS[k % COLORS.len()].map(|c| (c as u16 + 3 * 255).div_euclid(4) as u8);
        let finite: Vec<(f64, f64, f64)> =
            s.band.iter().copied().filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite()).collect();
        for w in finite.windows(2) {
            let ((xa, la), (xb, lb)) = (map(w[0].0, w[0].1), map(w[1].0, w[1].1));
            let (ha, hb) = (map(w[0].0, w[0].2).1, map(w[1].0, w[1].2).1);
            for px in xa.round() as i64..=xb.round() as i64 {
                let t = if xb > xa { ((px as f64 - xa) / (xb - xa)).clamp(0.0, 1.0) } else { 0.0 };
                let (lo, hi) = (la + (lb - la) * t, ha + (hb - ha) * t);
                for py in hi.min(lo).round() as i64..=hi.max(lo).round() as i64 {
                    if img.get_pixel_checked(px.max(0) as u32, py.max(0) as u32).is_some_and(|p| p.0 == [255; 3]) {
                        put(img, px, py, tint);
                    }
                }
            }
        }
    }
    for (k, s) in panel.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let finite: Vec<(f64, f64)> =
            s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        for w in finite.windows(2) {
            line(img, map(w[0].0, w[0].1), map(w[1].0, w[1].1), color);
        }
        if finite.len() == 1 {
            let (px, py) = map(finite[0].0, finite[0].1);
            line(img, (px - 2.0, py), (px + 2.0, py), color);
        }
        if panel.series.len() > 1 {
            text(img, left + 8 + 110 * (k as u32 % 3), bottom + 20 + 10 * (k as u32 / 3), &s.label, color);
        }
    }
}

fn short(v: f64) -> String {
    if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-3) { format!("{v:.2e}") } else { format!("{v:.3}") }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: [u8; 3]) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        put(img, x.round() as i64, y.round() as i64, c);
        put(img, x.round() as i64, y.round() as i64 + 1, c);
    }
}

/// Draws ASCII text with the 8x8 font (other characters as '?').
pub fn text(img: &mut RgbImage, x: u32, y: u32, s: &str, c: [u8; 3]) {
    for (i, ch) in s.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    put(img, (x + 8 * i as u32 + col) as i64, (y + row as u32) as i64, c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_lines_where_the_data_is() {
        let dir = std::env::temp_dir().join(format!("vldac-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("p.png");
        let rising = Series::line("a", (0..10).map(|i| (i as f64, i as f64)).collect());
        let empty = Panel { title: "empty".into(), series: vec![] };
        write_png(&[Panel { title: "return".into(), series: vec![rising] }, empty], 2, &out).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (2 * PANEL_W, PANEL_H));
        // The rising line starts bottom-left and ends top-right of the first panel.
        let blue = |x: u32, y: u32| (y.saturating_sub(2)..y + 3).any(|yy| img.get_pixel(x, yy).0 == COLORS[0]);
        assert!(blue(60, PANEL_H - 40));
        assert!(blue(PANEL_W - 15, 24));
        assert!(!blue(PANEL_W - 15, PANEL_H - 40));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn shades_the_band_between_its_bounds_only() {
        let dir = std::env::temp_dir().join(format!("vldac-plot-band-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("b.png");
        // A flat line at 0.5 with a band 0.25..0.75; the y range is 0..1 from the extra series.
        let mid = Series {
            label: "mid".into(),
            points: vec![(0.0, 0.5), (10.0, 0.5)],
            band: vec![(0.0, 0.25, 0.75), (10.0, 0.25, 0.75)],
        };
        let range = Series::line("range", vec![(0.0, 0.0), (0.001, 1.0)]);
        write_png(&[Panel { title: "band".into(), series: vec![mid, range] }], 1, &out).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        let tint = COLORS[0].map(|c| (c as u16 + 3 * 255).div_euclid(4) as u8);
        let (top, bottom) = (24.0, (PANEL_H - 40) as f64);
        let y_of = |v: f64| (bottom - v * (bottom - top)).round() as u32;
        let x = PANEL_W / 2;
        assert_eq!(img.get_pixel(x, y_of(0.4)).0, tint, "inside the band, below the line");
        assert_eq!(img.get_pixel(x, y_of(0.6)).0, tint, "inside the band, above the line");
        assert_eq!(img.get_pixel(x, y_of(0.9)).0, [255; 3], "above the band");
        assert_eq!(img.get_pixel(x, y_of(0.1)).0, [255; 3], "below the band");
        std::fs::remove_dir_all(&dir).ok();
    }
}
