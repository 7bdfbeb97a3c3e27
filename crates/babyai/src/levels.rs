//! BabyAI levels: each draws a world and an instruction from the numpy generator in the same
//! order as MiniGrid's `gen_mission`, so a seed gives the peer's level.

use crate::grid::{Color, Kind, Obj};
use crate::instr::{Instr, Loc, OBJ_TYPES, OBJ_TYPES_NOT_DOOR, ObjDesc};
use crate::world::{GenError, GenResult, Opening, World};

/// The five tasks of `BabyAI-MixedTrainLocal-v0` (BALROG's task names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MixedTask {
    GoTo,
    Pickup,
    Open,
    PutNext,
    PickUpSeqGoTo,
}

impl MixedTask {
    pub const ALL: [MixedTask; 5] =
        [MixedTask::GoTo, MixedTask::Pickup, MixedTask::Open, MixedTask::PutNext, MixedTask::PickUpSeqGoTo];

    /// BALROG's name (`action_kinds[0]` with spaces as underscores).
    pub fn name(self) -> &'static str {
        match self {
            MixedTask::GoTo => "goto",
            MixedTask::Pickup => "pickup",
            MixedTask::Open => "open",
            MixedTask::PutNext => "putnext",
            MixedTask::PickUpSeqGoTo => "pick_up_seq_go_to",
        }
    }

    pub fn from_name(name: &str) -> Option<MixedTask> {
        MixedTask::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// A level and its parameters (the registered ids map onto these).
#[derive(Debug, Clone, PartialEq)]
pub enum Level {
    GoToRedBallGrey {
        room_size: i32,
        num_dists: usize,
    },
    GoToRedBall {
        room_size: i32,
        num_dists: usize,
    },
    GoToObj {
        room_size: i32,
    },
    GoToLocal {
        room_size: i32,
        num_dists: usize,
    },
    GoToRedBlueBall {
        room_size: i32,
        num_dists: usize,
    },
    GoToDoor,
    GoToObjDoor,
    /// `GoTo` (multi-room with doors).
    GoTo {
        room_size: i32,
        num_rows: i32,
        num_cols: i32,
        num_dists: usize,
        doors_open: bool,
    },
    PickupLoc,
    PickupDist {
        debug: bool,
    },
    PutNextLocal {
        room_size: i32,
        num_objs: usize,
    },
    OpenRedDoor,
    OpenDoor {
        debug: bool,
        select_by: Option<SelectBy>,
    },
    OpenTwoDoors {
        first: Option<Color>,
        second: Option<Color>,
        strict: bool,
    },
    OpenDoorsOrder {
        num_doors: usize,
        debug: bool,
    },
    /// `LevelGen` with its knobs (GoToSeq and friends).
    LevelGen(LevelGenConfig),
    /// BabyAI-Text's `MixedTrainLocal` restricted to one task (what BALROG's filter builds).
    MixedTrainLocal {
        task: MixedTask,
        num_dists: usize,
    },
    /// Its test split `MixedTestLocal`: only the held-out colour/object pairs, red/grey doors.
    MixedTestLocal {
        task: MixedTask,
        num_dists: usize,
    },
}

/// How OpenDoor names its door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectBy {
    Color,
    Loc,
}

/// Instruction kinds of `LevelGen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrKind {
    Action,
    And,
    Seq,
}

/// Action kinds of `LevelGen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    GoTo,
    Pickup,
    Open,
    PutNext,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LevelGenConfig {
    pub room_size: i32,
    pub num_rows: i32,
    pub num_cols: i32,
    pub num_dists: usize,
    pub locked_room_prob: f64,
    pub locations: bool,
    pub unblocking: bool,
    pub implicit_unlock: bool,
    pub action_kinds: Vec<ActionKind>,
    pub instr_kinds: Vec<InstrKind>,
}

