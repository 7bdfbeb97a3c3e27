//! BALROG's text interface for Baba Is AI: the active rules, every object and word block
//! described by its offset from the "you" object, and the instruction prompt.
//!
//! The wording reproduces BALROG (`balrog/environments/babaisai/`, MIT licence) because model
//! scores are only comparable on identical prompts; the fixture tests compare it with BALROG's
//! own wrapper. Its quirks are kept on purpose: offsets to the left or up always say "step"
//! (the plural test looks at the signed offset), an object on the "you" cell gives an empty line,
//! and baba objects are never listed.

use crate::engine::{Noun, Rule, Tile, Word, World};

/// The action descriptions of BALROG's prompt, in action order.
const ACTION_HELP: [(&str, &str); 5] = [
    ("idle", "wait for one step"),
    ("up", "take one step up"),
    ("right", "take one step to the right"),
    ("down", "take one step down"),
    ("left", "take one step to the left"),
];

/// BALROG's instruction prompt for Baba Is AI (the first user message of an episode).
pub fn balrog_instruction_prompt() -> String {
    let actions = ACTION_HELP.iter().map(|(a, d)| format!("{a}: {d}")).collect::<Vec<_>>().join(",\n");
    format!(
        "Baba Is You is a puzzle game where you can manipulate the rules of each level. The following are the \
possible actions you can take in the game, followed by a short description of each action:

{actions}.

Tips:
- Examine the level carefully, noting all objects and text blocks present.
- Identify the current rules, which are formed by text blocks in the format \"[Subject] IS [Property]\" (e.g. \"BABA IS YOU\").
- Consider how you can change or create new rules by moving text blocks around.
- Remember that you can only move objects or text that are not defined as \"STOP\" or similar immovable properties.
- Your goal is usually to reach an object defined as \"WIN\", but this can be changed.
- Think creatively about how changing rules can alter the properties and behaviors of objects in unexpected ways.
- If stuck, try breaking apart existing rules or forming completely new ones.
- Sometimes the solution involves making yourself a different object or changing what counts as the win condition.

PLAY!"
    )
}

/// The active `noun is property` rules, one per line (`noun is noun` rules are not shown).
pub fn ruleset_text(world: &World) -> String {
    world
        .rules
        .list()
        .iter()
        .filter_map(|r| match r {
            Rule::Prop(n, p) => Some(format!("{} is {}", n.name(), p.name())),
            Rule::Become(..) => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How BALROG names a listed top tile (`None`: not listed).
fn listed_name(tile: &Tile) -> Option<String> {
    match tile {
        Tile::Thing(t) if t.noun != Noun::Baba => Some(t.noun.name().to_string()),
        Tile::Word(w @ (Word::Noun(_) | Word::Is | Word::Prop(_))) => Some(format!("rule `{}`", w.text())),
        _ => None,
    }
}

fn describe(name: &str, dx: i32, dy: i32) -> String {
    // BALROG's plural test is `v > 1` on the signed offset, so left/up offsets always read "step".
    let unit = |v: i32| if v > 1 { "steps" } else { "step" };
    let horizontal = match dx {
        0 => String::new(),
        d if d > 0 => format!("{d} {} to the right", unit(d)),
        d => format!("{} {} to the left", -d, unit(d)),
    };
    let vertical = match dy {
        0 => String::new(),
        d if d > 0 => format!("{d} {} down", unit(d)),
        d => format!("{} {} up", -d, unit(d)),
    };
    match (horizontal.is_empty(), vertical.is_empty()) {
        (false, false) => format!("{name} {horizontal} and {vertical}"),
        (false, true) => format!("{name} {horizontal}"),
        (true, false) => format!("{name} {vertical}"),
        (true, true) => String::new(),
    }
}

/// The object list relative to the first "you" object (row-major), or `None` when no object
/// is "you" (BALROG then resets the level).
pub fn objects_text(world: &World) -> Option<String> {
    let you = world.rules.you()?;
    let origin = world.grid.tops().find_map(|(x, y, t)| match t {
        Tile::Thing(th) if th.noun == you => Some((x, y)),
        _ => None,
    })?;
    let lines: Vec<String> = world
        .grid
        .tops()
        .filter_map(|(x, y, t)| listed_name(t).map(|n| describe(&n, x - origin.0, y - origin.1)))
        .collect();
    Some(lines.join("\n"))
}

/// The text BALROG's wrapper gives the model for a state with a "you" object.
pub fn observation_text(rules: &str, objects: &str) -> String {
    format!("Active rules:\n{rules}\n\nObjects on the map:\n{objects}")
}

/// The prefix BALROG puts before the rules when the last step left no "you" object and the
/// level was reset.
pub const YOU_LOST_PREFIX: &str = "[...] IS YOU rule was broken, environment reset";
