//! Level generators for the Baba Is AI task set, drawing from NumPy's legacy global generator
//! in the same order as the peer (`baba/envs.py`), so `np.random.seed(s); env.reset()` and
//! `reset(Some(s))` build the same level.

use vldac_core::rng::RandomState;

use crate::engine::{Color, Grid, Noun, Prop, Thing, Tile, Word};

/// The object names and colours tasks sample from (the peer's `NAMES` and `COLORS`).
const NAMES: [Noun; 3] = [Noun::Ball, Noun::Key, Noun::Door];
const COLORS: [Color; 3] = [Color::Red, Color::Blue, Color::Green];

/// Options shared by the single-room and two-room goto/make-win families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distractors {
    /// Start with the win rule broken (one block moved away): "make win" tasks.
    pub break_win: bool,
    /// A second object that is not the win object.
    pub obj: bool,
    /// A loose noun block naming the distractor object.
    pub rule: bool,
    /// The loose noun block names a third object instead.
    pub irrelevant_rule: bool,
    /// An extra active `third object is win` rule.
    pub win_rule: bool,
}

/// Where an object or loose block may be placed in a two-room level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    LeftPushable,
    RightPushable,
    LeftAnywhere,
    RightAnywhere,
    Anywhere,
}

/// How a task lays out its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 8×8, one room (`MakeWinEnv`).
    OneRoom(Distractors),
    /// 13×9, two rooms split by a wall column (`TwoRoomEnv`); `break_stop` starts with
    /// "wall is stop" already broken.
    TwoRoom { d: Distractors, break_stop: bool, obj1: Region, obj2: Region },
    /// 13×9; the agent must make another object "you" (`TwoRoomMakeYouEnv`).
    MakeYou { break_win: bool },
    /// 13×9; the win rule's noun sits out of reach, so the way is "wall is win" (`TwoRoomMakeWallWinEnv`).
    MakeWallWin,
}

impl Layout {
    pub fn size(self) -> (usize, usize) {
        match self {
            Layout::OneRoom(_) => (8, 8),
            _ => (13, 9),
        }
    }
}

/// Generation failed (rejection sampling found no free cell, as the peer's `RecursionError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("level generation: no free cell found for {what} after {tries} tries")]
pub struct GenError {
    pub what: &'static str,
    pub tries: usize,
}

/// A generated level and the peer's plan string (`target_plan`, e.g. `make[ball is win], goto[ball]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub grid: Grid,
    pub target_plan: String,
}

/// Placement rectangle: top-left corner and size.
type Rect = ((i32, i32), (i32, i32));

/// A placed rule and the cells of its three blocks.
type PlacedRule = ((Noun, Prop), [(i32, i32); 3]);

struct Gen<'a> {
    grid: Grid,
    rng: &'a mut RandomState,
    /// Positions of each placed rule's blocks, to break it later.
    rules: Vec<PlacedRule>,
}

impl Gen<'_> {
    fn put(&mut self, tile: Tile, p: (i32, i32)) {
        self.grid.push(p.0, p.1, tile);
    }

    fn thing(noun: Noun, color: Color) -> Tile {
        Tile::Thing(Thing::new(noun, color))
    }

    /// Three blocks `noun is prop` from `left` rightwards (the peer's `put_rule`).
    fn put_rule(&mut self, noun: Noun, prop: Prop, left: (i32, i32)) {
        let pos = [left, (left.0 + 1, left.1), (left.0 + 2, left.1)];
        self.put(Tile::Word(Word::Noun(noun)), pos[0]);
        self.put(Tile::Word(Word::Is), pos[1]);
        self.put(Tile::Word(Word::Prop(prop)), pos[2]);
        self.rules.push(((noun, prop), pos));
    }

    /// A uniformly drawn empty cell in the rectangle (`randint` x then y, rejection sampling).
    fn free_cell(&mut self, rect: Rect, what: &'static str) -> Result<(i32, i32), GenError> {
        let ((tx, ty), (sx, sy)) = rect;
        let (tx, ty) = (tx.max(0), ty.max(0));
        let (w, h) = (self.grid.width as i32, self.grid.height as i32);
        const MAX_TRIES: usize = 100_001;
        for _ in 0..MAX_TRIES {
            let x = self.rng.randint(tx.into(), (tx + sx).min(w).into()) as i32;
            let y = self.rng.randint(ty.into(), (ty + sy).min(h).into()) as i32;
            if self.grid.top(x, y).is_none() {
                return Ok((x, y));
            }
        }
        Err(GenError { what, tries: MAX_TRIES })
    }

    fn place(&mut self, tile: Tile, rect: Rect, what: &'static str) -> Result<(i32, i32), GenError> {
        let p = self.free_cell(rect, what)?;
        self.put(tile, p);
        Ok(p)
    }

    /// Moves block `block` of a placed rule to `to` (the peer's `break_rule`).
    fn break_rule(&mut self, rule: (Noun, Prop), block: usize, to: (i32, i32)) {
        if let Some((_, pos)) = self.rules.iter().find(|(r, _)| *r == rule) {
            let from = pos[block];
            self.grid.move_top(from, to, None);
        }
    }

    /// Three distinct names and three colours (with replacement): the objects of a level.
    fn sample_objects(&mut self) -> [(Color, Noun); 3] {
        let names = self.rng.choice_distinct(NAMES.len(), 3);
        let colors = self.rng.choice_n(COLORS.len(), 3);
        [0, 1, 2].map(|i| (COLORS[colors[i]], NAMES[names[i]]))
    }
}

