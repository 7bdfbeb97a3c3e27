//! MiniGrid's world: colours, objects, the grid, and the agent's egocentric partial view with
//! its occlusion rule.

use serde::{Deserialize, Serialize};

/// The six MiniGrid colours, in encoding order (`COLOR_TO_IDX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Red,
    Green,
    Blue,
    Purple,
    Yellow,
    Grey,
}

impl Color {
    /// `COLOR_NAMES`: the names sorted alphabetically, the order random draws index into.
    pub const SORTED: [Color; 6] = [Color::Blue, Color::Green, Color::Grey, Color::Purple, Color::Red, Color::Yellow];

    pub fn name(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Purple => "purple",
            Color::Yellow => "yellow",
            Color::Grey => "grey",
        }
    }

    pub fn index(self) -> u8 {
        self as u8
    }

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [255, 0, 0],
            Color::Green => [0, 255, 0],
            Color::Blue => [0, 0, 255],
            Color::Purple => [112, 39, 195],
            Color::Yellow => [255, 255, 0],
            Color::Grey => [100, 100, 100],
        }
    }
}

/// Object types (`OBJECT_TO_IDX` minus unseen/empty/agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Wall,
    Floor,
    Door,
    Key,
    Ball,
    Box,
    Goal,
    Lava,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Wall => "wall",
            Kind::Floor => "floor",
            Kind::Door => "door",
            Kind::Key => "key",
            Kind::Ball => "ball",
            Kind::Box => "box",
            Kind::Goal => "goal",
            Kind::Lava => "lava",
        }
    }

    /// The type index of the encoding.
    pub fn index(self) -> u8 {
        self as u8 + 2
    }
}

/// Encoding indices of cells that hold no object.
pub const UNSEEN: u8 = 0;
pub const EMPTY: u8 = 1;

/// One object. `id` gives objects an identity (Python's `is`): 0 for walls, unique otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obj {
    pub id: u32,
    pub kind: Kind,
    pub color: Color,
    /// Doors only.
    pub open: bool,
    /// Doors only.
    pub locked: bool,
}

impl Obj {
    pub fn wall() -> Obj {
        Obj { id: 0, kind: Kind::Wall, color: Color::Grey, open: false, locked: false }
    }

    pub fn can_overlap(&self) -> bool {
        match self.kind {
            Kind::Floor | Kind::Goal | Kind::Lava => true,
            Kind::Door => self.open,
            _ => false,
        }
    }

    pub fn can_pickup(&self) -> bool {
        matches!(self.kind, Kind::Key | Kind::Ball | Kind::Box)
    }

    pub fn see_behind(&self) -> bool {
        match self.kind {
            Kind::Wall => false,
            Kind::Door => self.open,
            _ => true,
        }
    }

    /// `(type, colour, state)`; state 0 open, 1 closed, 2 locked (doors), else 0.
    pub fn encode(&self) -> [u8; 3] {
        let state = match self.kind {
            Kind::Door if self.open => 0,
            Kind::Door if self.locked => 2,
            Kind::Door => 1,
            _ => 0,
        };
        [self.kind.index(), self.color.index(), state]
    }
}

/// A `width × height` grid of optional objects (row-major, `x + y * width`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    pub width: i32,
    pub height: i32,
    cells: Vec<Option<Obj>>,
}

impl Grid {
    pub fn new(width: i32, height: i32) -> Grid {
        Grid { width, height, cells: vec![None; (width * height) as usize] }
    }

    pub fn in_bounds(&self, x: i32, y: i32) -> bool {
        x >= 0 && y >= 0 && x < self.width && y < self.height
    }

    /// The cell at `(x, y)`; `None` outside the grid as well as for empty cells.
    pub fn get(&self, x: i32, y: i32) -> Option<&Obj> {
        if !self.in_bounds(x, y) {
            return None;
        }
        self.cells[(x + y * self.width) as usize].as_ref()
    }

    pub fn get_mut(&mut self, x: i32, y: i32) -> Option<&mut Obj> {
        if !self.in_bounds(x, y) {
            return None;
        }
        self.cells[(x + y * self.width) as usize].as_mut()
    }

    /// Sets a cell; writes outside the grid are ignored (callers only write inside).
    pub fn set(&mut self, x: i32, y: i32, v: Option<Obj>) {
        if self.in_bounds(x, y) {
            self.cells[(x + y * self.width) as usize] = v;
        }
    }

    pub fn clear(&mut self) {
        self.cells.iter_mut().for_each(|c| *c = None);
    }

