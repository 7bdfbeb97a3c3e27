//! Procedural tile drawing in MiniGrid's style: each tile is drawn at 3× resolution from
//! shape predicates evaluated at pixel centres, highlighted if visible, then box-filtered down.
//! The arithmetic follows MiniGrid's numpy code (float32 triangle vertices, truncating casts)
//! so frames match the peer's `get_pov_render(tile_size)` byte for byte.

use std::collections::HashMap;

use crate::grid::{Color, Grid, Kind, Obj, VIEW, VIEW_AGENT, View};

const SUBDIVS: usize = 3;
const GRID_LINE: [f64; 3] = [100.0, 100.0, 100.0];

/// A supersampled tile being drawn (RGB, values already truncated to u8 like numpy's uint8 img).
struct Canvas {
    size: usize,
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn fill(&mut self, color: [f64; 3], inside: impl Fn(f64, f64) -> bool) {
        let n = self.size as f64;
        let c = color.map(|v| v as u8);
        for y in 0..self.size {
            let yf = (y as f64 + 0.5) / n;
            for x in 0..self.size {
                let xf = (x as f64 + 0.5) / n;
                if inside(xf, yf) {
                    self.px[y * self.size + x] = c;
                }
            }
        }
    }
}

fn rect(xmin: f64, xmax: f64, ymin: f64, ymax: f64) -> impl Fn(f64, f64) -> bool {
    move |x, y| x >= xmin && x <= xmax && y >= ymin && y <= ymax
}

