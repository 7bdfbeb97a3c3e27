//! The native WebShop as a `vldac_core::Environment`: observations (page text, admissible
//! commands, rendered page, task), the prompt, episode ends, bad actions; and invariants of the
//! fuzzy matcher and the reward.

use std::sync::Arc;

use proptest::prelude::*;
use vldac_core::{Action, EnvError, Environment, PromptVersion, TimeLimit};
use vldac_textenv::webshop::FuzzVersion;
use vldac_textenv::webshop::fuzz::{full_process, token_set_ratio, token_set_ratio_with};
use vldac_textenv::webshop::seqmatch::{Match, SequenceMatcher};
use vldac_textenv::webshop::{Goal, GoalSplit, PageKind, Shop, WebShopConfig, WebShopEnv, get_reward};

fn env() -> WebShopEnv {
    WebShopEnv::new(WebShopConfig::bundled()).unwrap()
}

fn click(s: &str) -> Action {
    Action::Text(format!("click[{s}]"))
}

#[test]
fn an_episode_from_search_to_purchase() {
    let mut e = env();
    let (obs, info) = e.reset(Some(3)).unwrap();
    let goal_asin = info["goal_asin"].as_str().unwrap().to_string();
    assert!(!obs.task.is_empty());
    assert_eq!(obs.admissible, vec!["search[<query>]".to_string()]);
    assert_eq!(obs.frames.len(), 1);
    assert_eq!((obs.frames[0].width(), obs.frames[0].height()), (512, 512));
    let prompt = e.prompt_text(&obs, PromptVersion::V1);
    assert!(prompt.contains(&format!("# Your Goal:\n{}", obs.task)));
    assert!(prompt.contains("search[<query>]"));

    let query = e.session().unwrap().goal.query.clone();
    let s = e.step(&Action::Text(format!("search[{query}]"))).unwrap();
    assert!(s.info["valid_action"] == true && !s.done());
    assert!(s.obs.text.as_deref().unwrap().contains("Page 1 (Total results:"));
    let target = format!("click[{}]", goal_asin.to_lowercase());
    assert!(s.obs.admissible.contains(&target), "{:?}", s.obs.admissible);
    assert_ne!(s.obs.frames[0], obs.frames[0], "the rendered page changes with the page");

    let s = e.step(&Action::Text(target)).unwrap();
    assert!(s.obs.admissible.contains(&"click[buy now]".to_string()));
    let goal = e.session().unwrap().goal.clone();
    for o in &goal.goal_options {
        if s.obs.admissible.contains(&format!("click[{o}]")) {
            e.step(&click(o)).unwrap();
        }
    }
    let s = e.step(&click("buy now")).unwrap();
    assert!(s.terminated && !s.truncated);
    assert!(s.reward > 0.0 && s.reward <= 1.0);
    assert_eq!(s.info["reward_info"]["r_type"], 1.0);
    assert!(e.step(&click("buy now")).is_err(), "step after the purchase needs a reset");
}

/// Buying for a goal that the official `get_reward` raises on is an error naming the field, and
/// the session stays on the item page (no invented reward).
#[test]
fn buying_for_an_unscorable_goal_is_an_error() {
    for (field, edit) in [
        ("`attributes`", (|g: &mut Goal| g.attributes.clear()) as fn(&mut Goal)),
        ("`price_upper`", |g: &mut Goal| g.price_upper = 0.0),
        ("`price_upper`", |g: &mut Goal| g.price_upper = f64::NAN),
    ] {
        let mut e = env();
        e.reset(Some(3)).unwrap();
        let mut goal = e.session().unwrap().goal.clone();
        edit(&mut goal);
        let asin = goal.asin.to_lowercase();
        let query = goal.query.clone();
        e.reset_with_goal(goal);
        e.step(&Action::Text(format!("search[{query}]"))).unwrap();
        e.step(&click(&asin)).unwrap();
        let err = e.step(&click("buy now")).expect_err("the official code raises here");
        assert!(matches!(err, EnvError::Config { .. }) && err.to_string().contains(field), "{err}");
        assert_eq!(e.session().unwrap().page, PageKind::Item);
        assert!(e.session().unwrap().reward.is_none());
    }
}

/// thefuzz 0.22.1 is chosen by name in the config; 0.19.0 (the official pin) is the default.
#[test]
fn the_fuzzy_matcher_release_is_chosen_by_name() {
    let mut v = serde_json::to_value(WebShopConfig::bundled()).unwrap();
    assert_eq!(v["fuzz"], "0.19.0");
    v.as_object_mut().unwrap().remove("fuzz");
    let cfg: WebShopConfig = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(cfg.fuzz, FuzzVersion::Thefuzz019);
    v["fuzz"] = "0.22.1".into();
    let cfg: WebShopConfig = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(cfg.fuzz, FuzzVersion::Thefuzz0221);
    v["fuzz"] = "0.20.0".into();
    assert!(serde_json::from_value::<WebShopConfig>(v).is_err());
    let mut e = WebShopEnv::new(cfg).unwrap();
    e.reset(Some(3)).unwrap();
    assert_eq!(e.session().unwrap().fuzz, FuzzVersion::Thefuzz0221);
}

