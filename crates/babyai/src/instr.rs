//! The Baby Language: object descriptions, instructions, their surface strings and the verifier
//! that decides, after every step, whether the mission succeeded.

use crate::grid::{Color, DIR_TO_VEC, Kind};
use crate::world::{Action, World};

/// Object types the language may name.
pub const OBJ_TYPES: [Kind; 4] = [Kind::Box, Kind::Ball, Kind::Key, Kind::Door];
pub const OBJ_TYPES_NOT_DOOR: [Kind; 3] = [Kind::Box, Kind::Ball, Kind::Key];

/// Locations relative to the agent's starting pose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    Left,
    Right,
    Front,
    Behind,
}

impl Loc {
    pub const ALL: [Loc; 4] = [Loc::Left, Loc::Right, Loc::Front, Loc::Behind];
}

/// A description of a set of objects ("the red ball", "a door on your left").
#[derive(Debug, Clone, PartialEq)]
pub struct ObjDesc {
    pub kind: Option<Kind>,
    pub color: Option<Color>,
    pub loc: Option<Loc>,
    /// Ids of the objects matching the description when it was last resolved.
    pub obj_set: Vec<u32>,
    /// Their positions (stale for carried objects until the next drop, as in BabyAI).
    pub obj_poss: Vec<(i32, i32)>,
}

impl ObjDesc {
    pub fn new(kind: Option<Kind>, color: Option<Color>, loc: Option<Loc>) -> ObjDesc {
        ObjDesc { kind, color, loc, obj_set: Vec::new(), obj_poss: Vec::new() }
    }

    pub fn of(kind: Kind, color: Color) -> ObjDesc {
        ObjDesc::new(Some(kind), Some(color), None)
    }

    /// Resolves the description against the world. With `use_location == false` only the
    /// objects already in `obj_set` are tracked (their new positions after a drop).
    pub fn find_matching(&mut self, w: &World, use_location: bool) {
        if use_location {
            self.obj_set.clear();
        }
        self.obj_poss.clear();
        let agent_room = w.room_from_pos(w.agent_pos);
        for x in 0..w.grid.width {
            for y in 0..w.grid.height {
                let Some(cell) = w.grid.get(x, y) else { continue };
                if !use_location && !self.obj_set.contains(&cell.id) {
                    continue;
                }
                if self.kind.is_some_and(|k| k != cell.kind) || self.color.is_some_and(|c| c != cell.color) {
                    continue;
                }
                if use_location && let Some(loc) = self.loc {
                    if !agent_room.is_some_and(|r| w.rooms[r].pos_inside(x, y)) {
                        continue;
                    }
                    let v = (x - w.agent_pos.0, y - w.agent_pos.1);
                    let d1 = DIR_TO_VEC[w.agent_dir as usize];
                    let d2 = (-d1.1, d1.0);
                    let (along, side) = (v.0 * d1.0 + v.1 * d1.1, v.0 * d2.0 + v.1 * d2.1);
                    let ok = match loc {
                        Loc::Left => side < 0,
                        Loc::Right => side > 0,
                        Loc::Front => along > 0,
                        Loc::Behind => along < 0,
                    };
                    if !ok {
                        continue;
                    }
                }
                if use_location {
                    self.obj_set.push(cell.id);
                }
                self.obj_poss.push((x, y));
            }
        }
    }

    /// "the red ball" / "a box on your left" (resolves the description first).
    pub fn surface(&mut self, w: &World) -> String {
        self.find_matching(w, true);
        let mut s = self.kind.map_or("object", Kind::name).to_string();
        if let Some(c) = self.color {
            s = format!("{} {s}", c.name());
        }
        match self.loc {
            Some(Loc::Front) => s.push_str(" in front of you"),
            Some(Loc::Behind) => s.push_str(" behind you"),
            Some(Loc::Left) => s.push_str(" on your left"),
            Some(Loc::Right) => s.push_str(" on your right"),
            None => {}
        }
        if self.obj_set.len() > 1 { format!("a {s}") } else { format!("the {s}") }
    }
}

/// The verifier's verdict after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Continue,
    Success,
    Failure,
}