fn circle(cx: f64, cy: f64, r: f64) -> impl Fn(f64, f64) -> bool {
    move |x, y| (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r
}

/// MiniGrid's barycentric test: vertices in float32, point in float64.
fn triangle(a: (f32, f32), b: (f32, f32), c: (f32, f32)) -> impl Fn(f64, f64) -> bool {
    let v0 = (c.0 - a.0, c.1 - a.1);
    let v1 = (b.0 - a.0, b.1 - a.1);
    let dot00 = v0.0 * v0.0 + v0.1 * v0.1;
    let dot01 = v0.0 * v1.0 + v0.1 * v1.1;
    let dot11 = v1.0 * v1.0 + v1.1 * v1.1;
    let inv_denom = 1.0f32 / (dot00 * dot11 - dot01 * dot01);
    move |x, y| {
        let v2 = (x - f64::from(a.0), y - f64::from(a.1));
        let dot02 = f64::from(v0.0) * v2.0 + f64::from(v0.1) * v2.1;
        let dot12 = f64::from(v1.0) * v2.0 + f64::from(v1.1) * v2.1;
        let u = (f64::from(dot11) * dot02 - f64::from(dot01) * dot12) * f64::from(inv_denom);
        let v = (f64::from(dot00) * dot12 - f64::from(dot01) * dot02) * f64::from(inv_denom);
        u >= 0.0 && v >= 0.0 && (u + v) < 1.0
    }
}

fn line(x0: f64, y0: f64, x1: f64, y1: f64, r: f64) -> impl Fn(f64, f64) -> bool {
    let (dx, dy) = (x1 - x0, y1 - y0);
    let dist = (dx * dx + dy * dy).sqrt();
    let (ux, uy) = (dx / dist, dy / dist);
    move |x, y| {
        let a = ((x - x0) * ux + (y - y0) * uy).clamp(0.0, dist);
        let (px, py) = (x0 + a * ux, y0 + a * uy);
        ((x - px) * (x - px) + (y - py) * (y - py)).sqrt() <= r
    }
}

fn rgb(c: Color) -> [f64; 3] {
    c.rgb().map(f64::from)
}

fn draw_obj(cv: &mut Canvas, o: &Obj) {
    let c = rgb(o.color);
    match o.kind {
        Kind::Wall | Kind::Goal => cv.fill(c, rect(0.0, 1.0, 0.0, 1.0)),
        Kind::Floor => cv.fill(c.map(|v| v / 2.0), rect(0.031, 1.0, 0.031, 1.0)),
        Kind::Lava => {
            cv.fill([255.0, 128.0, 0.0], rect(0.0, 1.0, 0.0, 1.0));
            for i in 0..3 {
                let (lo, hi) = (0.3 + 0.2 * f64::from(i), 0.4 + 0.2 * f64::from(i));
                for (a, b, c2, d) in [(0.1, lo, 0.3, hi), (0.3, hi, 0.5, lo), (0.5, lo, 0.7, hi), (0.7, hi, 0.9, lo)] {
                    cv.fill([0.0; 3], line(a, b, c2, d, 0.03));
                }
            }
        }
        Kind::Door if o.open => {
            cv.fill(c, rect(0.88, 1.0, 0.0, 1.0));
            cv.fill([0.0; 3], rect(0.92, 0.96, 0.04, 0.96));
        }
        Kind::Door if o.locked => {
            cv.fill(c, rect(0.0, 1.0, 0.0, 1.0));
            cv.fill(c.map(|v| 0.45 * v), rect(0.06, 0.94, 0.06, 0.94));
            cv.fill(c, rect(0.52, 0.75, 0.50, 0.56));
        }
        Kind::Door => {
            cv.fill(c, rect(0.0, 1.0, 0.0, 1.0));
            cv.fill([0.0; 3], rect(0.04, 0.96, 0.04, 0.96));
            cv.fill(c, rect(0.08, 0.92, 0.08, 0.92));
            cv.fill([0.0; 3], rect(0.12, 0.88, 0.12, 0.88));
            cv.fill(c, circle(0.75, 0.50, 0.08));
        }
        Kind::Key => {
            cv.fill(c, rect(0.50, 0.63, 0.31, 0.88));
            cv.fill(c, rect(0.38, 0.50, 0.59, 0.66));
            cv.fill(c, rect(0.38, 0.50, 0.81, 0.88));
            cv.fill(c, circle(0.56, 0.28, 0.190));
            cv.fill([0.0; 3], circle(0.56, 0.28, 0.064));
        }
        Kind::Ball => cv.fill(c, circle(0.5, 0.5, 0.31)),
        Kind::Box => {
            cv.fill(c, rect(0.12, 0.88, 0.12, 0.88));
            cv.fill([0.0; 3], rect(0.18, 0.82, 0.18, 0.82));
            cv.fill(c, rect(0.16, 0.84, 0.47, 0.53));
        }
    }
}

/// Cache key: what a tile shows.
type TileKey = (Option<[u8; 3]>, Option<u8>, bool, u32);

/// Renders tiles and caches them (a tile depends only on its object, agent direction and
/// highlight).
#[derive(Debug, Default, Clone)]
pub struct TileRenderer {
    cache: HashMap<TileKey, Vec<u8>>,
}

impl TileRenderer {
    pub fn new() -> Self {
        Self::default()
    }

    fn tile(&mut self, obj: Option<&Obj>, agent_dir: Option<u8>, highlight: bool, tile_size: u32) -> &[u8] {
        let key = (obj.map(Obj::encode), agent_dir, highlight, tile_size);
        self.cache.entry(key).or_insert_with(|| draw_tile(obj, agent_dir, highlight, tile_size as usize))
    }

    /// Renders `grid` at `tile_size` pixels per cell with the agent's triangle and highlighted
    /// cells; returns RGB8 rows.
    pub fn render(
        &mut self,
        grid: &Grid,
        tile_size: u32,
        agent: Option<((i32, i32), u8)>,
        highlight: impl Fn(i32, i32) -> bool,
    ) -> (u32, u32, Vec<u8>) {
        let ts = tile_size as usize;
        let (w, h) = (grid.width as usize * ts, grid.height as usize * ts);
        let mut img = vec![0u8; w * h * 3];
        for j in 0..grid.height {
            for i in 0..grid.width {
                let dir = agent.filter(|(p, _)| *p == (i, j)).map(|(_, d)| d);
                let tile = self.tile(grid.get(i, j), dir, highlight(i, j), tile_size);
                for (ty, src) in tile.chunks_exact(ts * 3).enumerate() {
                    let start = ((j as usize * ts + ty) * w + i as usize * ts) * 3;
                    img[start..start + ts * 3].copy_from_slice(src);
                }
            }
        }
        (w as u32, h as u32, img)
    }

    /// `get_pov_render`: the 7×7 egocentric view, agent at the bottom middle pointing up,
    /// visible cells highlighted.
    pub fn render_view(&mut self, view: &View, tile_size: u32) -> (u32, u32, Vec<u8>) {
        let mut grid = Grid::new(VIEW as i32, VIEW as i32);
        for (x, col) in view.cells.iter().enumerate() {
            for (y, cell) in col.iter().enumerate() {
                grid.set(x as i32, y as i32, *cell);
            }
        }
        let agent = ((VIEW_AGENT.0 as i32, VIEW_AGENT.1 as i32), 3);
        self.render(&grid, tile_size, Some(agent), |x, y| view.visible[x as usize][y as usize])
    }
}

fn draw_tile(obj: Option<&Obj>, agent_dir: Option<u8>, highlight: bool, tile_size: usize) -> Vec<u8> {
    let n = tile_size * SUBDIVS;
    let mut cv = Canvas { size: n, px: vec![[0; 3]; n * n] };
    cv.fill(GRID_LINE, rect(0.0, 0.031, 0.0, 1.0));
    cv.fill(GRID_LINE, rect(0.0, 1.0, 0.0, 0.031));
    if let Some(o) = obj {
        draw_obj(&mut cv, o);
    }
    if let Some(d) = agent_dir {
        let tri = triangle((0.12, 0.19), (0.87, 0.50), (0.12, 0.81));
        let theta = 0.5 * std::f64::consts::PI * f64::from(d);
        let (cos, sin) = ((-theta).cos(), (-theta).sin());
        cv.fill([255.0, 0.0, 0.0], move |x, y| {
            let (x, y) = (x - 0.5, y - 0.5);
            tri(0.5 + x * cos - y * sin, 0.5 + y * cos + x * sin)
        });
    }
    if highlight {
        for p in cv.px.iter_mut() {
            *p = p.map(|v| (f64::from(v) + 0.3 * f64::from(255 - v)).clamp(0.0, 255.0) as u8);
        }
    }
    // Box filter: mean over the 3 sub-columns, then over the 3 sub-rows; the cast truncates.
    let mut out = vec![[0u8; 3]; tile_size * tile_size];
    for ty in 0..tile_size {
        for tx in 0..tile_size {
            for (ch, value) in out[ty * tile_size + tx].iter_mut().enumerate() {
                let mut acc = 0.0f64;
                for sy in 0..SUBDIVS {
                    let row = (ty * SUBDIVS + sy) * n + tx * SUBDIVS;
                    let s: f64 = (0..SUBDIVS).map(|sx| f64::from(cv.px[row + sx][ch])).sum();
                    let m = s / SUBDIVS as f64;
                    acc = if sy == 0 { m } else { acc + m };
                }
                *value = (acc / SUBDIVS as f64) as u8;
            }
        }
    }
    out.into_flattened()
}
