//! BabyAI-Text's language observation and BALROG's prompt pieces.
//!
//! The descriptions follow the BabyAI-Text fork BALROG installs: what is carried, the nearest
//! wall straight ahead / left / right (only when nothing else is in the way), then every
//! visible object with its offset from the agent, scanned column by column of the 7×7 view.
//! Quirks kept on purpose so the text matches the peer word for word: doors always read
//! "a <state> <colour> door" (also "a open ..."), and a cell straight ahead is "N steps forward".

use crate::grid::{Color, EMPTY, Kind, UNSEEN, VIEW, VIEW_AGENT};
use crate::grid::{Obj, View};

/// BALROG's BabyAI action strings, in MiniGrid's action order (no "done").
pub const BALROG_ACTIONS: [&str; 6] = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle"];

/// BALROG's one-line descriptions of the actions, in the same order.
pub const BALROG_ACTION_HELP: [&str; 6] = [
    "turn to the left",
    "turn to the right",
    "take one step forward",
    "pick up the object below you",
    "drop the object that you are holding",
    "manipulate the object in front of you",
];

/// BALROG's fallback action for a reply that names no valid action.
pub const BALROG_DEFAULT_ACTION: &str = "go forward";

fn plural(n: usize) -> &'static str {
    if n > 1 { "s" } else { "" }
}

fn color_of(idx: u8) -> &'static str {
    [Color::Red, Color::Green, Color::Blue, Color::Purple, Color::Yellow, Color::Grey]
        .get(idx as usize)
        .map_or("?", |c| c.name())
}

fn kind_of(idx: u8) -> &'static str {
    match idx {
        0 => "unseen",
        1 => "empty",
        10 => "agent",
        i => [Kind::Wall, Kind::Floor, Kind::Door, Kind::Key, Kind::Ball, Kind::Box, Kind::Goal, Kind::Lava]
            .get(i as usize - 2)
            .map_or("?", |k| k.name()),
    }
}

/// The fork's `descriptions` list ("You see a wall 2 steps forward", ...).
pub fn descriptions(view: &View, carrying: Option<Obj>) -> Vec<String> {
    let image = view.encode();
    let (ax, ay) = VIEW_AGENT;
    let mut out = Vec::new();
    if let Some(c) = carrying {
        out.push(format!("You carry a {} {}", c.color.name(), c.kind.name()));
    }
    let wall = Kind::Wall.index();
    // The first non-empty seen cell along a ray; a wall is described, anything else stops it.
    let mut ray = |cells: &mut dyn Iterator<Item = (usize, usize, usize)>, dir: &str| {
        for (x, y, dist) in cells {
            let t = image[x][y][0];
            if t == UNSEEN || t == EMPTY {
                continue;
            }
            if t == wall {
                out.push(format!("You see a wall {dist} step{} {dir}", plural(dist)));
            }
            break;
        }
    };
    ray(&mut (0..ay).rev().map(|y| (ax, y, ay - y)), "forward");
    ray(&mut (0..ax).rev().map(|x| (x, ay, ax - x)), "left");
    ray(&mut (ax + 1..VIEW).map(|x| (x, ay, x - ax)), "right");

    for (x, col) in image.iter().enumerate() {
        for (y, cell) in col.iter().enumerate() {
            let [t, c, s] = *cell;
            if t == UNSEEN || t == EMPTY || t == wall || (x, y) == (ax, ay) {
                continue;
            }
            let mut d = if t == Kind::Door.index() {
                let state = ["open", "closed", "locked"].get(s as usize).copied().unwrap_or("?");
                format!("You see a {state} {} {} ", color_of(c), kind_of(t))
            } else {
                format!("You see a {} {} ", color_of(c), kind_of(t))
            };
            let fwd = ay - y;
            let side = if x > ax {
                Some((x - ax, "right"))
            } else if x < ax {
                Some((ax - x, "left"))
            } else {
                None
            };
            match side {
                None => d.push_str(&format!("{fwd} step{} forward", plural(fwd))),
                Some((n, dir)) if fwd == 0 => d.push_str(&format!("{n} step{} {dir}", plural(n))),
                Some((n, dir)) => {
                    d.push_str(&format!("{n} step{} {dir} and {fwd} step{} forward", plural(n), plural(fwd)))
                }
            }
            out.push(d);
        }
    }
    out
}

/// BALROG's long-term context: the descriptions, one per line, without "You see ".
pub fn balrog_context(descriptions: &[String]) -> String {
    descriptions.iter().map(|d| d.replace("You see ", "")).collect::<Vec<_>>().join("\n")
}

/// BALROG's BabyAI instruction prompt (the first user message of an episode) for `mission`.
pub fn balrog_instruction_prompt(mission: &str) -> String {
    let actions: Vec<String> =
        BALROG_ACTIONS.iter().zip(BALROG_ACTION_HELP).map(|(a, h)| format!("{a}: {h}")).collect();
    format!(
        "You are an agent playing a simple navigation game. Your goal is to {mission}. The following are the \
         possible actions you can take in the game, followed by a short description of each action:\n\n{}.\n\n\
         In a moment I will present you an observation.\n\n\
         Tips:\n\
         - Once the desired object you want to interact or pickup in front of you, you can use the 'toggle' \
         action to interact with it.\n\
         - It doesn't make sense to repeat the same action over and over if the observation doesn't change.\n\n\
         PLAY!",
        actions.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_prompt_layout() {
        let p = balrog_instruction_prompt("go to the red ball");
        assert!(
            p.starts_with("You are an agent playing a simple navigation game. Your goal is to go to the red ball. ")
        );
        assert!(p.contains(":\n\nturn left: turn to the left,\nturn right: turn to the right,\n"));
        assert!(p.contains("toggle: manipulate the object in front of you.\n\nIn a moment"));
        assert!(p.ends_with("doesn't change.\n\nPLAY!"));
    }
}