/// An instruction of the Baby Language with its verifier state.
#[derive(Debug, Clone, PartialEq)]
pub enum Instr {
    GoTo {
        desc: ObjDesc,
    },
    Open {
        desc: ObjDesc,
        strict: bool,
    },
    Pickup {
        desc: ObjDesc,
        strict: bool,
        pre_carrying: Option<u32>,
    },
    PutNext {
        moved: ObjDesc,
        fixed: ObjDesc,
        strict: bool,
        pre_carrying: Option<u32>,
    },
    /// `a, then b`.
    Before {
        a: Box<Instr>,
        b: Box<Instr>,
        a_done: Option<Status>,
        b_done: Option<Status>,
    },
    /// `a after you b`: b first.
    After {
        a: Box<Instr>,
        b: Box<Instr>,
        a_done: Option<Status>,
        b_done: Option<Status>,
    },
    /// `a and b`, any order.
    And {
        a: Box<Instr>,
        b: Box<Instr>,
        a_done: Option<Status>,
        b_done: Option<Status>,
    },
}

impl Instr {
    pub fn goto(desc: ObjDesc) -> Instr {
        Instr::GoTo { desc }
    }
    pub fn open(desc: ObjDesc, strict: bool) -> Instr {
        Instr::Open { desc, strict }
    }
    pub fn pickup(desc: ObjDesc, strict: bool) -> Instr {
        Instr::Pickup { desc, strict, pre_carrying: None }
    }
    pub fn put_next(moved: ObjDesc, fixed: ObjDesc) -> Instr {
        Instr::PutNext { moved, fixed, strict: false, pre_carrying: None }
    }
    pub fn before(a: Instr, b: Instr) -> Instr {
        Instr::Before { a: Box::new(a), b: Box::new(b), a_done: None, b_done: None }
    }
    pub fn after(a: Instr, b: Instr) -> Instr {
        Instr::After { a: Box::new(a), b: Box::new(b), a_done: None, b_done: None }
    }
    pub fn and(a: Instr, b: Instr) -> Instr {
        Instr::And { a: Box::new(a), b: Box::new(b), a_done: None, b_done: None }
    }

    /// The mission text.
    pub fn surface(&mut self, w: &World) -> String {
        match self {
            Instr::GoTo { desc } => format!("go to {}", desc.surface(w)),
            Instr::Open { desc, .. } => format!("open {}", desc.surface(w)),
            Instr::Pickup { desc, .. } => format!("pick up {}", desc.surface(w)),
            Instr::PutNext { moved, fixed, .. } => format!("put {} next to {}", moved.surface(w), fixed.surface(w)),
            Instr::Before { a, b, .. } => format!("{}, then {}", a.surface(w), b.surface(w)),
            Instr::After { a, b, .. } => format!("{} after you {}", a.surface(w), b.surface(w)),
            Instr::And { a, b, .. } => format!("{} and {}", a.surface(w), b.surface(w)),
        }
    }

    /// Start of an episode: resolve the descriptions and clear the verifier state.
    pub fn reset_verifier(&mut self, w: &World) {
        match self {
            Instr::GoTo { desc } | Instr::Open { desc, .. } => desc.find_matching(w, true),
            Instr::Pickup { desc, pre_carrying, .. } => {
                *pre_carrying = None;
                desc.find_matching(w, true);
            }
            Instr::PutNext { moved, fixed, pre_carrying, .. } => {
                *pre_carrying = None;
                moved.find_matching(w, true);
                fixed.find_matching(w, true);
            }
            Instr::Before { a, b, a_done, b_done }
            | Instr::After { a, b, a_done, b_done }
            | Instr::And { a, b, a_done, b_done } => {
                a.reset_verifier(w);
                b.reset_verifier(w);
                *a_done = None;
                *b_done = None;
            }
        }
    }

    /// After a drop: refresh the positions of the tracked objects.
    pub fn update_objs_poss(&mut self, w: &World) {
        match self {
            Instr::GoTo { desc } | Instr::Open { desc, .. } | Instr::Pickup { desc, .. } => {
                desc.find_matching(w, false)
            }
            Instr::PutNext { moved, fixed, .. } => {
                moved.find_matching(w, false);
                fixed.find_matching(w, false);
            }
            Instr::Before { a, b, .. } | Instr::After { a, b, .. } | Instr::And { a, b, .. } => {
                a.update_objs_poss(w);
                b.update_objs_poss(w);
            }
        }
    }

