//! WebShop's page state machine (`web_agent_site/envs/web_agent_text_env.py`: `SimServer.receive`
//! and `WebAgentTextEnv.step`), without HTML: the pages are data, and the text observation is the
//! visible strings of the original templates joined by ` [SEP] `.
//!
//! Pages: search (index) → results (10 per page, top 50) → item (options, sub-page buttons,
//! "Buy Now") → item sub-page (Description / Features / Reviews / Attributes) → done.
//! Actions: `search[keywords]` and `click[name]`, where `name` is one of the page's clickables
//! (lower-cased button texts, ASINs, option values). Anything else is a no-op with reward 0, as in
//! the original.

use serde::Serialize;
use serde_json::json;

use super::data::{Catalogue, Goal, Product};
use super::fuzz::FuzzVersion;
use super::reward::{RewardError, RewardInfo, get_reward_with};
use super::search::{SEARCH_RETURN_N, SearchIndex};

pub const END_BUTTON: &str = "Buy Now";
pub const NEXT_PAGE: &str = "Next >";
pub const PREV_PAGE: &str = "< Prev";
pub const BACK_TO_SEARCH: &str = "Back to Search";
/// `PRODUCT_WINDOW`: results per page.
pub const PRODUCT_WINDOW: usize = 10;
const SUB_PAGES: [&str; 4] = ["Description", "Features", "Reviews", "Attributes"];

/// Which page the session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageKind {
    Search,
    Results,
    Item,
    SubPage,
    Done,
}

/// `parse_action`: Python's `re.match(r'(.+)\[(.+)\]', action)` (greedy name, no end anchor, `.`
/// not matching newlines). Returns `(name, Some(arg))`, or `(action, None)` without a match.
pub fn parse_action(action: &str) -> (String, Option<String>) {
    let b = action.as_bytes();
    // The first line bounds both groups: `.` stops at '\n'.
    let line_end = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
    for i in (1..line_end).rev() {
        if b[i] != b'[' {
            continue;
        }
        if let Some(j) = (i + 2..line_end).rev().find(|&j| b[j] == b']') {
            return (action[..i].to_string(), Some(action[i + 1..j].to_string()));
        }
    }
    (action.to_string(), None)
}

/// The outcome of one action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub reward: f64,
    pub done: bool,
    /// False when the action was a no-op (unparseable, unknown clickable, search without words).
    pub valid: bool,
    pub reward_info: Option<RewardInfo>,
    /// Set when "Buy Now" was clicked for a goal the official reward cannot score.
    pub reward_error: Option<RewardError>,
}

/// What a visible string is, for the page renderer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Heading,
    Instruction,
    SearchBar,
    Text,
    Button,
    Link { clicked: bool },
    OptionName,
    OptionValue { selected: bool },
}

/// One shopping session over a catalogue.
#[derive(Debug, Clone)]
pub struct Session {
    pub goal: Goal,
    pub page: PageKind,
    pub keywords: Vec<String>,
    pub page_num: usize,
    /// Positions (in the catalogue) of the current search's top results.
    pub results: Vec<usize>,
    pub asin: Option<String>,
    pub sub_page: Option<&'static str>,
    /// Chosen options in click order: (option name, value); a later click on a group replaces it.
    pub options: Vec<(String, String)>,
    pub clicked_asins: Vec<String>,
    pub reward: Option<f64>,
    pub show_attrs: bool,
    /// The thefuzz release the reward's fuzzy matching follows (default 0.19.0, WebShop's pin).
    pub fuzz: FuzzVersion,
}

/// A clickable element of a page.
#[derive(Debug, Clone, PartialEq)]
enum Clickable {
    Button,
    Product,
    /// A radio option of this option group.
    Option(String),
}

impl Session {
    pub fn new(goal: Goal, show_attrs: bool) -> Self {
        Session {
            goal,
            page: PageKind::Search,
            keywords: Vec::new(),
            page_num: 1,
            results: Vec::new(),
            asin: None,
            sub_page: None,
            options: Vec::new(),
            clicked_asins: Vec::new(),
            reward: None,
            show_attrs,
            fuzz: FuzzVersion::default(),
        }
    }

