//! Invariants (proptest) and hand-built engine cases.

use proptest::prelude::*;
use vldac_babaisai::engine::{Act, Grid, Noun, Prop, Rule, Thing, Tile, Word, World};
use vldac_babaisai::{BabaIsAi, Config, TASKS, make};
use vldac_core::rng::RandomState;
use vldac_core::{Action, EnvError, Environment};

fn count(w: &World, f: impl Fn(&Tile) -> bool) -> usize {
    (0..w.grid.height as i32)
        .flat_map(|y| (0..w.grid.width as i32).map(move |x| (x, y)))
        .map(|(x, y)| w.grid.stack(x, y).iter().filter(|t| f(t)).count())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any task, seed and action sequence: no panic, words and borders are conserved, rewards are
    /// the peer's (0, or 1 - 0.9 t/T on a win: no BALROG task has a "lose" word), an episode
    /// without in-place resets ends by step T, and the text has one line per listed tile.
    #[test]
    fn random_play_keeps_invariants(task in 0..TASKS.len(), seed in any::<u64>(), acts in prop::collection::vec(0usize..5, 1..160)) {
        let mut env = BabaIsAi::new(&TASKS[task], Config { tile_size: 0, ..Config::default() });
        env.reset(Some(seed)).unwrap();
        let w0 = env.world().unwrap().clone();
        let words = count(&w0, |t| matches!(t, Tile::Word(_)));
        let borders = count(&w0, |t| matches!(t, Tile::Border));
        let mut resets = 0;
        for (k, &a) in acts.iter().enumerate() {
            let before = env.world().unwrap().clone();
            let s = env.step(&Action::Discrete(a)).unwrap();
            let w = env.world().unwrap();
            if s.info.contains_key("you_lost_reset") {
                resets += 1;
            } else {
                prop_assert_eq!(count(w, |t| matches!(t, Tile::Word(_))), words);
                if a == 0 {
                    prop_assert_eq!(&w.grid, &before.grid, "idle changed the grid");
                }
            }
            prop_assert_eq!(count(w, |t| matches!(t, Tile::Border)), borders);
            if s.reward != 0.0 {
                prop_assert!(s.terminated);
                prop_assert_eq!(s.reward, 1.0 - 0.9 * (w.step_count as f64 / 100.0));
            }
            prop_assert!(!(s.terminated && s.truncated));
            if resets == 0 {
                prop_assert!(k < 100);
                prop_assert_eq!(s.truncated, k + 1 == 100 && !s.terminated);
            }
            let text = s.obs.text.unwrap();
            let objects = text.split("Objects on the map:\n").nth(1).unwrap();
            let listed = w.grid.tops().filter(|(_, _, t)| match t {
                Tile::Thing(th) => th.noun != Noun::Baba,
                Tile::Word(_) => true,
                Tile::Border => false,
            }).count();
            prop_assert_eq!(objects.split('\n').count(), listed.max(1));
            if s.terminated || s.truncated {
                prop_assert_eq!(s.info["progression"].as_f64(), Some(if s.reward > 0.0 { 1.0 } else { 0.0 }));
                let after = env.step(&Action::Discrete(0));
                prop_assert!(matches!(after, Err(EnvError::NeedsReset { .. })), "step after the end: {:?}", after.map(|s| s.reward));
                break;
            }
        }
    }

    /// The same seed gives the same level and text; `reset(None)` continues the generator.
    #[test]
    fn seeding_is_deterministic(task in 0..TASKS.len(), seed in any::<u64>()) {
        let mut a = BabaIsAi::new(&TASKS[task], Config { tile_size: 0, ..Config::default() });
        let mut b = BabaIsAi::new(&TASKS[task], Config { tile_size: 0, ..Config::default() });
        let (oa, _) = a.reset(Some(seed)).unwrap();
        let (ob, _) = b.reset(Some(seed)).unwrap();
        prop_assert_eq!(oa.text, ob.text);
        prop_assert_eq!(&a.world().unwrap().grid, &b.world().unwrap().grid);
        a.reset(None).unwrap();
        b.reset(None).unwrap();
        prop_assert_eq!(&a.world().unwrap().grid, &b.world().unwrap().grid);
    }
}

/// A 7×5 room with the given interior tiles.
fn room(tiles: &[((i32, i32), Tile)]) -> World {
    let mut g = Grid::new(7, 5);
    g.wall_rect();
    for &(p, t) in tiles {
        g.push(p.0, p.1, t);
    }
    World::new(g, 100, &mut RandomState::new(0))
}

fn w(word: Word) -> Tile {
    Tile::Word(word)
}

fn thing(n: Noun) -> Tile {
    Tile::Thing(Thing::new(n, n.default_color()))
}

const BABA_IS_YOU: [((i32, i32), Tile); 3] = [
    ((1, 3), Tile::Word(Word::Noun(Noun::Baba))),
    ((2, 3), Tile::Word(Word::Is)),
    ((3, 3), Tile::Word(Word::Prop(Prop::You))),
];

#[test]
fn push_chain_moves_until_the_border() {
    let mut tiles = BABA_IS_YOU.to_vec();
    tiles.extend([((1, 1), thing(Noun::Baba)), ((2, 1), w(Word::Is)), ((3, 1), w(Word::Noun(Noun::Key)))]);
    let mut world = room(&tiles);
    world.step(Act::Right);
    assert_eq!(world.agent_pos, (2, 1));
    assert_eq!(world.grid.top(4, 1), Some(&w(Word::Noun(Noun::Key))));
    world.step(Act::Right);
    world.step(Act::Right); // The chain now touches the border: nothing moves.
    assert_eq!(world.agent_pos, (3, 1));
    assert_eq!(world.grid.top(5, 1), Some(&w(Word::Noun(Noun::Key))));
}