    /// The verdict after `action` was applied to `w`.
    pub fn verify(&mut self, w: &World, action: Action) -> Status {
        let front = w.front_pos();
        match self {
            Instr::GoTo { desc } => {
                if desc.obj_poss.contains(&front) {
                    Status::Success
                } else {
                    Status::Continue
                }
            }
            Instr::Open { desc, strict } => {
                if action != Action::Toggle {
                    return Status::Continue;
                }
                let front_cell = w.grid.get(front.0, front.1);
                if front_cell.is_some_and(|c| c.open && desc.obj_set.contains(&c.id) && c.kind == Kind::Door) {
                    return Status::Success;
                }
                if *strict && front_cell.is_some_and(|c| c.kind == Kind::Door) {
                    return Status::Failure;
                }
                Status::Continue
            }
            Instr::Pickup { desc, strict, pre_carrying } => {
                let carrying = w.carrying.map(|o| o.id);
                let pre = std::mem::replace(pre_carrying, carrying);
                if action != Action::Pickup {
                    return Status::Continue;
                }
                if pre.is_none() && carrying.is_some_and(|c| desc.obj_set.contains(&c)) {
                    return Status::Success;
                }
                if *strict && carrying.is_some() {
                    return Status::Failure;
                }
                Status::Continue
            }
            Instr::PutNext { moved, fixed, strict, pre_carrying } => {
                let carrying = w.carrying.map(|o| o.id);
                let pre = std::mem::replace(pre_carrying, carrying);
                if *strict && action == Action::Pickup && carrying.is_some() {
                    return Status::Failure;
                }
                if action != Action::Drop {
                    return Status::Continue;
                }
                for &a in &moved.obj_set {
                    if pre != Some(a) {
                        continue;
                    }
                    let pos_a = w.obj_pos(a);
                    if fixed.obj_poss.iter().any(|&b| next_to(pos_a, b)) {
                        return Status::Success;
                    }
                }
                Status::Continue
            }
            Instr::Before { a, b, a_done, b_done } => {
                if *a_done == Some(Status::Success) {
                    let s = b.verify(w, action);
                    *b_done = Some(s);
                    if s != Status::Continue {
                        return s;
                    }
                } else {
                    let s = a.verify(w, action);
                    *a_done = Some(s);
                    match s {
                        Status::Failure => return Status::Failure,
                        Status::Success => return self.verify(w, action),
                        Status::Continue => {}
                    }
                }
                Status::Continue
            }
            Instr::After { a, b, a_done, b_done } => {
                if *b_done == Some(Status::Success) {
                    let s = a.verify(w, action);
                    *a_done = Some(s);
                    if s != Status::Continue {
                        return s;
                    }
                } else {
                    let s = b.verify(w, action);
                    *b_done = Some(s);
                    match s {
                        Status::Failure => return Status::Failure,
                        Status::Success => return self.verify(w, action),
                        Status::Continue => {}
                    }
                }
                Status::Continue
            }
            Instr::And { a, b, a_done, b_done } => {
                if *a_done != Some(Status::Success) {
                    *a_done = Some(a.verify(w, action));
                }
                if *b_done != Some(Status::Success) {
                    *b_done = Some(b.verify(w, action));
                }
                if *a_done == Some(Status::Success) && *b_done == Some(Status::Success) {
                    Status::Success
                } else {
                    Status::Continue
                }
            }
        }
    }

    /// How many navigations the instruction needs (sets the step budget).
    pub fn num_navs(&self) -> usize {
        match self {
            Instr::PutNext { .. } => 2,
            Instr::GoTo { .. } | Instr::Open { .. } | Instr::Pickup { .. } => 1,
            Instr::Before { a, b, .. } | Instr::After { a, b, .. } | Instr::And { a, b, .. } => {
                a.num_navs() + b.num_navs()
            }
        }
    }
}

/// Horizontally or vertically adjacent.
pub fn next_to(a: (i32, i32), b: (i32, i32)) -> bool {
    (a.0 - b.0).abs() + (a.1 - b.1).abs() == 1
}
