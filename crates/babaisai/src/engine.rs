//! The Baba Is AI rules engine: a grid of stacked tiles, rules read from word blocks, and one
//! step of movement (you/move objects, push chains, pull, open/shut, win/defeat).
//!
//! The semantics follow the peer (`nacloos/baba-is-ai`, `baba/grid.py` + `baba/rule.py`) exactly,
//! including its order effects: movers are found by a row-major scan of the *current* top tiles
//! while they move, rules are only re-read after all moves, and a "noun is noun" rule stacks a
//! fresh object on top of every matching one after the step.

use vldac_core::rng::RandomState;

/// Kinds of objects that rules can name ("baba", "wall", "ball", "key", "door").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Noun {
    Baba,
    Wall,
    Ball,
    Key,
    Door,
}

impl Noun {
    pub const ALL: [Noun; 5] = [Noun::Baba, Noun::Wall, Noun::Ball, Noun::Key, Noun::Door];

    /// The word as rules and BALROG's text show it.
    pub fn name(self) -> &'static str {
        match self {
            Noun::Baba => "baba",
            Noun::Wall => "wall",
            Noun::Ball => "ball",
            Noun::Key => "key",
            Noun::Door => "door",
        }
    }

    pub fn from_name(name: &str) -> Option<Noun> {
        Noun::ALL.into_iter().find(|n| n.name() == name)
    }

    /// The colour an object gets when a rule creates it.
    pub fn default_color(self) -> Color {
        match self {
            Noun::Baba => Color::White,
            Noun::Wall => Color::Grey,
            Noun::Ball => Color::Green,
            Noun::Key => Color::Blue,
            Noun::Door => Color::Red,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Properties a rule can give a noun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prop {
    Stop,
    Push,
    Win,
    Defeat,
    You,
    Pull,
    Move,
    Open,
    Shut,
}

impl Prop {
    pub const ALL: [Prop; 9] =
        [Prop::Stop, Prop::Push, Prop::Win, Prop::Defeat, Prop::You, Prop::Pull, Prop::Move, Prop::Open, Prop::Shut];

    /// The word on the block ("defeat" reads "lose", as in the peer).
    pub fn name(self) -> &'static str {
        match self {
            Prop::Stop => "stop",
            Prop::Push => "push",
            Prop::Win => "win",
            Prop::Defeat => "lose",
            Prop::You => "you",
            Prop::Pull => "pull",
            Prop::Move => "move",
            Prop::Open => "open",
            Prop::Shut => "shut",
        }
    }

    pub fn from_name(name: &str) -> Option<Prop> {
        Prop::ALL.into_iter().find(|p| p.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Object colours (the peer's palette).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    Red,
    Green,
    Blue,
    Purple,
    Yellow,
    Grey,
    White,
}

impl Color {
    pub fn name(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Purple => "purple",
            Color::Yellow => "yellow",
            Color::Grey => "grey",
            Color::White => "white",
        }
    }

    pub fn from_name(name: &str) -> Option<Color> {
        [Color::Red, Color::Green, Color::Blue, Color::Purple, Color::Yellow, Color::Grey, Color::White]
            .into_iter()
            .find(|c| c.name() == name)
    }

    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [255, 0, 0],
            Color::Green => [0, 255, 0],
            Color::Blue => [0, 0, 255],
            Color::Purple => [112, 39, 195],
            Color::Yellow => [255, 255, 0],
            Color::Grey => [100, 100, 100],
            Color::White => [255, 255, 255],
        }
    }
}

/// A text block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Word {
    Noun(Noun),
    Is,
    Prop(Prop),
}

impl Word {
    pub fn text(self) -> &'static str {
        match self {
            Word::Noun(n) => n.name(),
            Word::Is => "is",
            Word::Prop(p) => p.name(),
        }
    }
}

/// An object whose behaviour the rules decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thing {
    pub noun: Noun,
    pub color: Color,
    /// Facing: 0 right, 1 down, 2 left, 3 up.
    pub dir: u8,
    /// Moved already in the current step (kept between steps, as in the peer).
    moved: bool,
}

impl Thing {
    pub fn new(noun: Noun, color: Color) -> Thing {
        Thing { noun, color, dir: 0, moved: false }
    }
}

/// What can occupy a cell (cells hold stacks; the last tile is on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// The level's outer wall: never moves, never overlaps, obeys no rule.
    Border,
    Thing(Thing),
    Word(Word),
}

/// One active rule, in the order the rule scan found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `noun is property`.
    Prop(Noun, Prop),
    /// `noun is noun`: every such object gets the other one stacked on it after each step.
    Become(Noun, Noun),
}

/// The active rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    list: Vec<Rule>,
    props: [u16; 5],
}

