//! The RGB frame: every cell drawn procedurally from its top tile (no asset files).
//!
//! The look follows the peer's minigrid-style tiles (grey grid lines, coloured shapes per
//! object, a white triangle for baba facing its direction, light word blocks with the word
//! written in them) but is drawn here from geometry and an 8×8 bitmap font.

use font8x8::UnicodeFonts;
use vldac_core::Frame;

use crate::engine::{Grid, Noun, Tile, Word};

/// Default tile size in pixels (the peer's `TILE_PIXELS`).
pub const TILE_PIXELS: u32 = 32;

struct Canvas {
    w: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        let i = (y * self.w + x) * 3;
        self.px[i..i + 3].copy_from_slice(&rgb);
    }

    /// Fills the pixels of tile `(tx, ty)` whose centre, in tile units [0, 1]², passes `inside`.
    fn fill(&mut self, tx: usize, ty: usize, ts: usize, rgb: [u8; 3], inside: impl Fn(f32, f32) -> bool) {
        for py in 0..ts {
            for px in 0..ts {
                let (u, v) = ((px as f32 + 0.5) / ts as f32, (py as f32 + 0.5) / ts as f32);
                if inside(u, v) {
                    self.set(tx * ts + px, ty * ts + py, rgb);
                }
            }
        }
    }
}

fn rect(x0: f32, x1: f32, y0: f32, y1: f32) -> impl Fn(f32, f32) -> bool {
    move |u, v| u >= x0 && u <= x1 && v >= y0 && v <= y1
}

fn circle(cx: f32, cy: f32, r: f32) -> impl Fn(f32, f32) -> bool {
    move |u, v| (u - cx).powi(2) + (v - cy).powi(2) <= r * r
}

/// The triangle pointing right, turned by `dir` quarter turns clockwise (screen y grows down).
fn arrow(dir: u8) -> impl Fn(f32, f32) -> bool {
    move |u, v| {
        // Rotate the sample point back to the unturned frame around the centre.
        let (x, y) = (u - 0.5, v - 0.5);
        let (x, y) = match dir % 4 {
            0 => (x, y),
            1 => (y, -x),
            2 => (-x, -y),
            _ => (-y, x),
        };
        let (a, b, c) = ((-0.38f32, -0.31f32), (0.37f32, 0.0f32), (-0.38f32, 0.31f32));
        let side = |p: (f32, f32), q: (f32, f32)| (x - q.0) * (p.1 - q.1) - (p.0 - q.0) * (y - q.1);
        let (d1, d2, d3) = (side(a, b), side(b, c), side(c, a));
        !((d1 < 0.0 || d2 < 0.0 || d3 < 0.0) && (d1 > 0.0 || d2 > 0.0 || d3 > 0.0))
    }
}

