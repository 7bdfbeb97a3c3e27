//! WebShop's reward (`web_agent_site/engine/goal.py::get_reward`), term by term:
//!
//! ```text
//! total = (attribute matches + option matches + [price <= price_upper])
//!         / (|goal attributes| + |goal options| + 1)  ×  r_type
//! ```
//! with fuzzy matching by thefuzz's `token_set_ratio` `> 85` (0.19.0, the official pin, unless
//! another [`FuzzVersion`] is asked for), colours normalised by [`normalize_color`], and `r_type`
//! from query / category / title-noun overlap. Lower-casing and stripping are Python's
//! ([`pyunicode`]).
//!
//! Where the official code raises, [`get_reward`] returns a [`RewardError`] instead of a
//! reward: a goal without attributes (`ZeroDivisionError` in `get_attribute_reward`) and a
//! `price_upper` that is not `> 0` (`r_price` is then `None`, and adding it raises `TypeError`).

use std::collections::HashSet;

use serde::Serialize;

use super::data::{Goal, Product};
use super::fuzz::{FuzzVersion, token_set_ratio_with};
use super::pyunicode;

/// `COLOR_SET` of `engine/normalize.py`, in its order (the first contained colour wins).
pub const COLOR_SET: &[&str] = &[
    "alabaster",
    "apricot",
    "aqua",
    "ash",
    "asphalt",
    "azure",
    "banana",
    "beige",
    "black",
    "blue",
    "blush",
    "bordeaux",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cheetah",
    "chestnut",
    "chocolate",
    "christmas",
    "coffee",
    "cognac",
    "copper",
    "coral",
    "cranberry",
    "cream",
    "crystal",
    "dark",
    "denim",
    "eggplant",
    "elephant",
    "espresso",
    "fuchsia",
    "gold",
    "granite",
    "grape",
    "graphite",
    "grass",
    "gray",
    "green",
    "grey",
    "heather",
    "indigo",
    "ivory",
    "ivy",
    "khaki",
    "lavender",
    "lemon",
    "leopard",
    "light",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "merlot",
    "midnight",
    "mint",
    "mocha",
    "multicolor",
    "mushroom",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "rainbow",
    "red",
    "rose",
    "royal",
    "rust",
    "sand",
    "sapphire",
    "seashell",
    "silver",
    "skull",
    "slate",
    "steel",
    "stone",
    "stonewash",
    "sunflower",
    "tan",
    "taupe",
    "teal",
    "tiger",
    "turquoise",
    "violet",
    "walnut",
    "wheat",
    "white",
    "wine",
    "yellow",
];

/// `normalize_color`: the first colour of [`COLOR_SET`] contained in `s`, else `s` unchanged.
pub fn normalize_color(s: &str) -> &str {
    COLOR_SET.iter().find(|c| s.contains(**c)).copied().unwrap_or(s)
}

/// Goals the official `get_reward` cannot score: it raises, so we refuse rather than invent a
/// reward.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub enum RewardError {
    /// `goal["attributes"]` is empty: `get_attribute_reward` divides by its length
    /// (`ZeroDivisionError`). WebShop's own goal builders never make such a goal
    /// (`get_human_goals` skips it, `get_synthetic_goals` asserts).
    #[error(
        "WebShop goal for {asin:?}: field `attributes` is empty; the official get_reward divides by \
         len(goal['attributes']) and raises ZeroDivisionError"
    )]
    NoGoalAttributes { asin: String },
    /// `goal["price_upper"]` is not `> 0` (zero, negative or NaN): `r_price` becomes `None` and
    /// the official sum `num_attr_matches + num_option_matches + r_price` raises `TypeError`.
    #[error(
        "WebShop goal for {asin:?}: field `price_upper` is {price_upper}, not > 0; the official get_reward \
         then sets r_price = None and raises TypeError when adding it"
    )]
    PriceUpperNotPositive { asin: String, price_upper: f64 },
}

/// The score components `get_reward(..., verbose=True)` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RewardInfo {
    pub r_type: f64,
    pub r_att: f64,
    pub w_att: f64,
    pub query_match: bool,
    pub category_match: bool,
    pub title_score: f64,
    /// Absent (as in the official dict) when the goal has no options.
    pub r_option: Option<f64>,
    /// Absent (as in the official dict) when the goal has no options.
    pub w_option: Option<f64>,
    pub r_price: bool,
    pub w_price: f64,
    pub num_attr_matches: usize,
    pub num_option_matches: usize,
}

/// The lower-cased nouns of a name: the precomputed spaCy nouns (`t.text.lower()`), or
/// (documented approximation when a data file has none) every alphabetic word of two or more
/// letters.
fn nouns(name: &str, precomputed: Option<&Vec<String>>) -> Vec<String> {
    match precomputed {
        Some(n) => n.iter().map(|w| pyunicode::lower(w)).collect(),
        None => name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() >= 2 && w.chars().all(char::is_alphabetic))
            .map(pyunicode::lower)
            .collect(),
    }
}

/// `[x.strip() for x in s.split('›')]` as a set.
fn categories(s: &str) -> HashSet<&str> {
    s.split('›').map(pyunicode::strip).collect()
}