impl Rules {
    /// Reads every `a is b` line, horizontal then vertical for each `is` block in row-major order,
    /// from the top tiles of the grid.
    pub fn extract(grid: &Grid) -> Rules {
        let mut rules = Rules::default();
        let (w, h) = (grid.width as i32, grid.height as i32);
        for y in 0..h {
            for x in 0..w {
                if grid.top(x, y) != Some(&Tile::Word(Word::Is)) {
                    continue;
                }
                if x >= 1 && x + 1 < w {
                    rules.maybe_add(grid.top(x - 1, y), grid.top(x + 1, y));
                }
                if y >= 1 && y + 1 < h {
                    rules.maybe_add(grid.top(x, y - 1), grid.top(x, y + 1));
                }
            }
        }
        rules
    }

    fn maybe_add(&mut self, a: Option<&Tile>, b: Option<&Tile>) {
        let (Some(Tile::Word(Word::Noun(n))), Some(Tile::Word(w))) = (a, b) else { return };
        match *w {
            Word::Prop(p) => {
                self.list.push(Rule::Prop(*n, p));
                self.props[n.index()] |= p.bit();
            }
            Word::Noun(m) => self.list.push(Rule::Become(*n, m)),
            Word::Is => {}
        }
    }

    pub fn list(&self) -> &[Rule] {
        &self.list
    }

    /// Whether `noun is prop` is active.
    pub fn has(&self, noun: Noun, prop: Prop) -> bool {
        self.props[noun.index()] & prop.bit() != 0
    }

    /// Whether a tile has a property: rules for objects, "push" for every word, nothing for borders.
    pub fn tile_is(&self, tile: &Tile, prop: Prop) -> bool {
        match tile {
            Tile::Thing(t) => self.has(t.noun, prop),
            Tile::Word(_) => prop == Prop::Push,
            Tile::Border => false,
        }
    }

    /// Whether another tile may enter this one's cell (objects unless "stop").
    pub fn can_overlap(&self, tile: &Tile) -> bool {
        matches!(tile, Tile::Thing(t) if !self.has(t.noun, Prop::Stop))
    }

    /// The noun of the last `X is you` rule (the one BALROG's text centres on).
    pub fn you(&self) -> Option<Noun> {
        self.list.iter().rev().find_map(|r| match r {
            Rule::Prop(n, Prop::You) => Some(*n),
            _ => None,
        })
    }
}

/// Cells of stacked tiles, `width × height`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub width: usize,
    pub height: usize,
    cells: Vec<Vec<Tile>>,
}

impl Grid {
    pub fn new(width: usize, height: usize) -> Grid {
        Grid { width, height, cells: vec![Vec::new(); width * height] }
    }

    fn idx(&self, x: i32, y: i32) -> Option<usize> {
        (x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height)
            .then(|| y as usize * self.width + x as usize)
    }

    /// The top tile at `(x, y)` (`None` for an empty cell or outside the grid).
    pub fn top(&self, x: i32, y: i32) -> Option<&Tile> {
        self.idx(x, y).and_then(|i| self.cells[i].last())
    }

    fn top_mut(&mut self, x: i32, y: i32) -> Option<&mut Tile> {
        self.idx(x, y).and_then(|i| self.cells[i].last_mut())
    }

    /// The whole stack at `(x, y)`, bottom first.
    pub fn stack(&self, x: i32, y: i32) -> &[Tile] {
        self.idx(x, y).map_or(&[], |i| &self.cells[i])
    }

    /// Puts a tile on top of the stack at `(x, y)` (ignored outside the grid).
    pub fn push(&mut self, x: i32, y: i32, tile: Tile) {
        if let Some(i) = self.idx(x, y) {
            self.cells[i].push(tile);
        }
    }

    pub fn pop(&mut self, x: i32, y: i32) -> Option<Tile> {
        self.idx(x, y).and_then(|i| self.cells[i].pop())
    }

    pub fn inside(&self, x: i32, y: i32) -> bool {
        self.idx(x, y).is_some()
    }

    /// Outer border walls around the grid.
    pub fn wall_rect(&mut self) {
        let (w, h) = (self.width as i32, self.height as i32);
        for x in 0..w {
            self.push(x, 0, Tile::Border);
            self.push(x, h - 1, Tile::Border);
        }
        for y in 0..h {
            self.push(0, y, Tile::Border);
            self.push(w - 1, y, Tile::Border);
        }
    }

    /// Row-major iterator over `(x, y, top tile)` of the non-empty cells.
    pub fn tops(&self) -> impl Iterator<Item = (i32, i32, &Tile)> {
        self.cells
            .iter()
            .enumerate()
            .filter_map(move |(i, c)| c.last().map(|t| ((i % self.width) as i32, (i / self.width) as i32, t)))
    }