    pub fn wall_rect(&mut self, x: i32, y: i32, w: i32, h: i32) {
        for i in 0..w {
            self.set(x + i, y, Some(Obj::wall()));
            self.set(x + i, y + h - 1, Some(Obj::wall()));
        }
        for j in 0..h {
            self.set(x, y + j, Some(Obj::wall()));
            self.set(x + w - 1, y + j, Some(Obj::wall()));
        }
    }

    /// The full-grid encoding, `[x][y][3]` flattened like numpy's `grid.encode().tobytes()`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.width * self.height * 3) as usize);
        for x in 0..self.width {
            for y in 0..self.height {
                out.extend_from_slice(&self.get(x, y).map_or([EMPTY, 0, 0], Obj::encode));
            }
        }
        out
    }

    /// Where object `id` lies, scanning columns first (the order MiniGrid's searches use).
    pub fn find(&self, id: u32) -> Option<(i32, i32)> {
        let i = self.cells.iter().position(|c| c.is_some_and(|o| o.id == id))?;
        Some((i as i32 % self.width, i as i32 / self.width))
    }
}

/// Direction vectors: right, down, left, up.
pub const DIR_TO_VEC: [(i32, i32); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];

/// Side of the egocentric view.
pub const VIEW: usize = 7;

/// The agent's egocentric view: `cells[vx][vy]` with the agent at `(3, 6)` looking up (-vy),
/// already occluded (invisible cells hold `None`) and with the carried object on the agent's cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub cells: [[Option<Obj>; VIEW]; VIEW],
    pub visible: [[bool; VIEW]; VIEW],
}

/// The agent's cell in view coordinates.
pub const VIEW_AGENT: (usize, usize) = (VIEW / 2, VIEW - 1);

impl View {
    /// `gen_obs_grid`: slice + rotate the world around the agent (outside the grid reads as
    /// wall), then MiniGrid's `process_vis` occlusion sweep.
    pub fn new(grid: &Grid, pos: (i32, i32), dir: u8, carrying: Option<Obj>) -> View {
        let (fx, fy) = DIR_TO_VEC[dir as usize & 3];
        let (rx, ry) = (-fy, fx);
        let sz = VIEW as i32;
        let (tlx, tly) = (pos.0 + fx * (sz - 1) - rx * (sz / 2), pos.1 + fy * (sz - 1) - ry * (sz / 2));
        let mut cells = [[None; VIEW]; VIEW];
        for (vx, col) in cells.iter_mut().enumerate() {
            for (vy, cell) in col.iter_mut().enumerate() {
                let (vx, vy) = (vx as i32, vy as i32);
                let (x, y) = (tlx - fx * vy + rx * vx, tly - fy * vy + ry * vx);
                *cell = if grid.in_bounds(x, y) { grid.get(x, y).copied() } else { Some(Obj::wall()) };
            }
        }
        let visible = process_vis(&cells);
        for (vx, col) in cells.iter_mut().enumerate() {
            for (vy, cell) in col.iter_mut().enumerate() {
                if !visible[vx][vy] {
                    *cell = None;
                }
            }
        }
        cells[VIEW_AGENT.0][VIEW_AGENT.1] = carrying;
        View { cells, visible }
    }

    /// The observation `image` (`[vx][vy][3]`, unseen cells zero), as numpy's `tobytes()`.
    pub fn encode(&self) -> [[[u8; 3]; VIEW]; VIEW] {
        std::array::from_fn(|vx| {
            std::array::from_fn(|vy| {
                if self.visible[vx][vy] { self.cells[vx][vy].map_or([EMPTY, 0, 0], |o| o.encode()) } else { [0; 3] }
            })
        })
    }
}

/// MiniGrid's visibility sweep: from the agent's row upwards, light spreads sideways and one
/// row up from every lit cell that does not block sight.
fn process_vis(cells: &[[Option<Obj>; VIEW]; VIEW]) -> [[bool; VIEW]; VIEW] {
    let mut mask = [[false; VIEW]; VIEW];
    mask[VIEW_AGENT.0][VIEW_AGENT.1] = true;
    let opaque = |i: usize, j: usize| cells[i][j].is_some_and(|o| !o.see_behind());
    for j in (0..VIEW).rev() {
        for i in 0..VIEW - 1 {
            if !mask[i][j] || opaque(i, j) {
                continue;
            }
            mask[i + 1][j] = true;
            if j > 0 {
                mask[i + 1][j - 1] = true;
                mask[i][j - 1] = true;
            }
        }
        for i in (1..VIEW).rev() {
            if !mask[i][j] || opaque(i, j) {
                continue;
            }
            mask[i - 1][j] = true;
            if j > 0 {
                mask[i - 1][j - 1] = true;
                mask[i][j - 1] = true;
            }
        }
    }
    mask
}
