//! The task registry: the peer's env names, BALROG's 40-task suite, and our ids
//! (`BabaIsAI-<peer name>-v0`, e.g. `BabaIsAI-two_room-break_stop-make_win-v0`).

use crate::levels::{Distractors, Layout, Region};

/// One registered task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// The peer's name without its `env/` prefix, e.g. `goto_win-distr_obj`.
    pub name: &'static str,
    pub layout: Layout,
}

impl Task {
    /// Our environment id.
    pub fn id(&self) -> String {
        format!("BabaIsAI-{}-v0", self.name)
    }

    /// The peer's (and BALROG's) task name, e.g. `env/goto_win`.
    pub fn peer_name(&self) -> String {
        format!("env/{}", self.name)
    }
}

const fn d(break_win: bool, obj: bool, rule: bool, irrelevant_rule: bool, win_rule: bool) -> Distractors {
    Distractors { break_win, obj, rule, irrelevant_rule, win_rule }
}

const fn one(name: &'static str, dist: Distractors) -> Task {
    Task { name, layout: Layout::OneRoom(dist) }
}

const fn two(name: &'static str, dist: Distractors, break_stop: bool, obj1: Region, obj2: Region) -> Task {
    Task { name, layout: Layout::TwoRoom { d: dist, break_stop, obj1, obj2 } }
}

use Region::{Anywhere as ANY, LeftAnywhere as LEFT, RightAnywhere as RIGHT};

/// Every task the crate implements: BALROG's 40 plus the peer's `goto_win-distr_win_rule`.
pub const TASKS: &[Task] = &[
    // One room, 8×8.
    one("goto_win", d(false, false, false, false, false)),
    one("goto_win-distr_obj", d(false, true, false, false, false)),
    one("goto_win-distr_rule", d(false, false, true, false, false)),
    one("goto_win-distr_obj_rule", d(false, true, true, false, false)),
    one("goto_win-distr_obj-irrelevant_rule", d(false, true, true, true, false)),
    one("goto_win-distr_win_rule", d(false, true, true, false, true)),
    one("make_win", d(true, false, false, false, false)),
    one("make_win-distr_obj", d(true, true, false, false, false)),
    one("make_win-distr_rule", d(true, false, true, false, false)),
    one("make_win-distr_obj_rule", d(true, true, true, false, false)),
    one("make_win-distr_obj-irrelevant_rule", d(true, true, true, true, false)),
    // Two rooms, 13×9, win object in the left room, "wall is stop" broken.
    two("two_room-goto_win", d(false, false, false, false, false), true, LEFT, LEFT),
    two("two_room-goto_win-distr_obj", d(false, true, false, false, false), true, LEFT, LEFT),
    two("two_room-goto_win-distr_rule", d(false, false, true, false, false), true, LEFT, LEFT),
    two("two_room-goto_win-distr_obj_rule", d(false, true, true, false, false), true, LEFT, LEFT),
    two("two_room-goto_win-distr_obj-irrelevant_rule", d(false, true, true, true, false), true, LEFT, LEFT),
    two("two_room-goto_win-distr_win_rule", d(false, true, true, false, true), true, LEFT, LEFT),
    // Win object in the right room behind the wall: break "wall is stop" first.
    two("two_room-break_stop-goto_win", d(false, false, false, false, false), false, RIGHT, RIGHT),
    two("two_room-break_stop-goto_win-distr_obj", d(false, true, false, false, false), false, RIGHT, RIGHT),
    two("two_room-break_stop-goto_win-distr_rule", d(false, false, true, false, false), false, RIGHT, RIGHT),
    two("two_room-break_stop-goto_win-distr_obj_rule", d(false, true, true, false, false), false, RIGHT, RIGHT),
    two(
        "two_room-break_stop-goto_win-distr_obj-irrelevant_rule",
        d(false, true, true, true, false),
        false,
        RIGHT,
        RIGHT,
    ),
    // Win object anywhere.
    two("two_room-maybe_break_stop-goto_win", d(false, false, false, false, false), false, ANY, ANY),
    two("two_room-maybe_break_stop-goto_win-distr_obj", d(false, true, false, false, false), false, ANY, ANY),
    two("two_room-maybe_break_stop-goto_win-distr_rule", d(false, false, true, false, false), false, ANY, ANY),
    two("two_room-maybe_break_stop-goto_win-distr_obj_rule", d(false, true, true, false, false), false, ANY, ANY),
    two(
        "two_room-maybe_break_stop-goto_win-distr_obj-irrelevant_rule",
        d(false, true, true, true, false),
        false,
        ANY,
        ANY,
    ),
    // Win rule broken, wall passable.
    two("two_room-make_win", d(true, false, false, false, false), true, LEFT, LEFT),
    two("two_room-make_win-distr_obj", d(true, true, false, false, false), true, LEFT, LEFT),
    two("two_room-make_win-distr_rule", d(true, false, true, false, false), true, LEFT, LEFT),
    two("two_room-make_win-distr_obj_rule", d(true, true, true, false, false), true, LEFT, LEFT),
    two("two_room-make_win-distr_obj-irrelevant_rule", d(true, true, true, true, false), true, LEFT, LEFT),
    two("two_room-make_win-distr_win_rule", d(true, true, true, false, true), true, LEFT, LEFT),
    // Win rule broken and the wall stops baba.
    two("two_room-break_stop-make_win", d(true, false, false, false, false), false, RIGHT, RIGHT),
    two("two_room-break_stop-make_win-distr_obj", d(true, true, false, false, false), false, RIGHT, RIGHT),
    two("two_room-break_stop-make_win-distr_rule", d(true, false, true, false, false), false, RIGHT, RIGHT),
    two("two_room-break_stop-make_win-distr_obj_rule", d(true, true, true, false, false), false, RIGHT, RIGHT),
    two(
        "two_room-break_stop-make_win-distr_obj-irrelevant_rule",
        d(true, true, true, true, false),
        false,
        RIGHT,
        RIGHT,
    ),
    // Rule-of-self tasks.
    Task { name: "two_room-make_you", layout: Layout::MakeYou { break_win: false } },
    Task { name: "two_room-make_you-make_win", layout: Layout::MakeYou { break_win: true } },
    Task { name: "two_room-make_wall_win", layout: Layout::MakeWallWin },
];