impl Default for LevelGenConfig {
    fn default() -> Self {
        LevelGenConfig {
            room_size: 8,
            num_rows: 3,
            num_cols: 3,
            num_dists: 18,
            locked_room_prob: 0.5,
            locations: true,
            unblocking: true,
            implicit_unlock: true,
            action_kinds: vec![ActionKind::GoTo, ActionKind::Pickup, ActionKind::Open, ActionKind::PutNext],
            instr_kinds: vec![InstrKind::Action, InstrKind::And, InstrKind::Seq],
        }
    }
}

impl Level {
    /// Room size and room-grid shape.
    pub fn layout(&self) -> (i32, i32, i32) {
        match self {
            Level::GoToRedBallGrey { room_size, .. }
            | Level::GoToRedBall { room_size, .. }
            | Level::GoToObj { room_size }
            | Level::GoToLocal { room_size, .. }
            | Level::GoToRedBlueBall { room_size, .. }
            | Level::PutNextLocal { room_size, .. } => (*room_size, 1, 1),
            Level::GoToDoor => (7, 3, 3),
            Level::GoToObjDoor => (8, 3, 3),
            Level::GoTo { room_size, num_rows, num_cols, .. } => (*room_size, *num_rows, *num_cols),
            Level::PickupLoc => (8, 1, 1),
            Level::PickupDist { .. } => (7, 1, 1),
            Level::OpenRedDoor => (5, 1, 2),
            Level::OpenDoor { .. } => (8, 3, 3),
            Level::OpenTwoDoors { .. } | Level::OpenDoorsOrder { .. } => (6, 3, 3),
            Level::LevelGen(c) => (c.room_size, c.num_rows, c.num_cols),
            Level::MixedTrainLocal { task: MixedTask::Open, .. }
            | Level::MixedTestLocal { task: MixedTask::Open, .. } => (8, 1, 2),
            Level::MixedTrainLocal { .. } | Level::MixedTestLocal { .. } => (8, 1, 1),
        }
    }

    /// A step limit fixed by the level (otherwise it follows from the instruction).
    pub fn fixed_max_steps(&self) -> Option<usize> {
        match self {
            Level::OpenTwoDoors { .. } | Level::OpenDoorsOrder { .. } => Some(20 * 36),
            _ => None,
        }
    }

    /// The step limit when it does not depend on the drawn instruction (MixedTrainLocal's tasks,
    /// fixed-limit levels); `None` otherwise.
    pub fn known_max_steps(&self) -> Option<usize> {
        match self {
            Level::MixedTrainLocal { task, .. } | Level::MixedTestLocal { task, .. } => {
                Some(if matches!(task, MixedTask::GoTo | MixedTask::Pickup) { 64 } else { 128 })
            }
            _ => self.fixed_max_steps(),
        }
    }

    /// `RoomGridLevel._gen_grid`: generate until a level passes, then the mission text.
    pub fn generate(&self, w: &mut World) -> (Instr, String) {
        loop {
            w.gen_room_grid();
            w.locked_room = None;
            let attempt = self.gen_mission(w).and_then(|mut instr| {
                validate(w, &mut instr)?;
                Ok(instr)
            });
            if let Ok(mut instr) = attempt {
                let mission = instr.surface(w);
                return (instr, mission);
            }
        }
    }