/// Builds a level for `layout` from the generator's current state.
pub fn generate(layout: Layout, rng: &mut RandomState) -> Result<Level, GenError> {
    let (w, h) = layout.size();
    let mut grid = Grid::new(w, h);
    grid.wall_rect();
    let mut g = Gen { grid, rng, rules: Vec::new() };
    let plan = match layout {
        Layout::OneRoom(d) => one_room(&mut g, d)?,
        Layout::TwoRoom { d, break_stop, obj1, obj2 } => two_room(&mut g, d, break_stop, obj1, obj2)?,
        Layout::MakeYou { break_win } => make_you(&mut g, break_win)?,
        Layout::MakeWallWin => make_wall_win(&mut g)?,
    };
    Ok(Level { grid: g.grid, target_plan: plan })
}

fn one_room(g: &mut Gen, d: Distractors) -> Result<String, GenError> {
    let [obj1, obj2, obj3] = g.sample_objects();
    g.put_rule(Noun::Baba, Prop::You, (1, 6));
    let win = obj1.1;
    g.put_rule(win, Prop::Win, (1, 1));
    if d.break_win {
        let to = g.free_cell(((2, 2), (4, 4)), "the broken win rule's block")?;
        g.break_rule((win, Prop::Win), 0, to);
    }
    if d.rule {
        // Spots from which the distractor noun can never complete a rule.
        const SPOTS: [(i32, i32); 12] =
            [(4, 6), (5, 6), (6, 6), (4, 1), (5, 1), (6, 1), (6, 1), (6, 2), (6, 3), (6, 4), (6, 5), (6, 6)];
        let p = SPOTS[g.rng.choice(SPOTS.len())];
        let noun = if d.irrelevant_rule { obj3.1 } else { obj2.1 };
        g.put(Tile::Word(Word::Noun(noun)), p);
    }
    let anywhere = ((1, 2), (8, 8));
    g.place(Gen::thing(Noun::Baba, Noun::Baba.default_color()), anywhere, "baba")?;
    g.place(Gen::thing(obj1.1, obj1.0), anywhere, "the win object")?;
    if d.obj {
        g.place(Gen::thing(obj2.1, obj2.0), anywhere, "the distractor object")?;
    }
    if d.win_rule {
        g.put_rule(obj3.1, Prop::Win, (4, 4));
    }
    let name = win.name();
    Ok(if d.break_win { format!("make[{name} is win], goto[{name}]") } else { format!("goto[{name}]") })
}

/// The two-room regions; `pushable_margin` is 2 for `TwoRoomEnv` and 3 for the make-you levels.
fn region(r: Region, w: i32, h: i32, pushable_margin: i32) -> Rect {
    let pushable = (w / 2 - pushable_margin, h - 6);
    match r {
        Region::LeftPushable => ((2, 3), pushable),
        Region::RightPushable => ((w / 2 + pushable_margin - 1, 3), pushable),
        Region::LeftAnywhere => ((1, 1), (w / 2 - 2, h - 2)),
        Region::RightAnywhere => ((w / 2 + 1, 2), (w / 2 - 2, h - 2)),
        Region::Anywhere => ((1, 2), (w - 2, h - 2)),
    }
}

/// Border cells of the right room from which a block can never be pushed back into play.
fn right_unpushable(w: i32, h: i32) -> Vec<(i32, i32)> {
    let mut v: Vec<(i32, i32)> = (0..h - 4).map(|i| (w - 2, 2 + i)).collect();
    v.extend((0..w / 2 - 2).map(|i| (w - 2 - i, h - 2)));
    v
}

/// Two rooms split by a column of (rule-driven) wall objects.
fn split_rooms(g: &mut Gen) {
    let (w, h) = (g.grid.width as i32, g.grid.height as i32);
    for y in 1..h - 1 {
        g.put(Gen::thing(Noun::Wall, Noun::Wall.default_color()), (w / 2, y));
    }
}