#[test]
fn making_a_win_rule_then_winning() {
    let mut tiles = BABA_IS_YOU.to_vec();
    tiles.extend([
        ((2, 1), w(Word::Noun(Noun::Ball))),
        ((3, 1), w(Word::Is)),
        ((4, 2), w(Word::Prop(Prop::Win))),
        ((4, 3), thing(Noun::Baba)),
        ((5, 2), thing(Noun::Ball)),
    ]);
    let mut world = room(&tiles);
    assert_eq!(world.rules.list(), &[Rule::Prop(Noun::Baba, Prop::You)]);
    // Pushing `win` up completes `ball is win` on row 1.
    let out = world.step(Act::Up);
    assert!(!out.win);
    assert_eq!(world.agent_pos, (4, 2));
    assert_eq!(world.rules.list(), &[Rule::Prop(Noun::Ball, Prop::Win), Rule::Prop(Noun::Baba, Prop::You)]);
    let out = world.step(Act::Right);
    assert!(out.win && !out.lose);
    assert_eq!(out.reward, 1.0 - 0.9 * (2.0 / 100.0));
}

#[test]
fn breaking_baba_is_you_freezes_baba() {
    let mut g = Grid::new(7, 6);
    g.wall_rect();
    g.push(1, 2, w(Word::Noun(Noun::Baba)));
    g.push(2, 2, w(Word::Is));
    g.push(3, 2, w(Word::Prop(Prop::You)));
    g.push(2, 1, thing(Noun::Baba));
    let mut world = World::new(g, 100, &mut RandomState::new(0));
    world.step(Act::Down);
    assert_eq!(world.grid.top(2, 3), Some(&w(Word::Is)));
    assert!(world.rules.list().is_empty());
    assert!(world.you_positions().is_empty());
    let before = world.grid.clone();
    world.step(Act::Up);
    assert_eq!(world.grid, before, "nothing is you, nothing moves");
}

#[test]
fn stop_blocks_and_win_rewards() {
    let mut tiles = BABA_IS_YOU.to_vec();
    tiles.extend([
        ((1, 1), thing(Noun::Baba)),
        ((2, 1), thing(Noun::Wall)),
        ((4, 2), w(Word::Noun(Noun::Wall))),
        ((5, 2), w(Word::Is)),
        // `stop` sits on the row below `is`: vertically `is` (5,2) has (5,1) above and (5,3) below.
        ((5, 3), w(Word::Prop(Prop::Stop))),
        ((5, 1), w(Word::Noun(Noun::Wall))),
    ]);
    let mut world = room(&tiles);
    assert!(world.rules.has(Noun::Wall, Prop::Stop));
    world.step(Act::Right);
    assert_eq!(world.agent_pos, (1, 1), "a stop wall blocks");
    // `wall is win` instead: walking onto the wall wins with the peer's reward.
    let mut tiles = BABA_IS_YOU.to_vec();
    tiles.extend([
        ((1, 1), thing(Noun::Baba)),
        ((2, 1), thing(Noun::Wall)),
        ((4, 1), w(Word::Noun(Noun::Wall))),
        ((4, 2), w(Word::Is)),
        ((4, 3), w(Word::Prop(Prop::Win))),
    ]);
    let mut world = room(&tiles);
    world.step(Act::Idle);
    let out = world.step(Act::Right);
    assert!(out.win);
    assert_eq!(out.reward, 1.0 - 0.9 * (2.0 / 100.0));
}

#[test]
fn bad_actions_are_errors_and_ids_resolve() {
    let mut env = make("env/goto_win").unwrap();
    assert!(matches!(env.step(&Action::Discrete(0)), Err(EnvError::NeedsReset { .. })));
    env.reset(Some(1)).unwrap();
    assert!(matches!(env.step(&Action::Discrete(5)), Err(EnvError::InvalidAction { .. })));
    assert!(matches!(env.step(&Action::Text("jump".into())), Err(EnvError::InvalidAction { .. })));
    assert!(env.step(&Action::Text("Left".into())).is_ok());
    assert!(matches!(make("BabaIsAI-nope-v0"), Err(EnvError::UnknownId { .. })));
    for t in vldac_babaisai::BALROG_TASKS {
        let id = vldac_babaisai::id_for_balrog_task(t).unwrap_or_else(|| panic!("{t} is not registered"));
        assert!(make(&id).is_ok());
    }
}

#[test]
fn frame_has_grid_size_and_shows_the_level() {
    let mut env = make("BabaIsAI-two_room-make_win-v0").unwrap();
    let (obs, _) = env.reset(Some(4)).unwrap();
    let f = obs.frames.last().unwrap();
    assert_eq!((f.width(), f.height()), (13 * 32, 9 * 32));
    // Border cells are grey; some cell interior is neither black nor grey (objects, words).
    assert_eq!(f.get(16, 16), Some([100, 100, 100]));
    let colours: std::collections::HashSet<[u8; 3]> =
        (0..f.height()).flat_map(|y| (0..f.width()).map(move |x| (x, y))).filter_map(|(x, y)| f.get(x, y)).collect();
    assert!(colours.len() >= 5, "only {} colours drawn", colours.len());
    let (again, _) = env.reset(Some(4)).unwrap();
    assert_eq!(again.frames.last(), Some(f));
}
