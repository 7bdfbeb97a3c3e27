//! The MiniGrid engine state (`MiniGridEnv`) plus BabyAI's room grid (`RoomGrid`): random
//! placement helpers that consume the numpy generator exactly as MiniGrid does, the movement
//! rules of the seven actions, and the reachability checks the levels use.

use crate::grid::{Color, DIR_TO_VEC, Grid, Kind, Obj, View};
use crate::rng::NpRandom;

/// MiniGrid's seven actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Left = 0,
    Right = 1,
    Forward = 2,
    Pickup = 3,
    Drop = 4,
    Toggle = 5,
    Done = 6,
}

impl Action {
    pub const ALL: [Action; 7] =
        [Action::Left, Action::Right, Action::Forward, Action::Pickup, Action::Drop, Action::Toggle, Action::Done];

    pub fn from_index(i: usize) -> Option<Action> {
        Action::ALL.get(i).copied()
    }
}

/// Why a generation attempt was abandoned (both make the level start over, as in BabyAI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenError {
    /// Rejection sampling ran out of tries (`RecursionError`).
    Recursion(&'static str),
    /// The level rejected what it drew (`RejectSampling`).
    Reject(String),
}

pub type GenResult<T> = Result<T, GenError>;

/// What sits in a room's wall slot: nothing, a door, or a removed wall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    None,
    Door(u32),
    Removed,
}

impl Opening {
    fn is_some(self) -> bool {
        self != Opening::None
    }
}

/// One room of the room grid; slots are ordered right, down, left, up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub top: (i32, i32),
    pub size: (i32, i32),
    pub doors: [Opening; 4],
    pub door_pos: [Option<(i32, i32)>; 4],
    pub neighbors: [Option<usize>; 4],
    pub locked: bool,
    pub objs: Vec<(Kind, Color)>,
}

impl Room {
    pub fn pos_inside(&self, x: i32, y: i32) -> bool {
        x >= self.top.0 && y >= self.top.1 && x < self.top.0 + self.size.0 && y < self.top.1 + self.size.1
    }
}

/// The engine state of one environment.
#[derive(Debug, Clone)]
pub struct World {
    pub grid: Grid,
    pub agent_pos: (i32, i32),
    pub agent_dir: u8,
    pub carrying: Option<Obj>,
    pub step_count: usize,
    pub max_steps: usize,
    pub rng: NpRandom,
    pub room_size: i32,
    pub num_rows: i32,
    pub num_cols: i32,
    pub rooms: Vec<Room>,
    pub locked_room: Option<usize>,
    /// `cur_pos` of every object by id ((-1, -1) while carried).
    cur_pos: Vec<(i32, i32)>,
}

impl World {
    pub fn new(room_size: i32, num_rows: i32, num_cols: i32, rng: NpRandom) -> World {
        let width = (room_size - 1) * num_cols + 1;
        let height = (room_size - 1) * num_rows + 1;
        World {
            grid: Grid::new(width, height),
            agent_pos: (-1, -1),
            agent_dir: 0,
            carrying: None,
            step_count: 0,
            max_steps: 0,
            rng,
            room_size,
            num_rows,
            num_cols,
            rooms: Vec::new(),
            locked_room: None,
            cur_pos: vec![(-1, -1)],
        }
    }

    pub fn width(&self) -> i32 {
        self.grid.width
    }

    pub fn height(&self) -> i32 {
        self.grid.height
    }

    // ---- random draws (MiniGridEnv._rand_*) ----

    pub fn rand_int(&mut self, low: i32, high: i32) -> i32 {
        self.rng.integers(i64::from(low), i64::from(high)) as i32
    }

    pub fn rand_bool(&mut self) -> bool {
        self.rng.integers(0, 2) == 0
    }

    pub fn rand_index(&mut self, n: usize) -> usize {
        self.rng.integers(0, n as i64) as usize
    }