fn two_room(g: &mut Gen, d: Distractors, break_stop: bool, r1: Region, r2: Region) -> Result<String, GenError> {
    let (w, h) = (g.grid.width as i32, g.grid.height as i32);
    split_rooms(g);
    let [obj1, obj2, obj3] = g.sample_objects();
    g.put_rule(Noun::Baba, Prop::You, (1, h - 2));
    g.put_rule(Noun::Wall, Prop::Stop, (1, 2));
    g.put_rule(obj1.1, Prop::Win, (w - 4, 1));
    let reg = |r| region(r, w, h, 2);
    if d.rule {
        if d.irrelevant_rule {
            g.place(Tile::Word(Word::Noun(obj3.1)), reg(Region::RightPushable), "the distractor block")?;
        } else if d.obj {
            let spots = right_unpushable(w, h);
            let p = spots[g.rng.choice(spots.len())];
            g.put(Tile::Word(Word::Noun(obj2.1)), p);
        } else {
            g.place(Tile::Word(Word::Noun(obj2.1)), reg(Region::RightPushable), "the distractor block")?;
        }
    }
    if break_stop {
        let to = g.free_cell(reg(Region::LeftPushable), "the broken stop rule's block")?;
        let block = [1, 2][g.rng.choice(2)];
        g.break_rule((Noun::Wall, Prop::Stop), block, to);
    }
    if d.break_win {
        let to = g.free_cell(reg(Region::RightPushable), "the broken win rule's block")?;
        g.break_rule((obj1.1, Prop::Win), 0, to);
    }
    g.place(Gen::thing(Noun::Baba, Noun::Baba.default_color()), reg(Region::LeftPushable), "baba")?;
    let p1 = g.place(Gen::thing(obj1.1, obj1.0), reg(r1), "the win object")?;
    if d.obj {
        g.place(Gen::thing(obj2.1, obj2.0), reg(r2), "the distractor object")?;
    }
    if d.win_rule {
        g.put_rule(obj3.1, Prop::Win, (w - 4, 4));
    }
    let name = obj1.1.name();
    let right = p1.0 > w / 2;
    Ok(match (d.break_win, break_stop) {
        (false, _) if !right || break_stop => format!("goto[{name}]"),
        (false, _) => format!("break[wall is stop], goto[{name}]"),
        (true, true) => format!("make[{name} is win], goto[{name}]"),
        (true, false) => format!("break[wall is stop], make[{name} is win], goto[{name}]"),
    })
}

fn make_you(g: &mut Gen, break_win: bool) -> Result<String, GenError> {
    let (w, h) = (g.grid.width as i32, g.grid.height as i32);
    split_rooms(g);
    let [obj1, obj2, _] = g.sample_objects();
    g.put_rule(Noun::Baba, Prop::You, (1, h - 3));
    g.put_rule(Noun::Wall, Prop::Stop, (1, 1));
    g.put_rule(obj1.1, Prop::Win, (w - 4, 1));
    let reg = |r| region(r, w, h, 3);
    // The loose noun block that can make the distractor object "you".
    g.place(Tile::Word(Word::Noun(obj2.1)), reg(Region::LeftPushable), "the noun block")?;
    if break_win {
        let to = g.free_cell(reg(Region::RightPushable), "the broken win rule's block")?;
        g.break_rule((obj1.1, Prop::Win), 0, to);
    }
    g.place(Gen::thing(Noun::Baba, Noun::Baba.default_color()), reg(Region::LeftPushable), "baba")?;
    g.place(Gen::thing(obj1.1, obj1.0), reg(Region::RightAnywhere), "the win object")?;
    g.place(Gen::thing(obj2.1, obj2.0), reg(Region::RightAnywhere), "the other object")?;
    let (n1, n2) = (obj1.1.name(), obj2.1.name());
    Ok(if break_win {
        format!("make[{n2} is you], make[{n1} is win], goto[{n1}]")
    } else {
        format!("make[{n2} is you], goto[{n1}]")
    })
}

fn make_wall_win(g: &mut Gen) -> Result<String, GenError> {
    let (w, h) = (g.grid.width as i32, g.grid.height as i32);
    split_rooms(g);
    let [obj1, obj2, obj3] = g.sample_objects();
    g.put_rule(Noun::Baba, Prop::You, (1, h - 2));
    g.put_rule(Noun::Wall, Prop::Stop, (2, 2));
    g.put_rule(obj1.1, Prop::Win, (w - 4, 1));
    let reg = |r| region(r, w, h, 3);
    g.place(Tile::Word(Word::Noun(obj3.1)), reg(Region::RightPushable), "the distractor block")?;
    let spots = right_unpushable(w, h);
    let to = spots[g.rng.choice(spots.len())];
    g.break_rule((obj1.1, Prop::Win), 0, to);
    g.place(Gen::thing(Noun::Baba, Noun::Baba.default_color()), reg(Region::LeftPushable), "baba")?;
    g.place(Gen::thing(obj1.1, obj1.0), reg(Region::RightAnywhere), "the win object")?;
    g.place(Gen::thing(obj2.1, obj2.0), reg(Region::RightAnywhere), "the other object")?;
    Ok("break[wall is stop], make[wall is win], goto[wall]".to_string())
}