fn draw_word(c: &mut Canvas, tx: usize, ty: usize, ts: usize, word: Word) {
    c.fill(tx, ty, ts, [235, 235, 235], rect(0.06, 0.94, 0.06, 0.94));
    c.fill(tx, ty, ts, [0, 0, 0], rect(0.12, 0.88, 0.12, 0.88));
    let text = word.text();
    let ink = match word {
        Word::Noun(_) => [235, 235, 235],
        Word::Is => [200, 200, 255],
        Word::Prop(_) => [255, 200, 120],
    };
    // Glyphs use 7 of their 8 columns; scale so that four letters fit the inner box.
    let scale = ((ts as f32 * 0.76) / 28.0).floor().max(1.0) as usize;
    // Four-letter words get a one-column tighter advance so they stay inside the box.
    let advance = if text.len() >= 4 { 6 * scale } else { 7 * scale };
    let width = advance * text.len();
    let x0 = (tx * ts + ts / 2).saturating_sub(width / 2);
    let y0 = (ty * ts + ts / 2).saturating_sub(4 * scale);
    for (k, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let (x, y) = (x0 + k * advance + col * scale + sx, y0 + row * scale + sy);
                            if x < (tx + 1) * ts && y < (ty + 1) * ts {
                                c.set(x, y, ink);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn draw_tile(c: &mut Canvas, tx: usize, ty: usize, ts: usize, tile: &Tile) {
    match tile {
        Tile::Border => c.fill(tx, ty, ts, [100, 100, 100], rect(0.0, 1.0, 0.0, 1.0)),
        Tile::Word(w) => draw_word(c, tx, ty, ts, *w),
        Tile::Thing(t) => {
            let rgb = t.color.rgb();
            match t.noun {
                Noun::Wall => c.fill(tx, ty, ts, rgb, rect(0.2, 0.8, 0.2, 0.8)),
                Noun::Ball => c.fill(tx, ty, ts, rgb, circle(0.5, 0.5, 0.31)),
                Noun::Door => {
                    c.fill(tx, ty, ts, rgb, rect(0.0, 1.0, 0.0, 1.0));
                    c.fill(tx, ty, ts, [0, 0, 0], rect(0.04, 0.96, 0.04, 0.96));
                    c.fill(tx, ty, ts, rgb, rect(0.08, 0.92, 0.08, 0.92));
                    c.fill(tx, ty, ts, [0, 0, 0], rect(0.12, 0.88, 0.12, 0.88));
                    c.fill(tx, ty, ts, rgb, circle(0.75, 0.5, 0.08));
                }
                Noun::Key => {
                    c.fill(tx, ty, ts, rgb, rect(0.50, 0.63, 0.31, 0.88));
                    c.fill(tx, ty, ts, rgb, rect(0.38, 0.50, 0.59, 0.66));
                    c.fill(tx, ty, ts, rgb, rect(0.38, 0.50, 0.81, 0.88));
                    c.fill(tx, ty, ts, rgb, circle(0.56, 0.28, 0.19));
                    c.fill(tx, ty, ts, [0, 0, 0], circle(0.56, 0.28, 0.064));
                }
                Noun::Baba => c.fill(tx, ty, ts, rgb, arrow(t.dir)),
            }
        }
    }
}

/// What a cell looks like (its top tile without the per-step bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Look {
    Empty,
    Border,
    Thing(Noun, crate::engine::Color, u8),
    Word(Word),
}

impl Look {
    fn of(tile: Option<&Tile>) -> Look {
        match tile {
            None => Look::Empty,
            Some(Tile::Border) => Look::Border,
            Some(Tile::Thing(t)) => Look::Thing(t.noun, t.color, t.dir),
            Some(Tile::Word(w)) => Look::Word(*w),
        }
    }
}

/// Draws grids with a cache of cell images (there are few distinct looks per level).
#[derive(Debug, Clone)]
pub struct Renderer {
    tile: usize,
    cache: std::collections::HashMap<Look, Vec<u8>>,
}

impl Renderer {
    /// `tile` pixels per cell (at least 8).
    pub fn new(tile: u32) -> Renderer {
        Renderer { tile: tile.max(8) as usize, cache: std::collections::HashMap::new() }
    }

    fn cell(&mut self, look: Look) -> &[u8] {
        let ts = self.tile;
        self.cache.entry(look).or_insert_with(|| {
            let mut c = Canvas { w: ts, px: vec![0; ts * ts * 3] };
            // Grid lines on the top and left edge of every cell.
            c.fill(0, 0, ts, [100, 100, 100], |u, v| u < 0.031 || v < 0.031);
            let tile = match look {
                Look::Empty => None,
                Look::Border => Some(Tile::Border),
                Look::Thing(n, color, dir) => {
                    let mut t = crate::engine::Thing::new(n, color);
                    t.dir = dir;
                    Some(Tile::Thing(t))
                }
                Look::Word(w) => Some(Tile::Word(w)),
            };
            if let Some(t) = tile {
                draw_tile(&mut c, 0, 0, ts, &t);
            }
            c.px
        })
    }

    /// Draws the whole grid.
    pub fn render(&mut self, grid: &Grid) -> Frame {
        let ts = self.tile;
        let (w, h) = (grid.width * ts, grid.height * ts);
        let mut px = vec![0u8; w * h * 3];
        for ty in 0..grid.height {
            for tx in 0..grid.width {
                let cell = self.cell(Look::of(grid.top(tx as i32, ty as i32)));
                for row in 0..ts {
                    let dst = ((ty * ts + row) * w + tx * ts) * 3;
                    px[dst..dst + ts * 3].copy_from_slice(&cell[row * ts * 3..(row + 1) * ts * 3]);
                }
            }
        }
        Frame::new(w as u32, h as u32, px).unwrap_or_else(|_| Frame::filled(w as u32, h as u32, [0, 0, 0]))
    }
}

/// Draws the whole grid, `tile` pixels per cell (at least 8).
pub fn render(grid: &Grid, tile: u32) -> Frame {
    Renderer::new(tile).render(grid)
}
