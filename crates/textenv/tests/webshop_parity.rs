//! Parity with the official WebShop code on our synthetic catalogue. The fixtures come from
//! `fixtures/webshop/gen_fixtures.py`, which runs princeton-nlp/WebShop's `load_products`,
//! `get_reward` (thefuzz 0.19.0 without python-Levenshtein, WebShop's pin) and `WebAgentTextEnv(observation_mode="text")`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;
use vldac_textenv::webshop::fuzz::token_set_ratio;
use vldac_textenv::webshop::{Catalogue, Goal, SearchIndex, Session, get_reward, normalize_color};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("webshop")
}

fn load_json(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn catalogue() -> Catalogue {
    let d = dir();
    Catalogue::load(
        &d.join("items_shuffle.json"),
        &d.join("items_ins.json"),
        Some(&d.join("items_human_ins.json")),
        None,
        0,
    )
    .unwrap()
}

/// A goal from the fixture, with the precomputed nouns of its product name.
fn goal_from(v: &Value, cat: &Catalogue) -> Goal {
    let mut g: Goal = serde_json::from_value(v.clone()).unwrap();
    g.name_nouns = cat.products.iter().find(|p| p.name == g.name).and_then(|p| p.name_nouns.clone());
    assert!(g.name_nouns.is_some(), "no nouns for {}", g.name);
    g
}

#[test]
fn token_set_ratio_and_colours_match_thefuzz() {
    let fx = load_json("reward_cases.json");
    let pairs = fx["token_set_ratio"].as_array().unwrap();
    assert!(pairs.len() >= 30);
    for p in pairs {
        let (a, b, want) = (p[0].as_str().unwrap(), p[1].as_str().unwrap(), p[2].as_i64().unwrap());
        assert_eq!(token_set_ratio(a, b), want, "token_set_ratio({a:?}, {b:?})");
    }
    for c in fx["normalize_color"].as_array().unwrap() {
        assert_eq!(normalize_color(c[0].as_str().unwrap()), c[1].as_str().unwrap());
    }
}

#[test]
fn load_products_matches_python() {
    let fx = load_json("reward_cases.json");
    let cat = catalogue();
    let want = fx["products"].as_array().unwrap();
    assert_eq!(cat.products.len(), want.len());
    for (p, w) in cat.products.iter().zip(want) {
        assert_eq!(p.asin, w["asin"].as_str().unwrap());
        assert_eq!(p.title, w["Title"].as_str().unwrap());
        assert_eq!(p.description, w["Description"].as_str().unwrap());
        assert_eq!(serde_json::to_value(&p.bullet_points).unwrap(), w["BulletPoints"]);
        assert_eq!(serde_json::to_value(&p.pricing).unwrap(), w["pricing"], "{}", p.asin);
        assert_eq!(p.price_tag, w["Price"].as_str().unwrap());
        assert_eq!(serde_json::to_value(&p.attributes).unwrap(), w["Attributes"]);
        assert_eq!(p.query, w["query"].as_str().unwrap());
        let opts: HashMap<String, Vec<String>> = p.options.iter().cloned().collect();
        let want_opts: HashMap<String, Vec<String>> = serde_json::from_value(w["options"].clone()).unwrap();
        assert_eq!(opts, want_opts, "{}", p.asin);
    }
}

#[test]
fn get_reward_matches_official_on_all_cases() {
    let fx = load_json("reward_cases.json");
    let cat = catalogue();
    let goals: Vec<Goal> = fx["goals"].as_array().unwrap().iter().map(|g| goal_from(g, &cat)).collect();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut distinct = std::collections::BTreeSet::new();
    for (i, c) in cases.iter().enumerate() {
        let goal = &goals[c["goal_index"].as_u64().unwrap() as usize];
        let product = cat.product(c["asin"].as_str().unwrap()).unwrap();
        let options: Vec<String> =
            c["options"].as_object().unwrap().values().map(|v| v.as_str().unwrap().to_string()).collect();
        let price = c["price"].as_f64().unwrap();
        let (reward, info) = get_reward(product, goal, price, &options).unwrap();
        let want = c["reward"].as_f64().unwrap();
        assert_eq!(reward, want, "case {i}: {c}");
        let wi = &c["info"];
        assert_eq!(info.r_type, wi["r_type"].as_f64().unwrap(), "case {i} r_type");
        assert_eq!(info.r_att, wi["r_att"].as_f64().unwrap(), "case {i} r_att");
        assert_eq!(info.title_score, wi["title_score"].as_f64().unwrap(), "case {i} title_score");
        assert_eq!(info.query_match, wi["query_match"].as_bool().unwrap(), "case {i}");
        assert_eq!(info.category_match, wi["category_match"].as_bool().unwrap(), "case {i}");
        assert_eq!(info.r_option, wi.get("r_option").and_then(Value::as_f64), "case {i} r_option");
        assert_eq!(info.r_price, wi["r_price"].as_bool().unwrap(), "case {i} r_price");
        distinct.insert(want.to_bits());
    }
    // The cases exercise many reward levels, not one branch.
    assert!(distinct.len() >= 8, "only {} distinct rewards", distinct.len());
}

#[test]
fn state_machine_replays_official_episodes() {
    let fx = load_json("replays.json");
    let mut cat = catalogue();
    for (asin, price) in fx["prices"].as_object().unwrap() {
        cat.set_price(asin, price.as_f64().unwrap());
    }
    let index = SearchIndex::build(&cat.products);
    let episodes = fx["episodes"].as_array().unwrap();
    assert!(episodes.len() >= 10);
    let mut steps_checked = 0;
    for (e, ep) in episodes.iter().enumerate() {
        let goal = goal_from(&ep["goal"], &cat);
        let mut s = Session::new(goal, false);
        assert_eq!(s.text(&cat), ep["reset"]["obs"].as_str().unwrap(), "episode {e} reset");
        assert_eq!(serde_json::to_value(s.clickable_names(&cat)).unwrap(), ep["reset"]["clickables"]);
        for (k, st) in ep["steps"].as_array().unwrap().iter().enumerate() {
            let action = st["action"].as_str().unwrap();
            let out = s.step(&cat, &index, action);
            let ctx = format!("episode {e} step {k} {action:?}");
            assert_eq!(out.reward, st["reward"].as_f64().unwrap(), "{ctx}: reward");
            assert_eq!(out.done, st["done"].as_bool().unwrap(), "{ctx}: done");
            if s.page != vldac_textenv::webshop::PageKind::Done {
                // The done page's hidden debugging block is not part of our page model.
                assert_eq!(s.text(&cat), st["obs"].as_str().unwrap(), "{ctx}: page text");
                assert_eq!(serde_json::to_value(s.clickable_names(&cat)).unwrap(), st["clickables"], "{ctx}");
                assert_eq!(s.has_search_bar(), st["has_search_bar"].as_bool().unwrap(), "{ctx}");
            }
            steps_checked += 1;
        }
    }
    assert!(steps_checked >= 200);
}

#[test]
fn human_goals_are_built_like_get_human_goals() {
    // Same goals as Python's get_human_goals up to the random draws (price, price_upper, order).
    let fx = load_json("reward_cases.json");
    let cat = catalogue();
    let want = fx["goals"].as_array().unwrap();
    assert_eq!(cat.goals.len(), want.len());
    let strip_price = |s: &str| s.split(", and price lower than ").next().unwrap_or("").to_string();
    for w in want {
        let g = cat
            .goals
            .iter()
            .find(|g| {
                g.asin == w["asin"]
                    && strip_price(&g.instruction_text) == strip_price(w["instruction_text"].as_str().unwrap())
            })
            .unwrap_or_else(|| panic!("no goal like {w}"));
        assert_eq!(serde_json::to_value(&g.attributes).unwrap(), w["attributes"]);
        assert_eq!(serde_json::to_value(&g.goal_options).unwrap(), w["goal_options"]);
        for k in ["query", "name", "category", "product_category"] {
            assert_eq!(
                serde_json::to_value(match k {
                    "query" => &g.query,
                    "name" => &g.name,
                    "category" => &g.category,
                    _ => &g.product_category,
                })
                .unwrap(),
                w[k],
                "{k}"
            );
        }
        // price_upper: the larger of two of the first four multiples of 10 above the price.
        let price = cat.price(&g.asin);
        let steps: Vec<f64> = (1..100).map(|i| 10.0 * i as f64).filter(|&x| x > price).take(4).collect();
        assert!(steps[1..].contains(&g.price_upper), "{} for price {price}", g.price_upper);
        assert!(g.instruction_text.ends_with(&format!(", and price lower than {:.2} dollars", g.price_upper)));
    }
}