    /// Moves the top tile of `from` onto `to`; a movement direction also turns it.
    pub fn move_top(&mut self, from: (i32, i32), to: (i32, i32), dir: Option<u8>) {
        if from == to || !self.inside(to.0, to.1) {
            return;
        }
        let Some(mut tile) = self.pop(from.0, from.1) else { return };
        if let (Tile::Thing(t), Some(d)) = (&mut tile, dir) {
            t.dir = d;
        }
        self.push(to.0, to.1, tile);
    }
}

/// Direction vectors by facing (0 right, 1 down, 2 left, 3 up).
pub const DIR_VEC: [(i32, i32); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];

/// The five actions, in the peer's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Act {
    Idle = 0,
    Up = 1,
    Right = 2,
    Down = 3,
    Left = 4,
}

impl Act {
    pub const ALL: [Act; 5] = [Act::Idle, Act::Up, Act::Right, Act::Down, Act::Left];
    /// BALROG's action strings, index = action number.
    pub const LABELS: [&'static str; 5] = ["idle", "up", "right", "down", "left"];

    pub fn from_index(i: usize) -> Option<Act> {
        Act::ALL.get(i).copied()
    }

    pub fn label(self) -> &'static str {
        Act::LABELS[self as usize]
    }

    /// The facing an action turns the agent to (`None` for idle).
    pub fn facing(self) -> Option<u8> {
        match self {
            Act::Idle => None,
            Act::Right => Some(0),
            Act::Down => Some(1),
            Act::Left => Some(2),
            Act::Up => Some(3),
        }
    }
}

/// The result of one engine step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// `1 - 0.9 * steps / max_steps` on a win, -1 on a defeat, 0 otherwise.
    pub reward: f64,
    pub win: bool,
    pub lose: bool,
    /// The step limit was reached (the peer then reports `done` as well).
    pub timeout: bool,
}

/// A level in play.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub grid: Grid,
    pub rules: Rules,
    /// Where the last "you" object went (the peer's `agent_pos`).
    pub agent_pos: (i32, i32),
    pub agent_dir: u8,
    pub step_count: usize,
    pub max_steps: usize,
}

/// Recursion bound for push/pull chains (the peer recurses without bound; pull cycles overflow it).
const MAX_CHAIN: usize = 512;

impl World {
    /// Starts play on a generated grid: reads the rules and takes the agent position and facing
    /// from the first visible "you" object. Without one the peer draws a free cell and a facing
    /// from the level generator (`place_agent`), which shifts every later draw, so this does too.
    pub fn new(grid: Grid, max_steps: usize, rng: &mut RandomState) -> World {
        let rules = Rules::extract(&grid);
        let mut w = World { grid, rules, agent_pos: (0, 0), agent_dir: 0, step_count: 0, max_steps };
        if let Some((x, y, d)) = w.grid.tops().find_map(|(x, y, t)| match t {
            Tile::Thing(th) if w.rules.has(th.noun, Prop::You) => Some((x, y, th.dir)),
            _ => None,
        }) {
            w.agent_pos = (x, y);
            w.agent_dir = d;
        } else {
            let (gw, gh) = (w.grid.width as i64, w.grid.height as i64);
            // Bounded like the peer's rejection sampling (1e5 tries); a full grid keeps (0, 0).
            for _ in 0..100_001 {
                let x = rng.randint(0, gw) as i32;
                let y = rng.randint(0, gh) as i32;
                if w.grid.top(x, y).is_none() {
                    w.agent_pos = (x, y);
                    break;
                }
            }
            w.agent_dir = rng.randint(0, 4) as u8;
        }
        w
    }

    fn tile_is(&self, x: i32, y: i32, prop: Prop) -> bool {
        self.grid.top(x, y).is_some_and(|t| self.rules.tile_is(t, prop))
    }

    /// Open meets shut (either way round): both top tiles are destroyed.
    fn open_shut(&mut self, pos: (i32, i32), fwd: (i32, i32)) {
        let open = |w: &World, p: (i32, i32)| w.tile_is(p.0, p.1, Prop::Open);
        let shut = |w: &World, p: (i32, i32)| w.tile_is(p.0, p.1, Prop::Shut);
        if (open(self, pos) && shut(self, fwd)) || (shut(self, pos) && open(self, fwd)) {
            self.grid.pop(pos.0, pos.1);
            self.grid.pop(fwd.0, fwd.1);
        }
    }