#[test]
fn bad_actions_are_no_ops_not_errors() {
    let mut e = env();
    let (obs, _) = e.reset(Some(0)).unwrap();
    for bad in ["", "buy it", "click[buy now]", "search[]", "Search[shoes]", "click[search]"] {
        let s = e.step(&Action::Text(bad.into())).unwrap();
        assert_eq!(s.info["valid_action"], false, "{bad:?}");
        assert_eq!(s.reward, 0.0);
        assert_eq!(s.obs.text, obs.text);
    }
    assert!(e.step(&Action::Discrete(0)).is_err());
}

#[test]
fn seeds_reproduce_goals_and_splits_are_checked() {
    let (mut a, mut b) = (env(), env());
    for seed in 0..5 {
        assert_eq!(a.reset(Some(seed)).unwrap().0, b.reset(Some(seed)).unwrap().0);
    }
    let mut cfg = WebShopConfig::bundled();
    cfg.split = GoalSplit::Eval; // goals 500..1500: the bundled catalogue has 21
    let err = WebShopEnv::new(cfg.clone()).err().unwrap().to_string();
    assert!(err.contains("selects no goals"), "{err}");
    cfg.products = "/nonexistent/items.json".into();
    let err = WebShopEnv::new(cfg).err().unwrap().to_string();
    assert!(err.contains("/nonexistent/items.json"), "{err}");
}

#[test]
fn time_limit_truncates_and_shop_is_shared() {
    let shop = Arc::new(Shop::load(&WebShopConfig::bundled()).unwrap());
    let inner = WebShopEnv::with_shop(shop.clone(), WebShopConfig::bundled()).unwrap();
    let mut e = TimeLimit::new(inner, 2);
    e.reset(Some(1)).unwrap();
    assert!(!e.step(&Action::Text("search[boots]".into())).unwrap().done());
    let s = e.step(&click("next >")).unwrap();
    assert!(s.truncated && !s.terminated);
    assert_eq!(Arc::strong_count(&shop), 2);
}

fn lcs(a: &[char], b: &[char]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    for &x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        prev = cur;
    }
    prev[b.len()]
}

proptest! {
    #[test]
    fn token_set_ratio_is_a_percentage(a in "[a-zA-Z0-9 ,._-]{0,24}", b in "[a-zA-Z0-9 ,._-]{0,24}") {
        // thefuzz 0.19.0 (difflib's greedy matcher) is not symmetric: "dea" vs "edcee " is 50 one
        // way and 25 the other. 0.22.1 (an optimal Indel similarity) is.
        let r = token_set_ratio(&a, &b);
        prop_assert!((0..=100).contains(&r));
        let has_word = a.chars().any(|c| c.is_ascii_alphanumeric() || c == '_');
        prop_assert_eq!(token_set_ratio(&a, &a), if has_word { 100 } else { 0 });
        let legacy = token_set_ratio_with(FuzzVersion::Thefuzz0221, &a, &b);
        prop_assert!((0..=100).contains(&legacy));
        prop_assert_eq!(legacy, token_set_ratio_with(FuzzVersion::Thefuzz0221, &b, &a));
    }

    #[test]
    fn token_set_ratio_of_any_text_is_bounded_and_reflexive(a in "\\PC{0,16}", b in "\\PC{0,16}") {
        let r = token_set_ratio(&a, &b);
        prop_assert!((0..=100).contains(&r));
        let self_score = if full_process(&a).is_empty() { 0 } else { 100 };
        prop_assert_eq!(token_set_ratio(&a, &a), self_score);
    }

    #[test]
    fn sequence_matcher_blocks_are_matches(a in "[abc ]{0,40}", b in "[abc ]{0,260}") {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let m = SequenceMatcher::new(&a, &b);
        let blocks = m.matching_blocks();
        let last = blocks.last().copied();
        prop_assert_eq!(last, Some(Match { a: a.len(), b: b.len(), size: 0 }));
        let mut ends = (0, 0);
        for blk in &blocks[..blocks.len() - 1] {
            prop_assert!(blk.size > 0 && blk.a >= ends.0 && blk.b >= ends.1);
            prop_assert_eq!(&a[blk.a..blk.a + blk.size], &b[blk.b..blk.b + blk.size]);
            ends = (blk.a + blk.size, blk.b + blk.size);
        }
        let r = m.ratio();
        prop_assert!((0.0..=1.0).contains(&r));
        prop_assert!(m.matches() <= a.len().min(b.len()));
        prop_assert_eq!(SequenceMatcher::new(&a, &a).ratio(), 1.0);
        // The greedy matcher (with or without the popularity heuristic) never beats an LCS.
        let full = SequenceMatcher::with_autojunk(&a, &b, false).matches();
        let best = lcs(&a, &b);
        prop_assert!(m.matches() <= best && full <= best, "{} {} {}", m.matches(), full, best);
    }

    #[test]
    fn reward_is_in_unit_interval(goal_i in 0usize..21, prod_i in 0usize..17, price in 0.0f64..200.0, pick in 0usize..4) {
        let shop = Shop::load(&WebShopConfig::bundled()).unwrap();
        let cat = &shop.catalogue;
        let goal = &cat.goals[goal_i % cat.goals.len()];
        let product = &cat.products[prod_i];
        let options: Vec<&str> = product.options.iter().map(|(_, v)| v[pick % v.len()].as_str()).collect();
        let (r, info) = get_reward(product, goal, price, &options).unwrap();
        prop_assert!((0.0..=1.0).contains(&r));
        // Buying the goal's own product at a price under the bound never scores 0.
        if product.asin == goal.asin && price <= goal.price_upper {
            prop_assert!(r > 0.0 && info.r_type == 1.0);
        }
    }
}