    pub fn rand_elem<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rand_index(items.len())]
    }

    pub fn rand_color(&mut self) -> Color {
        self.rand_elem(&Color::SORTED)
    }

    /// `_rand_subset`: draw, remove, repeat.
    pub fn rand_subset<T: Copy>(&mut self, items: &[T], n: usize) -> Vec<T> {
        let mut left = items.to_vec();
        let mut out = Vec::with_capacity(n);
        while out.len() < n && !left.is_empty() {
            let i = self.rand_index(left.len());
            out.push(left.remove(i));
        }
        out
    }

    // ---- objects ----

    /// A new object with a fresh identity.
    pub fn new_obj(&mut self, kind: Kind, color: Color) -> Obj {
        let id = self.cur_pos.len() as u32;
        self.cur_pos.push((-1, -1));
        Obj { id, kind, color, open: false, locked: false }
    }

    /// `obj.cur_pos`.
    pub fn obj_pos(&self, id: u32) -> (i32, i32) {
        self.cur_pos.get(id as usize).copied().unwrap_or((-1, -1))
    }

    /// Recolours an object in place (GoToRedBallGrey's grey distractors).
    pub fn recolor(&mut self, id: u32, color: Color) {
        let pos = self.obj_pos(id);
        if let Some(o) = self.grid.get_mut(pos.0, pos.1).filter(|o| o.id == id) {
            o.color = color;
        }
    }

    pub fn put_obj(&mut self, obj: Obj, x: i32, y: i32) {
        self.grid.set(x, y, Some(obj));
        if obj.id != 0 {
            self.cur_pos[obj.id as usize] = (x, y);
        }
    }

    /// `place_obj`: rejection-sample an empty cell of the rectangle, not the agent's cell, not
    /// rejected by `reject_next_to_agent`. `obj == None` only finds the cell.
    pub fn place_obj(
        &mut self,
        obj: Option<Obj>,
        top: (i32, i32),
        size: (i32, i32),
        reject_next_to_agent: bool,
        max_tries: usize,
    ) -> GenResult<(i32, i32)> {
        let top = (top.0.max(0), top.1.max(0));
        let mut tries = 0;
        let pos = loop {
            if tries > max_tries {
                return Err(GenError::Recursion("rejection sampling failed in place_obj"));
            }
            tries += 1;
            let x = self.rand_int(top.0, (top.0 + size.0).min(self.grid.width));
            let y = self.rand_int(top.1, (top.1 + size.1).min(self.grid.height));
            if self.grid.get(x, y).is_some() || (x, y) == self.agent_pos {
                continue;
            }
            if reject_next_to_agent && (self.agent_pos.0 - x).abs() + (self.agent_pos.1 - y).abs() < 2 {
                continue;
            }
            break (x, y);
        };
        if let Some(o) = obj {
            self.put_obj(o, pos.0, pos.1);
        }
        Ok(pos)
    }

    // ---- room grid ----

    pub fn room_index(&self, i: i32, j: i32) -> usize {
        (j * self.num_cols + i) as usize
    }

    pub fn room_from_pos(&self, pos: (i32, i32)) -> Option<usize> {
        if pos.0 < 0 || pos.1 < 0 {
            return None;
        }
        let (i, j) = (pos.0 / (self.room_size - 1), pos.1 / (self.room_size - 1));
        (i < self.num_cols && j < self.num_rows).then(|| self.room_index(i, j))
    }

    /// `RoomGrid._gen_grid`: walls of every room, door positions between neighbours (drawn
    /// now), agent in the middle facing right.
    pub fn gen_room_grid(&mut self) {
        let (rs, nr, nc) = (self.room_size, self.num_rows, self.num_cols);
        self.grid = Grid::new((rs - 1) * nc + 1, (rs - 1) * nr + 1);
        self.rooms.clear();
        for j in 0..nr {
            for i in 0..nc {
                let room = Room {
                    top: (i * (rs - 1), j * (rs - 1)),
                    size: (rs, rs),
                    doors: [Opening::None; 4],
                    door_pos: [None; 4],
                    neighbors: [None; 4],
                    locked: false,
                    objs: Vec::new(),
                };
                self.grid.wall_rect(room.top.0, room.top.1, rs, rs);
                self.rooms.push(room);
            }
        }
        for j in 0..nr {
            for i in 0..nc {
                let r = self.room_index(i, j);
                let (top, size) = (self.rooms[r].top, self.rooms[r].size);
                let (xl, yl) = (top.0 + 1, top.1 + 1);
                let (xm, ym) = (top.0 + size.0 - 1, top.1 + size.1 - 1);
                if i < nc - 1 {
                    self.rooms[r].neighbors[0] = Some(self.room_index(i + 1, j));
                    let y = self.rand_int(yl, ym);
                    self.rooms[r].door_pos[0] = Some((xm, y));
                }
                if j < nr - 1 {
                    self.rooms[r].neighbors[1] = Some(self.room_index(i, j + 1));
                    let x = self.rand_int(xl, xm);
                    self.rooms[r].door_pos[1] = Some((x, ym));
                }
                if i > 0 {
                    let n = self.room_index(i - 1, j);
                    self.rooms[r].neighbors[2] = Some(n);
                    self.rooms[r].door_pos[2] = self.rooms[n].door_pos[0];
                }
                if j > 0 {
                    let n = self.room_index(i, j - 1);
                    self.rooms[r].neighbors[3] = Some(n);
                    self.rooms[r].door_pos[3] = self.rooms[n].door_pos[1];
                }
            }
        }
        self.agent_pos = ((nc / 2) * (rs - 1) + rs / 2, (nr / 2) * (rs - 1) + rs / 2);
        self.agent_dir = 0;
    }

    /// `place_in_room`.
    pub fn place_in_room(&mut self, i: i32, j: i32, obj: Obj) -> GenResult<(i32, i32)> {
        let r = self.room_index(i, j);
        let (top, size) = (self.rooms[r].top, self.rooms[r].size);
        let pos = self.place_obj(Some(obj), top, size, true, 1000)?;
        self.rooms[r].objs.push((obj.kind, obj.color));
        Ok(pos)
    }

    /// `add_object`: kind and colour are drawn (in that order) when not given.
    pub fn add_object(&mut self, i: i32, j: i32, kind: Option<Kind>, color: Option<Color>) -> GenResult<Obj> {
        let kind = match kind {
            Some(k) => k,
            None => self.rand_elem(&[Kind::Key, Kind::Ball, Kind::Box]),
        };
        let color = match color {
            Some(c) => c,
            None => self.rand_color(),
        };
        let obj = self.new_obj(kind, color);
        self.place_in_room(i, j, obj)?;
        Ok(obj)
    }

    /// `add_door`: slot, colour and lock state are drawn (in that order) when not given.
    pub fn add_door(
        &mut self,
        i: i32,
        j: i32,
        door_idx: Option<usize>,
        color: Option<Color>,
        locked: Option<bool>,
    ) -> Obj {
        let r = self.room_index(i, j);
        let door_idx = match door_idx {
            Some(d) => d,
            None => loop {
                let d = self.rand_index(4);
                if self.rooms[r].neighbors[d].is_some() && self.rooms[r].doors[d] == Opening::None {
                    break d;
                }
            },
        };
        let color = match color {
            Some(c) => c,
            None => self.rand_color(),
        };
        let locked = match locked {
            Some(l) => l,
            None => self.rand_bool(),
        };
        self.rooms[r].locked = locked;
        let mut door = self.new_obj(Kind::Door, color);
        door.locked = locked;
        if let Some(pos) = self.rooms[r].door_pos[door_idx] {
            self.put_obj(door, pos.0, pos.1);
        }
        self.rooms[r].doors[door_idx] = Opening::Door(door.id);
        if let Some(n) = self.rooms[r].neighbors[door_idx] {
            self.rooms[n].doors[(door_idx + 2) % 4] = Opening::Door(door.id);
        }
        door
    }

    /// `remove_wall` between room (i, j) and its neighbour in slot `wall_idx`.
    pub fn remove_wall(&mut self, i: i32, j: i32, wall_idx: usize) {
        let r = self.room_index(i, j);
        let ((tx, ty), (w, h)) = (self.rooms[r].top, self.rooms[r].size);
        match wall_idx {
            0 => (1..h - 1).for_each(|k| self.grid.set(tx + w - 1, ty + k, None)),
            1 => (1..w - 1).for_each(|k| self.grid.set(tx + k, ty + h - 1, None)),
            2 => (1..h - 1).for_each(|k| self.grid.set(tx, ty + k, None)),
            _ => (1..w - 1).for_each(|k| self.grid.set(tx + k, ty, None)),
        }
        self.rooms[r].doors[wall_idx] = Opening::Removed;
        if let Some(n) = self.rooms[r].neighbors[wall_idx] {
            self.rooms[n].doors[(wall_idx + 2) % 4] = Opening::Removed;
        }
    }

    /// `RoomGrid.place_agent`: in room (i, j) (drawn when `None`), not facing an object.
    pub fn place_agent(&mut self, i: Option<i32>, j: Option<i32>) -> GenResult<(i32, i32)> {
        let i = match i {
            Some(i) => i,
            None => self.rand_int(0, self.num_cols),
        };
        let j = match j {
            Some(j) => j,
            None => self.rand_int(0, self.num_rows),
        };
        let r = self.room_index(i, j);
        let (top, size) = (self.rooms[r].top, self.rooms[r].size);
        loop {
            self.agent_pos = (-1, -1);
            let pos = self.place_obj(None, top, size, false, 1000)?;
            self.agent_pos = pos;
            self.agent_dir = self.rand_int(0, 4) as u8;
            let front = self.front_pos();
            if self.grid.get(front.0, front.1).is_none_or(|c| c.kind == Kind::Wall) {
                return Ok(pos);
            }
        }
    }

    /// `connect_all`: add unlocked doors until every room is reachable from the agent's.
    pub fn connect_all(&mut self) -> GenResult<()> {
        let start = self.room_from_pos(self.agent_pos).unwrap_or(0);
        let n_rooms = self.rooms.len();
        let mut itrs = 0;
        loop {
            if itrs > 5000 {
                return Err(GenError::Recursion("connect_all failed"));
            }
            itrs += 1;
            let mut reach = vec![false; n_rooms];
            let mut stack = vec![start];
            while let Some(r) = stack.pop() {
                if std::mem::replace(&mut reach[r], true) {
                    continue;
                }
                for k in 0..4 {
                    if self.rooms[r].doors[k].is_some()
                        && let Some(n) = self.rooms[r].neighbors[k]
                    {
                        stack.push(n);
                    }
                }
            }
            if reach.iter().all(|&b| b) {
                return Ok(());
            }
            let i = self.rand_int(0, self.num_cols);
            let j = self.rand_int(0, self.num_rows);
            let k = self.rand_index(4);
            let r = self.room_index(i, j);
            if self.rooms[r].door_pos[k].is_none() || self.rooms[r].doors[k].is_some() {
                continue;
            }
            let Some(n) = self.rooms[r].neighbors[k] else { continue };
            if self.rooms[r].locked || self.rooms[n].locked {
                continue;
            }
            let color = self.rand_color();
            self.add_door(i, j, Some(k), Some(color), Some(false));
        }
    }

    /// `add_distractors`: random keys/balls/boxes in room (i, j), or in random rooms.
    pub fn add_distractors(
        &mut self,
        i: Option<i32>,
        j: Option<i32>,
        num: usize,
        all_unique: bool,
    ) -> GenResult<Vec<Obj>> {
        let mut existing: Vec<(Kind, Color)> = self.rooms.iter().flat_map(|r| r.objs.iter().copied()).collect();
        let mut dists = Vec::with_capacity(num);
        while dists.len() < num {
            let color = self.rand_color();
            let kind = self.rand_elem(&[Kind::Key, Kind::Ball, Kind::Box]);
            if all_unique && existing.contains(&(kind, color)) {
                continue;
            }
            let ri = match i {
                Some(i) => i,
                None => self.rand_int(0, self.num_cols),
            };
            let rj = match j {
                Some(j) => j,
                None => self.rand_int(0, self.num_rows),
            };
            let obj = self.add_object(ri, rj, Some(kind), Some(color))?;
            existing.push((kind, color));
            dists.push(obj);
        }
        Ok(dists)
    }

    /// `check_objs_reachable`: every non-wall object can be reached from the agent through
    /// empty cells and doors (of any state).
    pub fn objs_reachable(&self) -> bool {
        let (w, h) = (self.grid.width, self.grid.height);
        let mut reach = vec![false; (w * h) as usize];
        let mut stack = vec![self.agent_pos];
        while let Some((x, y)) = stack.pop() {
            if !self.grid.in_bounds(x, y) || reach[(x + y * w) as usize] {
                continue;
            }
            reach[(x + y * w) as usize] = true;
            if self.grid.get(x, y).is_some_and(|c| c.kind != Kind::Door) {
                continue;
            }
            stack.extend([(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]);
        }
        (0..w).all(|x| {
            (0..h).all(|y| self.grid.get(x, y).is_none_or(|c| c.kind == Kind::Wall) || reach[(x + y * w) as usize])
        })
    }

    /// `check_objs_reachable()` with `raise_exc=True`.
    pub fn check_objs_reachable(&self) -> GenResult<()> {
        if self.objs_reachable() { Ok(()) } else { Err(GenError::Reject("unreachable object".into())) }
    }

    // ---- agent ----

    pub fn front_pos(&self) -> (i32, i32) {
        let (dx, dy) = DIR_TO_VEC[self.agent_dir as usize & 3];
        (self.agent_pos.0 + dx, self.agent_pos.1 + dy)
    }

    /// The egocentric 7×7 view.
    pub fn view(&self) -> View {
        View::new(&self.grid, self.agent_pos, self.agent_dir, self.carrying)
    }

    /// `MiniGridEnv.step`'s world update and its own reward/termination (goal and lava
    /// cells); the mission verdict is the level's business.
    pub fn apply(&mut self, action: Action) -> (f64, bool, bool) {
        self.step_count += 1;
        let (mut reward, mut terminated) = (0.0, false);
        let fwd = self.front_pos();
        let fwd_cell = self.grid.get(fwd.0, fwd.1).copied();
        match action {
            Action::Left => self.agent_dir = (self.agent_dir + 3) % 4,
            Action::Right => self.agent_dir = (self.agent_dir + 1) % 4,
            Action::Forward => {
                if fwd_cell.is_none_or(|c| c.can_overlap()) && self.grid.in_bounds(fwd.0, fwd.1) {
                    self.agent_pos = fwd;
                }
                match fwd_cell.map(|c| c.kind) {
                    Some(Kind::Goal) => {
                        terminated = true;
                        reward = self.success_reward();
                    }
                    Some(Kind::Lava) => terminated = true,
                    _ => {}
                }
            }
            Action::Pickup => {
                if let Some(c) = fwd_cell
                    && c.can_pickup()
                    && self.carrying.is_none()
                {
                    self.carrying = Some(c);
                    self.cur_pos[c.id as usize] = (-1, -1);
                    self.grid.set(fwd.0, fwd.1, None);
                }
            }
            Action::Drop => {
                if fwd_cell.is_none()
                    && self.grid.in_bounds(fwd.0, fwd.1)
                    && let Some(c) = self.carrying.take()
                {
                    self.put_obj(c, fwd.0, fwd.1);
                }
            }
            Action::Toggle => {
                if let Some(c) = fwd_cell {
                    match c.kind {
                        Kind::Door => {
                            let carrying = self.carrying;
                            if let Some(d) = self.grid.get_mut(fwd.0, fwd.1) {
                                if d.locked {
                                    if carrying.is_some_and(|k| k.kind == Kind::Key && k.color == d.color) {
                                        d.locked = false;
                                        d.open = true;
                                    }
                                } else {
                                    d.open = !d.open;
                                }
                            }
                        }
                        // A box is replaced by its contents (BabyAI's boxes are empty).
                        Kind::Box => self.grid.set(fwd.0, fwd.1, None),
                        _ => {}
                    }
                }
            }
            Action::Done => {}
        }
        let truncated = self.step_count >= self.max_steps;
        (reward, terminated, truncated)
    }

    /// `1 - 0.9 * (step_count / max_steps)`.
    pub fn success_reward(&self) -> f64 {
        1.0 - 0.9 * (self.step_count as f64 / self.max_steps as f64)
    }
}