    fn gen_mission(&self, w: &mut World) -> GenResult<Instr> {
        let goto = |o: Obj| Instr::goto(ObjDesc::of(o.kind, o.color));
        match self {
            Level::GoToRedBallGrey { num_dists, .. } | Level::GoToRedBall { num_dists, .. } => {
                w.place_agent(None, None)?;
                let obj = w.add_object(0, 0, Some(Kind::Ball), Some(Color::Red))?;
                let dists = w.add_distractors(None, None, *num_dists, false)?;
                if matches!(self, Level::GoToRedBallGrey { .. }) {
                    dists.iter().for_each(|d| w.recolor(d.id, Color::Grey));
                }
                w.check_objs_reachable()?;
                Ok(goto(obj))
            }
            Level::GoToObj { .. } => {
                w.place_agent(None, None)?;
                let objs = w.add_distractors(None, None, 1, true)?;
                Ok(goto(objs[0]))
            }
            Level::GoToLocal { num_dists, .. } => {
                w.place_agent(None, None)?;
                let objs = w.add_distractors(None, None, *num_dists, false)?;
                w.check_objs_reachable()?;
                let obj = w.rand_elem(&objs);
                Ok(goto(obj))
            }
            Level::GoToRedBlueBall { num_dists, .. } => {
                w.place_agent(None, None)?;
                let dists = w.add_distractors(None, None, *num_dists, false)?;
                if dists.iter().any(|d| d.kind == Kind::Ball && matches!(d.color, Color::Blue | Color::Red)) {
                    return Err(GenError::Reject("can only have one blue or red ball".into()));
                }
                let color = w.rand_elem(&[Color::Red, Color::Blue]);
                let obj = w.add_object(0, 0, Some(Kind::Ball), Some(color))?;
                w.check_objs_reachable()?;
                Ok(goto(obj))
            }
            Level::GoToDoor => {
                let doors: Vec<Obj> = (0..4).map(|_| w.add_door(1, 1, None, None, None)).collect();
                w.place_agent(Some(1), Some(1))?;
                let obj = w.rand_elem(&doors);
                Ok(Instr::goto(ObjDesc::of(Kind::Door, obj.color)))
            }
            Level::GoToObjDoor => {
                w.place_agent(Some(1), Some(1))?;
                let mut objs = w.add_distractors(Some(1), Some(1), 8, false)?;
                for _ in 0..4 {
                    objs.push(w.add_door(1, 1, None, None, None));
                }
                w.check_objs_reachable()?;
                let obj = w.rand_elem(&objs);
                Ok(goto(obj))
            }
            Level::GoTo { num_dists, doors_open, .. } => {
                w.place_agent(None, None)?;
                w.connect_all()?;
                let objs = w.add_distractors(None, None, *num_dists, false)?;
                w.check_objs_reachable()?;
                let obj = w.rand_elem(&objs);
                if *doors_open {
                    open_all_doors(w);
                }
                Ok(goto(obj))
            }
            Level::PickupLoc => {
                let cfg = LevelGenConfig {
                    room_size: 8,
                    num_rows: 1,
                    num_cols: 1,
                    num_dists: 8,
                    locked_room_prob: 0.0,
                    locations: true,
                    unblocking: false,
                    action_kinds: vec![ActionKind::Pickup],
                    instr_kinds: vec![InstrKind::Action],
                    ..LevelGenConfig::default()
                };
                level_gen(w, &cfg)
            }
            Level::LevelGen(cfg) => level_gen(w, cfg),
            Level::PickupDist { debug } => {
                let objs = w.add_distractors(None, None, 5, true)?;
                w.place_agent(Some(0), Some(0))?;
                let obj = w.rand_elem(&objs);
                let (mut kind, mut color) = (Some(obj.kind), Some(obj.color));
                match w.rand_index(3) {
                    0 => color = None, // "type"
                    1 => kind = None,  // "color"
                    _ => {}            // "both"
                }
                Ok(Instr::pickup(ObjDesc::new(kind, color, None), *debug))
            }
            Level::PutNextLocal { num_objs, .. } => {
                w.place_agent(None, None)?;
                let objs = w.add_distractors(None, None, *num_objs, true)?;
                w.check_objs_reachable()?;
                let pair = w.rand_subset(&objs, 2);
                Ok(Instr::put_next(ObjDesc::of(pair[0].kind, pair[0].color), ObjDesc::of(pair[1].kind, pair[1].color)))
            }
            Level::OpenRedDoor => {
                w.add_door(0, 0, Some(0), Some(Color::Red), Some(false));
                w.place_agent(Some(0), Some(0))?;
                Ok(Instr::open(ObjDesc::of(Kind::Door, Color::Red), false))
            }
            Level::OpenDoor { debug, select_by } => {
                let colors = w.rand_subset(&Color::SORTED, 4);
                let doors: Vec<Obj> =
                    colors.iter().enumerate().map(|(i, &c)| w.add_door(1, 1, Some(i), Some(c), Some(false))).collect();
                let select_by = match select_by {
                    Some(s) => *s,
                    None => w.rand_elem(&[SelectBy::Color, SelectBy::Loc]),
                };
                let desc = match select_by {
                    SelectBy::Color => ObjDesc::of(Kind::Door, doors[0].color),
                    SelectBy::Loc => {
                        let loc = w.rand_elem(&Loc::ALL);
                        ObjDesc::new(Some(Kind::Door), None, Some(loc))
                    }
                };
                w.place_agent(Some(1), Some(1))?;
                Ok(Instr::open(desc, *debug))
            }
            Level::OpenTwoDoors { first, second, strict } => {
                let colors = w.rand_subset(&Color::SORTED, 2);
                let d1 = w.add_door(1, 1, Some(2), Some(first.unwrap_or(colors[0])), Some(false));
                let d2 = w.add_door(1, 1, Some(0), Some(second.unwrap_or(colors[1])), Some(false));
                w.place_agent(Some(1), Some(1))?;
                Ok(Instr::before(
                    Instr::open(ObjDesc::of(Kind::Door, d1.color), *strict),
                    Instr::open(ObjDesc::of(Kind::Door, d2.color), false),
                ))
            }
            Level::OpenDoorsOrder { num_doors, debug } => {
                let colors = w.rand_subset(&Color::SORTED, *num_doors);
                let doors: Vec<Obj> = colors.iter().map(|&c| w.add_door(1, 1, None, Some(c), Some(false))).collect();
                w.place_agent(Some(1), Some(1))?;
                let pair = w.rand_subset(&doors, 2);
                let (d1, d2) = (ObjDesc::of(Kind::Door, pair[0].color), ObjDesc::of(Kind::Door, pair[1].color));
                Ok(match w.rand_index(3) {
                    0 => Instr::open(d1, *debug),
                    1 => Instr::before(Instr::open(d1, *debug), Instr::open(d2, *debug)),
                    _ => Instr::after(Instr::open(d1, *debug), Instr::open(d2, *debug)),
                })
            }
            Level::MixedTrainLocal { task, num_dists } => mixed_local(w, *task, *num_dists, false),
            Level::MixedTestLocal { task, num_dists } => mixed_local(w, *task, *num_dists, true),
        }
    }
}