    /// Moves the top tile at `pos` one cell along `dir`, pushing what is ahead and pulling what is
    /// behind. Returns the tile's new position and whether that cell's top was win / defeat.
    fn move_tile(&mut self, pos: (i32, i32), dir: u8, depth: usize) -> ((i32, i32), bool, bool) {
        let (dx, dy) = DIR_VEC[dir as usize];
        let fwd = (pos.0 + dx, pos.1 + dy);
        if depth > MAX_CHAIN || !self.grid.inside(fwd.0, fwd.1) {
            return (pos, false, false);
        }
        // Whether the tile ahead is pushable is decided before open/shut may destroy it.
        let push_ahead = self.tile_is(fwd.0, fwd.1, Prop::Push);
        self.open_shut(pos, fwd);
        if push_ahead {
            self.move_tile(fwd, dir, depth + 1);
        }
        let free = self.grid.top(fwd.0, fwd.1).is_none_or(|t| self.rules.can_overlap(t));
        let new_pos = if free { fwd } else { pos };
        let win = self.tile_is(new_pos.0, new_pos.1, Prop::Win);
        let lose = self.tile_is(new_pos.0, new_pos.1, Prop::Defeat);
        self.grid.move_top(pos, new_pos, Some(dir));
        let bwd = (pos.0 - dx, pos.1 - dy);
        if self.tile_is(bwd.0, bwd.1, Prop::Pull) {
            self.move_tile(bwd, dir, depth + 1);
        }
        (new_pos, win, lose)
    }

    /// One step of the game (the peer's `BabaIsYouEnv.step` without the observation).
    pub fn step(&mut self, act: Act) -> Outcome {
        self.step_count += 1;
        let mut out = Outcome { reward: 0.0, win: false, lose: false, timeout: false };
        if let Some(facing) = act.facing() {
            self.agent_dir = facing;
            let (w, h) = (self.grid.width as i32, self.grid.height as i32);
            // Everything that may move this step starts unmoved.
            for y in 0..h {
                for x in 0..w {
                    let rules = &self.rules;
                    if let Some(Tile::Thing(t)) = self.grid.top_mut(x, y)
                        && (rules.has(t.noun, Prop::You) || rules.has(t.noun, Prop::Move))
                    {
                        t.moved = false;
                    }
                }
            }
            // "You" objects first, found by a scan of the live grid; the last one decides win/lose.
            let (mut win, mut lose) = (false, false);
            for y in 0..h {
                for x in 0..w {
                    let rules = &self.rules;
                    let Some(Tile::Thing(t)) = self.grid.top_mut(x, y) else { continue };
                    if !rules.has(t.noun, Prop::You) || t.moved {
                        continue;
                    }
                    t.dir = facing;
                    t.moved = true;
                    let (p, wn, ls) = self.move_tile((x, y), facing, 0);
                    (win, lose) = (wn, ls);
                    self.agent_pos = p;
                }
            }
            // Then "move" objects, each along its own facing.
            for y in 0..h {
                for x in 0..w {
                    let rules = &self.rules;
                    let Some(Tile::Thing(t)) = self.grid.top_mut(x, y) else { continue };
                    if !rules.has(t.noun, Prop::Move) || t.moved {
                        continue;
                    }
                    t.moved = true;
                    let d = t.dir;
                    self.move_tile((x, y), d, 0);
                }
            }
            out.win = win;
            out.lose = lose;
            if win {
                out.reward = 1.0 - 0.9 * (self.step_count as f64 / self.max_steps as f64);
            } else if lose {
                out.reward = -1.0;
            }
            self.rules = Rules::extract(&self.grid);
            self.apply_become();
        }
        out.timeout = self.step_count >= self.max_steps;
        out
    }

    /// `a is b`: a fresh `b` (default colour) is stacked on every top `a`, rule by rule.
    fn apply_become(&mut self) {
        let becomes: Vec<(Noun, Noun)> = self
            .rules
            .list()
            .iter()
            .filter_map(|r| match r {
                Rule::Become(a, b) => Some((*a, *b)),
                Rule::Prop(..) => None,
            })
            .collect();
        for (a, b) in becomes {
            let (w, h) = (self.grid.width as i32, self.grid.height as i32);
            for y in 0..h {
                for x in 0..w {
                    if matches!(self.grid.top(x, y), Some(Tile::Thing(t)) if t.noun == a) {
                        self.grid.push(x, y, Tile::Thing(Thing::new(b, b.default_color())));
                    }
                }
            }
        }
    }

    /// Positions of top objects that are "you" under the current rules, row-major.
    pub fn you_positions(&self) -> Vec<(i32, i32)> {
        self.grid
            .tops()
            .filter(|(_, _, t)| matches!(t, Tile::Thing(th) if self.rules.has(th.noun, Prop::You)))
            .map(|(x, y, _)| (x, y))
            .collect()
    }
}