/// BALROG's Baba Is AI suite (`balrog/config/config.yaml`, `babaisai_tasks`), in its order.
pub const BALROG_TASKS: [&str; 40] = [
    "env/make_win-distr_obj_rule",
    "env/goto_win-distr_obj_rule",
    "env/goto_win",
    "env/goto_win-distr_obj",
    "env/goto_win-distr_rule",
    "env/goto_win-distr_obj-irrelevant_rule",
    "env/make_win-distr_obj",
    "env/make_win-distr_rule",
    "env/make_win",
    "env/make_win-distr_obj-irrelevant_rule",
    "env/two_room-goto_win",
    "env/two_room-goto_win-distr_obj_rule",
    "env/two_room-goto_win-distr_rule",
    "env/two_room-goto_win-distr_obj",
    "env/two_room-goto_win-distr_obj-irrelevant_rule",
    "env/two_room-goto_win-distr_win_rule",
    "env/two_room-break_stop-goto_win-distr_obj_rule",
    "env/two_room-break_stop-goto_win-distr_obj",
    "env/two_room-break_stop-goto_win-distr_rule",
    "env/two_room-break_stop-goto_win-distr_obj-irrelevant_rule",
    "env/two_room-break_stop-goto_win",
    "env/two_room-maybe_break_stop-goto_win-distr_obj_rule",
    "env/two_room-maybe_break_stop-goto_win",
    "env/two_room-maybe_break_stop-goto_win-distr_obj",
    "env/two_room-maybe_break_stop-goto_win-distr_rule",
    "env/two_room-maybe_break_stop-goto_win-distr_obj-irrelevant_rule",
    "env/two_room-make_win-distr_obj_rule",
    "env/two_room-make_win-distr_rule",
    "env/two_room-make_win",
    "env/two_room-make_win-distr_obj-irrelevant_rule",
    "env/two_room-make_win-distr_obj",
    "env/two_room-make_win-distr_win_rule",
    "env/two_room-break_stop-make_win-distr_obj_rule",
    "env/two_room-break_stop-make_win-distr_rule",
    "env/two_room-break_stop-make_win",
    "env/two_room-break_stop-make_win-distr_obj-irrelevant_rule",
    "env/two_room-break_stop-make_win-distr_obj",
    "env/two_room-make_you",
    "env/two_room-make_you-make_win",
    "env/two_room-make_wall_win",
];

/// Finds a task by our id (`BabaIsAI-goto_win-v0`) or the peer's name (`env/goto_win`).
pub fn find(id: &str) -> Option<&'static Task> {
    let name = id.strip_prefix("BabaIsAI-").and_then(|s| s.strip_suffix("-v0")).or_else(|| id.strip_prefix("env/"))?;
    TASKS.iter().find(|t| t.name == name)
}

/// All our ids, in registry order.
pub fn ids() -> Vec<String> {
    TASKS.iter().map(Task::id).collect()
}

/// Our id for a BALROG task name (`env/goto_win` → `BabaIsAI-goto_win-v0`).
pub fn id_for_balrog_task(task: &str) -> Option<String> {
    find(task).map(Task::id)
}