fn open_all_doors(w: &mut World) {
    let ids: Vec<u32> = w
        .rooms
        .iter()
        .flat_map(|r| r.doors)
        .filter_map(|d| if let Opening::Door(id) = d { Some(id) } else { None })
        .collect();
    for id in ids {
        let pos = w.obj_pos(id);
        if let Some(d) = w.grid.get_mut(pos.0, pos.1).filter(|d| d.id == id) {
            d.open = true;
        }
    }
}

/// `validate_instrs`: PutNext must not name one object twice nor start with the objects
/// already adjacent. (The key/locked-door rule applies only to `unblocking` levels, none of
/// which is registered here.)
fn validate(w: &World, instr: &mut Instr) -> GenResult<()> {
    match instr {
        Instr::PutNext { moved, fixed, .. } => {
            moved.find_matching(w, true);
            fixed.find_matching(w, true);
            if moved.obj_set.iter().any(|a| fixed.obj_set.contains(a)) {
                return Err(GenError::Reject("objects match both sides of PutNext".into()));
            }
            let adjacent =
                moved.obj_set.iter().any(|&a| fixed.obj_poss.iter().any(|&b| crate::instr::next_to(w.obj_pos(a), b)));
            if adjacent {
                return Err(GenError::Reject("objects already next to each other".into()));
            }
            Ok(())
        }
        Instr::Before { a, b, .. } | Instr::After { a, b, .. } => {
            validate(w, a)?;
            validate(w, b)
        }
        _ => Ok(()),
    }
}

/// `LevelGen.gen_mission`.
fn level_gen(w: &mut World, cfg: &LevelGenConfig) -> GenResult<Instr> {
    if w.rng.uniform(0.0, 1.0) < cfg.locked_room_prob {
        add_locked_room(w, None)?;
    }
    w.connect_all()?;
    w.add_distractors(None, None, cfg.num_dists, false)?;
    place_agent_outside_locked_room(w)?;
    if !cfg.unblocking {
        w.check_objs_reachable()?;
    }
    rand_instr(w, cfg, &cfg.action_kinds, &cfg.instr_kinds)
}