    fn product<'a>(&self, cat: &'a Catalogue) -> Option<&'a Product> {
        self.asin.as_deref().and_then(|a| cat.product(a))
    }

    /// Is there a search bar (only on the search page)?
    pub fn has_search_bar(&self) -> bool {
        self.page == PageKind::Search
    }

    fn page_results<'a>(&self, cat: &'a Catalogue) -> Vec<&'a Product> {
        let start = (self.page_num.max(1) - 1) * PRODUCT_WINDOW;
        self.results.iter().skip(start).take(PRODUCT_WINDOW).map(|&i| &cat.products[i]).collect()
    }

    /// The clickables of the page, in the original's order: buttons, product links, radio values
    /// (keys lower-cased; a repeated key keeps its first position and its last element).
    fn clickables(&self, cat: &Catalogue) -> Vec<(String, Clickable)> {
        let mut out: Vec<(String, Clickable)> = Vec::new();
        let mut push = |key: String, c: Clickable| match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = c,
            None => out.push((key, c)),
        };
        match self.page {
            PageKind::Search => push("search".into(), Clickable::Button),
            PageKind::Results => {
                push(BACK_TO_SEARCH.to_lowercase(), Clickable::Button);
                if self.page_num > 1 {
                    push(PREV_PAGE.to_lowercase(), Clickable::Button);
                }
                push(NEXT_PAGE.to_lowercase(), Clickable::Button);
                for p in self.page_results(cat) {
                    push(p.asin.to_lowercase(), Clickable::Product);
                }
            }
            PageKind::Item => {
                push(BACK_TO_SEARCH.to_lowercase(), Clickable::Button);
                push(PREV_PAGE.to_lowercase(), Clickable::Button);
                let n = if self.show_attrs { 4 } else { 3 };
                for s in &SUB_PAGES[..n] {
                    push(s.to_lowercase(), Clickable::Button);
                }
                push(END_BUTTON.to_lowercase(), Clickable::Button);
                if let Some(p) = self.product(cat) {
                    for (name, values) in &p.options {
                        for v in values {
                            push(v.clone(), Clickable::Option(name.clone()));
                        }
                    }
                }
            }
            PageKind::SubPage => {
                push(BACK_TO_SEARCH.to_lowercase(), Clickable::Button);
                push(PREV_PAGE.to_lowercase(), Clickable::Button);
            }
            PageKind::Done => {}
        }
        out
    }

    /// `get_available_actions()["clickables"]` (including "search", which `click` refuses).
    pub fn clickable_names(&self, cat: &Catalogue) -> Vec<String> {
        self.clickables(cat).into_iter().map(|(k, _)| k).collect()
    }

    /// The admissible commands: `search[<query>]` when there is a search bar, then `click[x]`.
    pub fn available_actions(&self, cat: &Catalogue) -> Vec<String> {
        let mut out = Vec::new();
        if self.has_search_bar() {
            out.push("search[<query>]".to_string());
        }
        out.extend(self.clickable_names(cat).into_iter().filter(|c| c != "search").map(|c| format!("click[{c}]")));
        out
    }

    fn run_search(&mut self, cat: &Catalogue, index: &SearchIndex, keywords: Vec<String>, page: usize) {
        self.results = index.search(&keywords.join(" "), SEARCH_RETURN_N);
        self.keywords = keywords;
        self.page_num = page;
        self.asin = None;
        self.options.clear();
        self.sub_page = None;
        self.page = PageKind::Results;
        let _ = cat;
    }

    fn back_to_search(&mut self) {
        self.page = PageKind::Search;
        self.keywords.clear();
        self.results.clear();
        self.page_num = 1;
        self.asin = None;
        self.sub_page = None;
        self.options.clear();
        self.clicked_asins.clear();
    }

    /// One action (`WebAgentTextEnv.step`).
    pub fn step(&mut self, cat: &Catalogue, index: &SearchIndex, action: &str) -> Outcome {
        let noop = Outcome { reward: 0.0, done: false, valid: false, reward_info: None, reward_error: None };
        if self.page == PageKind::Done {
            return noop;
        }
        let (name, arg) = parse_action(action);
        let Some(arg) = arg.map(|a| a.to_lowercase()) else { return noop };
        let ok = Outcome { valid: true, ..noop.clone() };
        if name == "search" {
            // As the original text env: a search works from any page (agents see `search[...]`
            // only where the page has a search bar).
            let keywords: Vec<String> = arg.split(' ').map(str::to_string).collect();
            self.run_search(cat, index, keywords, 1);
            return ok;
        }
        if name != "click" || arg == "search" {
            return noop;
        }
        let clickables = self.clickables(cat);
        let Some((_, kind)) = clickables.into_iter().find(|(k, _)| *k == arg) else { return noop };
        if arg == END_BUTTON.to_lowercase() {
            let Some(product) = self.product(cat) else { return noop };
            let values: Vec<&str> = self.options.iter().map(|(_, v)| v.as_str()).collect();
            return match get_reward_with(self.fuzz, product, &self.goal, cat.price(&product.asin), &values) {
                Ok((reward, info)) => {
                    self.reward = Some(reward);
                    self.page = PageKind::Done;
                    Outcome { reward, done: true, valid: true, reward_info: Some(info), reward_error: None }
                }
                // The official env raises here; the session stays on the item page and the
                // caller gets the error (`WebShopEnv::step` returns it).
                Err(e) => Outcome { valid: true, reward_error: Some(e), ..noop },
            };
        }
        if arg == BACK_TO_SEARCH.to_lowercase() {
            self.back_to_search();
            return ok;
        }
        if arg == NEXT_PAGE.to_lowercase() && self.page == PageKind::Results {
            let kw = self.keywords.clone();
            self.run_search(cat, index, kw, self.page_num + 1);
            return ok;
        }
        if arg == PREV_PAGE.to_lowercase() {
            match self.page {
                PageKind::Results => {
                    let kw = self.keywords.clone();
                    self.run_search(cat, index, kw, self.page_num.saturating_sub(1).max(1));
                    return ok;
                }
                PageKind::SubPage => {
                    self.page = PageKind::Item;
                    self.sub_page = None;
                    return ok;
                }
                PageKind::Item => {
                    let (kw, page) = (self.keywords.clone(), self.page_num);
                    self.run_search(cat, index, kw, page);
                    return ok;
                }
                _ => {}
            }
        }
        if let Some(sub) = SUB_PAGES.iter().find(|s| s.to_lowercase() == arg) {
            self.page = PageKind::SubPage;
            self.sub_page = Some(sub);
            return ok;
        }
        match kind {
            Clickable::Product => {
                let asin = arg.to_uppercase();
                let asin = cat.product(&asin).map(|p| p.asin.clone()).unwrap_or(asin);
                if !self.clicked_asins.contains(&asin) {
                    self.clicked_asins.push(asin.clone());
                }
                self.asin = Some(asin);
            }
            Clickable::Option(group) => match self.options.iter_mut().find(|(g, _)| *g == group) {
                Some(slot) => slot.1 = arg,
                None => self.options.push((group, arg)),
            },
            Clickable::Button => {}
        }
        self.page = PageKind::Item;
        self.sub_page = None;
        ok
    }

    /// The page's visible strings with their role, in document order (the original's `text`
    /// observation mode joins the strings with ` [SEP] `).
    pub fn elements(&self, cat: &Catalogue) -> Vec<(Role, String)> {
        use Role::*;
        let instr = self.goal.instruction_text.clone();
        let mut t: Vec<(Role, String)> = Vec::new();
        match self.page {
            PageKind::Search => {
                t.extend([(Heading, "WebShop".into()), (Instruction, "Instruction:".into()), (Instruction, instr)]);
                t.push((SearchBar, "Search".into()));
            }
            PageKind::Results => {
                t.extend([(Instruction, "Instruction:".into()), (Instruction, instr), (Button, BACK_TO_SEARCH.into())]);
                t.push((Heading, format!("Page {} (Total results: {})", self.page_num, self.results.len())));
                if self.page_num > 1 {
                    t.push((Button, PREV_PAGE.into()));
                }
                t.push((Button, NEXT_PAGE.into()));
                for p in self.page_results(cat) {
                    let clicked = self.clicked_asins.contains(&p.asin);
                    t.extend([
                        (Link { clicked }, p.asin.clone()),
                        (Text, p.title.clone()),
                        (Text, p.price_tag.clone()),
                    ]);
                }
            }
            PageKind::Item | PageKind::SubPage => {
                t.extend([(Instruction, "Instruction:".into()), (Instruction, instr), (Button, BACK_TO_SEARCH.into())]);
                t.push((Button, PREV_PAGE.into()));
                let Some(p) = self.product(cat) else { return t };
                if self.page == PageKind::Item {
                    for (name, values) in &p.options {
                        t.push((OptionName, name.clone()));
                        for v in values {
                            let selected = self.options.iter().any(|(g, o)| g == name && o == v);
                            t.push((OptionValue { selected }, v.clone()));
                        }
                    }
                    t.extend([(Heading, p.title.clone()), (Text, format!("Price: {}", p.price_tag))]);
                    t.push((Text, "Rating: N.A.".into()));
                    let n = if self.show_attrs { 4 } else { 3 };
                    t.extend(SUB_PAGES[..n].iter().map(|s| (Button, s.to_string())));
                    t.push((Button, END_BUTTON.into()));
                } else {
                    match self.sub_page {
                        Some("Description") => t.push((Text, p.description.clone())),
                        Some("Features") => t.extend(p.bullet_points.iter().map(|b| (Text, b.clone()))),
                        Some("Attributes") => t.extend(p.attributes.iter().map(|a| (Text, a.clone()))),
                        _ => {}
                    }
                }
            }
            PageKind::Done => {
                t.push((Heading, "Thank you for shopping with us!".into()));
                let score = super::data::py_float(self.reward.unwrap_or(0.0));
                t.push((Text, format!("Your score (min 0.0, max 1.0) {score}")));
            }
        }
        t.retain(|(_, s)| !s.trim().is_empty());
        t.iter_mut().for_each(|(_, s)| *s = s.trim().to_string());
        t
    }

    /// The page's visible strings.
    pub fn visible_texts(&self, cat: &Catalogue) -> Vec<String> {
        self.elements(cat).into_iter().map(|(_, s)| s).collect()
    }

    /// The `text` observation: visible strings joined by ` [SEP] `.
    pub fn text(&self, cat: &Catalogue) -> String {
        self.visible_texts(cat).join(" [SEP] ")
    }

    /// A JSON summary of the session (for replays and info dicts).
    pub fn summary(&self) -> serde_json::Value {
        json!({
            "page": self.page,
            "keywords": self.keywords,
            "page_num": self.page_num,
            "asin": self.asin,
            "options": self.options.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_action_matches_python_regex() {
        let p = |s: &str| parse_action(s);
        assert_eq!(p("search[red shoes]"), ("search".into(), Some("red shoes".into())));
        assert_eq!(p("click[< Prev]"), ("click".into(), Some("< Prev".into())));
        // Greedy name: the last '[' that has a ']' after it with text between.
        assert_eq!(p("click[a[b]]"), ("click[a".into(), Some("b]".into())));
        assert_eq!(p("search[x] trailing"), ("search".into(), Some("x".into())));
        assert_eq!(p("search[]"), ("search[]".into(), None));
        assert_eq!(p("[x]"), ("[x]".into(), None));
        assert_eq!(p("click"), ("click".into(), None));
        assert_eq!(p("click[a\n]"), ("click[a\n]".into(), None));
    }
}