/// `get_type_reward`: returns (r_type, query_match, category_match, title_score).
pub fn type_reward(product: &Product, goal: &Goal) -> (f64, bool, bool, f64) {
    let query_match = product.query == goal.query;
    let category_match =
        categories(&product.product_category).intersection(&categories(&goal.product_category)).count() >= 2;
    let purchased: HashSet<String> = nouns(&product.name, product.name_nouns.as_ref()).into_iter().collect();
    let desired = nouns(&goal.name, goal.name_nouns.as_ref());
    let desired_set: HashSet<&String> = desired.iter().collect();
    let title_score = if desired.is_empty() {
        0.2
    } else {
        desired_set.iter().filter(|n| purchased.contains(n.as_str())).count() as f64 / desired.len() as f64
    };
    let mut r_type = 1.0;
    if !(query_match || category_match || title_score > 0.2) {
        r_type = 0.5;
    }
    if title_score < 0.1 {
        r_type = 0.1;
    }
    if title_score == 0.0 {
        r_type = 0.0;
    }
    (r_type, query_match, category_match, title_score)
}

/// `get_attribute_reward`'s count: goal attributes found (fuzzy in the product's attributes,
/// else as a substring of its lower-cased title, bullet points or description).
pub fn attribute_matches(product: &Product, goal: &Goal) -> usize {
    attribute_matches_with(FuzzVersion::default(), product, goal)
}

/// [`attribute_matches`] with the chosen thefuzz release.
pub fn attribute_matches_with(version: FuzzVersion, product: &Product, goal: &Goal) -> usize {
    let title = pyunicode::lower(&product.title);
    let bullets = pyunicode::lower(&product.bullet_points.join(" "));
    let desc = pyunicode::lower(&product.description);
    goal.attributes
        .iter()
        .filter(|g| {
            product.attributes.iter().any(|p| token_set_ratio_with(version, p, g) > 85)
                || title.contains(g.as_str())
                || bullets.contains(g.as_str())
                || desc.contains(g.as_str())
        })
        .count()
}

/// `get_option_reward`'s count: goal options matched by some purchased option value.
pub fn option_matches<S: AsRef<str>>(purchased: &[S], goal_options: &[String]) -> usize {
    option_matches_with(FuzzVersion::default(), purchased, goal_options)
}

/// [`option_matches`] with the chosen thefuzz release.
pub fn option_matches_with<S: AsRef<str>>(version: FuzzVersion, purchased: &[S], goal_options: &[String]) -> usize {
    let purchased: Vec<&str> = purchased.iter().map(|o| normalize_color(o.as_ref())).collect();
    goal_options
        .iter()
        .filter(|g| {
            let g = normalize_color(g);
            purchased.iter().any(|p| token_set_ratio_with(version, p, g) > 85)
        })
        .count()
}

/// `get_reward(purchased_product, goal, price, options, verbose=True)` with thefuzz 0.19.0 (the
/// official pin). `options` are the session's chosen values (`{option name: value}`; only the
/// values matter). Errors where the official code raises (see [`RewardError`]).
pub fn get_reward<S: AsRef<str>>(
    product: &Product,
    goal: &Goal,
    price: f64,
    options: &[S],
) -> Result<(f64, RewardInfo), RewardError> {
    get_reward_with(FuzzVersion::default(), product, goal, price, options)
}

/// [`get_reward`] with the chosen thefuzz release.
pub fn get_reward_with<S: AsRef<str>>(
    version: FuzzVersion,
    product: &Product,
    goal: &Goal,
    price: f64,
    options: &[S],
) -> Result<(f64, RewardInfo), RewardError> {
    // The official code raises in this order: the division in get_attribute_reward first, the
    // sum with r_price = None after.
    if goal.attributes.is_empty() {
        return Err(RewardError::NoGoalAttributes { asin: goal.asin.clone() });
    }
    // `price_upper > 0` is false for zero, negatives and NaN alike.
    if goal.price_upper.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(RewardError::PriceUpperNotPositive { asin: goal.asin.clone(), price_upper: goal.price_upper });
    }
    let (r_type, query_match, category_match, title_score) = type_reward(product, goal);
    let r_price = price <= goal.price_upper;
    let n_attr = attribute_matches_with(version, product, goal);
    let n_opt = option_matches_with(version, options, &goal.goal_options);
    let denom = (goal.attributes.len() + goal.goal_options.len() + 1) as f64;
    let total = (n_attr + n_opt + usize::from(r_price)) as f64 / denom * r_type;
    let has_options = !goal.goal_options.is_empty();
    let info = RewardInfo {
        r_type,
        r_att: n_attr as f64 / goal.attributes.len() as f64,
        w_att: goal.attributes.len() as f64 / denom,
        query_match,
        category_match,
        title_score,
        r_option: has_options.then(|| n_opt as f64 / goal.goal_options.len() as f64),
        w_option: has_options.then(|| goal.goal_options.len() as f64 / denom),
        r_price,
        w_price: 1.0 / denom,
        num_attr_matches: n_attr,
        num_option_matches: n_opt,
    };
    Ok((total, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours() {
        assert_eq!(normalize_color("navy blue"), "blue");
        assert_eq!(normalize_color("dark grey"), "dark");
        assert_eq!(normalize_color("xl"), "xl");
        // "ash" is contained in "washed": substring semantics, as in the original.
        assert_eq!(normalize_color("washed"), "ash");
    }
}