fn place_agent_outside_locked_room(w: &mut World) -> GenResult<()> {
    loop {
        w.place_agent(None, None)?;
        if w.locked_room.is_none() || w.room_from_pos(w.agent_pos) != w.locked_room {
            return Ok(());
        }
    }
}

/// `add_locked_room`: a locked door on an inner wall of a random room, and its key elsewhere.
fn add_locked_room(w: &mut World, color: Option<Color>) -> GenResult<Obj> {
    let (door, locked_room) = loop {
        let i = w.rand_int(0, w.num_cols);
        let j = w.rand_int(0, w.num_rows);
        let k = w.rand_index(4);
        let r = w.room_index(i, j);
        w.locked_room = Some(r);
        if w.rooms[r].neighbors[k].is_none() {
            continue;
        }
        break (w.add_door(i, j, Some(k), color, Some(true)), r);
    };
    loop {
        let i = w.rand_int(0, w.num_cols);
        let j = w.rand_int(0, w.num_rows);
        if w.room_index(i, j) == locked_room {
            continue;
        }
        w.add_object(i, j, Some(Kind::Key), Some(door.color))?;
        return Ok(door);
    }
}

/// `rand_obj`: a description matching at least one object (outside the locked room unless
/// implicit unlocking is allowed).
fn rand_obj(w: &mut World, cfg: &LevelGenConfig, types: &[Kind]) -> GenResult<ObjDesc> {
    let colors: Vec<Option<Color>> = std::iter::once(None).chain(Color::SORTED.map(Some)).collect();
    let mut tries = 0;
    loop {
        if tries > 100 {
            return Err(GenError::Recursion("failed to find suitable object"));
        }
        tries += 1;
        let color = w.rand_elem(&colors);
        let kind = w.rand_elem(types);
        let loc = if cfg.locations && w.rand_bool() { Some(w.rand_elem(&Loc::ALL)) } else { None };
        let mut desc = ObjDesc::new(Some(kind), color, loc);
        desc.find_matching(w, true);
        if desc.obj_set.is_empty() {
            continue;
        }
        if !cfg.implicit_unlock
            && let Some(r) = w.locked_room
            && desc.obj_poss.iter().all(|&(x, y)| w.rooms[r].pos_inside(x, y))
        {
            continue;
        }
        return Ok(desc);
    }
}

/// `rand_instr`.
fn rand_instr(w: &mut World, cfg: &LevelGenConfig, actions: &[ActionKind], kinds: &[InstrKind]) -> GenResult<Instr> {
    match w.rand_elem(kinds) {
        InstrKind::Action => Ok(match w.rand_elem(actions) {
            ActionKind::GoTo => Instr::goto(rand_obj(w, cfg, &OBJ_TYPES)?),
            ActionKind::Pickup => Instr::pickup(rand_obj(w, cfg, &OBJ_TYPES_NOT_DOOR)?, false),
            ActionKind::Open => Instr::open(rand_obj(w, cfg, &[Kind::Door])?, false),
            ActionKind::PutNext => {
                let moved = rand_obj(w, cfg, &OBJ_TYPES_NOT_DOOR)?;
                Instr::put_next(moved, rand_obj(w, cfg, &OBJ_TYPES)?)
            }
        }),
        InstrKind::And => {
            let a = rand_instr(w, cfg, actions, &[InstrKind::Action])?;
            let b = rand_instr(w, cfg, actions, &[InstrKind::Action])?;
            Ok(Instr::and(a, b))
        }
        InstrKind::Seq => {
            let a = rand_instr(w, cfg, actions, &[InstrKind::Action, InstrKind::And])?;
            let b = rand_instr(w, cfg, actions, &[InstrKind::Action, InstrKind::And])?;
            // `_rand_elem(["before", "after"])`
            Ok(if w.rand_index(2) == 0 { Instr::before(a, b) } else { Instr::after(a, b) })
        }
    }
}

