//! Engine parity on crowded random layouts with every property word (push, pull, move, stop,
//! win, lose, open, shut, you and `noun is noun`), recorded from the bare peer env by
//! `fixtures/gen_fixtures.py` into `fixtures/engine.json`: after every random action the agent
//! position, reward, done flag, a hash of every cell's stack and the full rule list must match.

mod common;

use common::{fnv1a, grid_code};
use serde_json::Value;
use vldac_babaisai::engine::{Act, Color, Grid, Noun, Prop, Rule, Thing, Tile, Word, World};
use vldac_core::rng::RandomState;

fn parse_tile(tok: &str) -> Tile {
    let parts: Vec<&str> = tok.split(':').collect();
    match parts.as_slice() {
        ["t", noun, color] => Tile::Thing(Thing::new(
            Noun::from_name(noun).unwrap_or_else(|| panic!("noun {noun}")),
            Color::from_name(color).unwrap_or_else(|| panic!("color {color}")),
        )),
        ["w", "is"] => Tile::Word(Word::Is),
        ["w", w] => match Noun::from_name(w) {
            Some(n) => Tile::Word(Word::Noun(n)),
            None => Tile::Word(Word::Prop(Prop::from_name(w).unwrap_or_else(|| panic!("word {w}")))),
        },
        _ => panic!("bad token {tok}"),
    }
}

fn rules_text(w: &World) -> String {
    w.rules
        .list()
        .iter()
        .map(|r| match r {
            Rule::Prop(n, p) => format!("{} is {}", n.name(), p.name()),
            Rule::Become(a, b) => format!("{} is {}", a.name(), b.name()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn crowded_layouts_match_the_peer() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/engine.json");
    let f: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read engine.json")).expect("JSON");
    let episodes = f["episodes"].as_array().unwrap();
    assert!(episodes.len() >= 100);
    let (mut steps, mut with_rules) = (0, std::collections::HashSet::new());
    for (i, ep) in episodes.iter().enumerate() {
        let (w, h) = (ep["width"].as_u64().unwrap() as usize, ep["height"].as_u64().unwrap() as usize);
        let mut grid = Grid::new(w, h);
        grid.wall_rect();
        for item in ep["layout"].as_array().unwrap() {
            let (x, y) = (item[0].as_i64().unwrap() as i32, item[1].as_i64().unwrap() as i32);
            grid.push(x, y, parse_tile(item[2].as_str().unwrap()));
        }
        let mut rng = RandomState::new(ep["seed"].as_u64().unwrap());
        let mut world = World::new(grid, 100, &mut rng);
        assert_eq!(grid_code(&world.grid), ep["grid"].as_str().unwrap(), "scenario {i}: initial grid");
        for (k, s) in ep["steps"].as_array().unwrap().iter().enumerate() {
            let at = format!("scenario {i} step {}", k + 1);
            let act = Act::from_index(s[0].as_u64().unwrap() as usize).unwrap();
            let out = world.step(act);
            assert_eq!(
                (world.agent_pos.0 as i64, world.agent_pos.1 as i64),
                (s[1].as_i64().unwrap(), s[2].as_i64().unwrap()),
                "{at}: agent position"
            );
            let want = s[3].as_f64().unwrap();
            assert!((out.reward - want).abs() < 1e-12, "{at}: reward {} vs {want}", out.reward);
            assert_eq!(out.win || out.lose || out.timeout, s[4].as_bool().unwrap(), "{at}: done");
            assert_eq!(fnv1a(&grid_code(&world.grid)), s[5].as_str().unwrap(), "{at}: grid {}", grid_code(&world.grid));
            assert_eq!(rules_text(&world), s[6].as_str().unwrap(), "{at}: rules");
            for r in world.rules.list() {
                with_rules.insert(match r {
                    Rule::Prop(_, p) => p.name().to_string(),
                    Rule::Become(..) => "become".to_string(),
                });
            }
            steps += 1;
        }
    }
    eprintln!("{} scenarios, {steps} steps matched; rule kinds seen: {with_rules:?}", episodes.len());
    // The scenarios must exercise more than BALROG's you/win/stop.
    for kind in ["push", "pull", "move", "lose", "become"] {
        assert!(with_rules.contains(kind), "no scenario step had a `{kind}` rule");
    }
}