/// Missions whose text contains one of these are held out of MixedTrainLocal (for the test set).
const HELD_OUT: [&str; 5] = ["yellow box", "red key", "red door", "green ball", "grey door"];

/// MixedTestLocal rejects every other colour/object pair.
const TEST_EXCLUDED: [&str; 19] = [
    "yellow key",
    "yellow ball",
    "yellow door",
    "red box",
    "red ball",
    "green box",
    "green key",
    "green door",
    "grey box",
    "grey key",
    "grey ball",
    "blue box",
    "blue key",
    "blue ball",
    "blue door",
    "purple box",
    "purple key",
    "purple ball",
    "purple door",
];

/// BabyAI-Text's `Level_MixedTrainLocal.gen_mission` (or `Level_MixedTestLocal`'s with `test`)
/// for one task.
fn mixed_local(w: &mut World, task: MixedTask, num_dists: usize, test: bool) -> GenResult<Instr> {
    let excluded: &[&str] = if test { &TEST_EXCLUDED } else { &HELD_OUT };
    let accepted = |w: &World, instr: &Instr| {
        let text = instr.clone().surface(w);
        !excluded.iter().any(|s| text.contains(s))
    };
    // Draws an object that is not `not_like` unless that description matches several objects.
    let second = |w: &mut World, objs: &[Obj], first: Obj| -> Obj {
        let mut o = w.rand_elem(objs);
        if (o.kind, o.color) == (first.kind, first.color) {
            let mut d = ObjDesc::of(first.kind, first.color);
            d.find_matching(w, true);
            if d.obj_set.len() < 2 {
                while (o.kind, o.color) == (first.kind, first.color) {
                    o = w.rand_elem(objs);
                }
            }
        }
        o
    };
    loop {
        // `_regen_grid` redraws walls and door positions exactly like a fresh room grid.
        w.gen_room_grid();
        let (instr, reachable) = match task {
            MixedTask::Open => {
                let color = if test {
                    w.rand_elem(&[Color::Red, Color::Grey])
                } else {
                    w.rand_elem(&[Color::Yellow, Color::Green, Color::Blue, Color::Purple])
                };
                add_locked_room(w, Some(color))?;
                w.connect_all()?;
                for j in 0..w.num_rows {
                    for i in 0..w.num_cols {
                        if Some(w.room_index(i, j)) != w.locked_room {
                            w.add_distractors(Some(i), Some(j), num_dists, false)?;
                        }
                    }
                }
                place_agent_outside_locked_room(w)?;
                let reachable = w.objs_reachable();
                // The test split always names the colour (no draw).
                let named = if test { Some(color) } else { w.rand_elem(&[None, Some(color)]) };
                (Instr::open(ObjDesc::new(Some(Kind::Door), named, None), false), reachable)
            }
            MixedTask::GoTo | MixedTask::Pickup => {
                w.place_agent(None, None)?;
                let objs = w.add_distractors(None, None, num_dists + 1, false)?;
                let reachable = w.objs_reachable();
                let obj = w.rand_elem(&objs);
                let desc = ObjDesc::of(obj.kind, obj.color);
                (if task == MixedTask::GoTo { Instr::goto(desc) } else { Instr::pickup(desc, false) }, reachable)
            }
            MixedTask::PutNext | MixedTask::PickUpSeqGoTo => {
                w.place_agent(None, None)?;
                let objs = w.add_distractors(None, None, num_dists + 2, false)?;
                let reachable = w.objs_reachable();
                let a = w.rand_elem(&objs);
                let b = second(w, &objs, a);
                let (da, db) = (ObjDesc::of(a.kind, a.color), ObjDesc::of(b.kind, b.color));
                let instr = if task == MixedTask::PutNext {
                    Instr::put_next(da, db)
                } else {
                    let (pick, go) = (Instr::pickup(da, false), Instr::goto(db));
                    if w.rand_index(2) == 0 { Instr::before(pick, go) } else { Instr::after(go, pick) }
                };
                (instr, reachable)
            }
        };
        if reachable && accepted(w, &instr) {
            return Ok(instr);
        }
    }
}
