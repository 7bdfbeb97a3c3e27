//! `thefuzz.fuzz.token_set_ratio`, the fuzzy matcher of WebShop's reward (attributes and options
//! match when it is `> 85`).
//!
//! The official WebShop pins `thefuzz==0.19.0` without python-Levenshtein, so the default here
//! ([`FuzzVersion::Thefuzz019`]) is that version as it runs there:
//! * `full_process(s, force_ascii=True)`: delete U+0080–U+00FF (only those: "force ASCII" keeps
//!   every other non-ASCII character), replace each character that is not `\w` for Python's `re`
//!   (alphanumeric by `str.isalnum()`, or `_`) with a space, Python's `str.lower()` (after the
//!   replacement, so `Ÿ` becomes a kept `ÿ`), Python's `str.strip()`;
//! * 0 if either processed string is empty; token sets (`str.split()`), the sorted intersection
//!   `sect` and the sorted differences, `sect + " " + diff` on each side (stripped);
//! * the best of three `fuzz.ratio`s (sect vs sect+diff₁, sect vs sect+diff₂, sect+diff₁ vs
//!   sect+diff₂), each `int(round(100 * SequenceMatcher(None, x, y).ratio()))` (100 when the two
//!   strings are equal, 0 when one is empty) with difflib's greedy matcher ([`SequenceMatcher`]).
//!
//! [`FuzzVersion::Thefuzz0221`] keeps thefuzz 0.22.1 (rapidfuzz): an optimal Indel similarity of
//! the same strings, `_` counted as a separator, 100 when one token set contains the other.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::pyunicode;
use super::seqmatch::SequenceMatcher;

/// Which thefuzz release's `token_set_ratio` to reproduce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FuzzVersion {
    /// thefuzz 0.19.0 on difflib (WebShop's `requirements.txt` pin; no python-Levenshtein).
    #[default]
    #[serde(rename = "0.19.0")]
    Thefuzz019,
    /// thefuzz 0.22.1 on rapidfuzz (a later release; only when asked for by name).
    #[serde(rename = "0.22.1")]
    Thefuzz0221,
}

impl fmt::Display for FuzzVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FuzzVersion::Thefuzz019 => "0.19.0",
            FuzzVersion::Thefuzz0221 => "0.22.1",
        })
    }
}

impl FromStr for FuzzVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().trim_start_matches("thefuzz").trim_start_matches(['=', '-', ' ']) {
            "0.19.0" | "0.19" => Ok(FuzzVersion::Thefuzz019),
            "0.22.1" | "0.22" => Ok(FuzzVersion::Thefuzz0221),
            _ => Err(format!("unknown thefuzz version {s:?}; known: 0.19.0 (default, WebShop's pin), 0.22.1")),
        }
    }
}

/// thefuzz's `asciidammit`: deletes U+0080–U+00FF and nothing else.
fn is_deleted_by_force_ascii(c: char) -> bool {
    ('\u{80}'..='\u{FF}').contains(&c)
}

/// thefuzz 0.19.0's `utils.full_process(s, force_ascii=True)` (what `token_set_ratio` applies).
pub fn full_process(s: &str) -> String {
    let spaced: String = s
        .chars()
        .filter(|&c| !is_deleted_by_force_ascii(c))
        .map(|c| if pyunicode::is_word(c) { c } else { ' ' })
        .collect();
    pyunicode::strip(&pyunicode::lower(&spaced)).to_string()
}

#[rustfmt::skip]
mod rapidfuzz_tables {
    include!("rapidfuzz_tables.rs");
}

/// Whether rapidfuzz 3.x's `default_process` keeps `c` (its alphanumeric table follows an older
/// Unicode than Python 3.11's: 525 code points differ, recorded in `rapidfuzz_tables.rs`).
fn rapidfuzz_keeps(c: char) -> bool {
    pyunicode::is_alnum(c) != pyunicode::in_ranges(rapidfuzz_tables::ALNUM_FLIPS, c)
}

/// thefuzz 0.22.1's `full_process(s, force_ascii=True)`: the same deletion, then rapidfuzz's
/// `default_process`: each character it calls alphanumeric lower-cased by the simple,
/// one-character mapping (`İ` gives `i`, `Σ` always `σ`), every other one (`_` included) a
/// space, then trimmed.
pub fn full_process_0221(s: &str) -> String {
    let spaced: String = s
        .chars()
        .filter(|&c| !is_deleted_by_force_ascii(c))
        .map(|c| if rapidfuzz_keeps(c) { pyunicode::lower_char_simple(c) } else { ' ' })
        .collect();
    pyunicode::strip(&spaced).to_string()
}

/// Python's `int(round(x))` for a finite score: ties to even.
fn intr(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// thefuzz 0.19.0's `fuzz.ratio(s1, s2)` (no processing): 100 for equal strings, 0 when one is
/// empty, else `int(round(100 * SequenceMatcher(None, s1, s2).ratio()))`.
pub fn ratio(s1: &str, s2: &str) -> i64 {
    if s1 == s2 {
        return 100;
    }
    if s1.is_empty() || s2.is_empty() {
        return 0;
    }
    let a: Vec<char> = s1.chars().collect();
    let b: Vec<char> = s2.chars().collect();
    intr(100.0 * SequenceMatcher::new(&a, &b).ratio())
}

/// The three strings `_token_set` compares: (sorted intersection, sect + diff₁, sect + diff₂),
/// or `None` when a processed string is empty (the score is then 0).
pub fn token_set_strings(p1: &str, p2: &str) -> Option<(String, String, String)> {
    if p1.is_empty() || p2.is_empty() {
        return None;
    }
    let t1: BTreeSet<&str> = pyunicode::split(p1).collect();
    let t2: BTreeSet<&str> = pyunicode::split(p2).collect();
    // BTreeSet<&str> iterates in byte order, which for UTF-8 is code point order (Python's).
    let sect = t1.intersection(&t2).copied().collect::<Vec<_>>().join(" ");
    let d12 = t1.difference(&t2).copied().collect::<Vec<_>>().join(" ");
    let d21 = t2.difference(&t1).copied().collect::<Vec<_>>().join(" ");
    let c12 = pyunicode::strip(&format!("{sect} {d12}")).to_string();
    let c21 = pyunicode::strip(&format!("{sect} {d21}")).to_string();
    Some((pyunicode::strip(&sect).to_string(), c12, c21))
}

/// thefuzz 0.19.0's three pairwise `ratio`s of `_token_set` (their max is the score), or `None`
/// when a processed string is empty.
pub fn token_set_pairwise(s1: &str, s2: &str) -> Option<[i64; 3]> {
    let (sect, c12, c21) = token_set_strings(&full_process(s1), &full_process(s2))?;
    Some([ratio(&sect, &c12), ratio(&sect, &c21), ratio(&c12, &c21)])
}

/// `thefuzz.fuzz.token_set_ratio(s1, s2)` of thefuzz 0.19.0 (WebShop's pin): 0..=100.
pub fn token_set_ratio(s1: &str, s2: &str) -> i64 {
    token_set_pairwise(s1, s2).map_or(0, |r| r.into_iter().max().unwrap_or(0))
}

/// `token_set_ratio` of the chosen thefuzz release.
pub fn token_set_ratio_with(version: FuzzVersion, s1: &str, s2: &str) -> i64 {
    match version {
        FuzzVersion::Thefuzz019 => token_set_ratio(s1, s2),
        FuzzVersion::Thefuzz0221 => intr(token_set_ratio_raw_0221(&full_process_0221(s1), &full_process_0221(s2))),
    }
}

/// Length of the longest common subsequence.
fn lcs_len(a: &[char], b: &[char]) -> usize {
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for &ca in a {
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = if ca == cb { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Indel distance (insertions + deletions) between two strings, by characters.
fn indel_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    a.len() + b.len() - 2 * lcs_len(&a, &b)
}

fn norm_similarity(dist: usize, lensum: usize) -> f64 {
    if lensum == 0 { 100.0 } else { 100.0 - 100.0 * dist as f64 / lensum as f64 }
}

/// rapidfuzz's `fuzz.token_set_ratio` on already-processed strings (thefuzz 0.22.1), a float in
/// [0, 100].
pub fn token_set_ratio_raw_0221(s1: &str, s2: &str) -> f64 {
    let a: BTreeSet<&str> = pyunicode::split(s1).collect();
    let b: BTreeSet<&str> = pyunicode::split(s2).collect();
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let sect: Vec<&str> = a.intersection(&b).copied().collect();
    let diff_ab: Vec<&str> = a.difference(&b).copied().collect();
    let diff_ba: Vec<&str> = b.difference(&a).copied().collect();
    if !sect.is_empty() && (diff_ab.is_empty() || diff_ba.is_empty()) {
        return 100.0;
    }
    let diff_ab = diff_ab.join(" ");
    let diff_ba = diff_ba.join(" ");
    let sect_len = sect.join(" ").chars().count();
    let (ab_len, ba_len) = (diff_ab.chars().count(), diff_ba.chars().count());
    let sep = usize::from(sect_len != 0);
    let sect_ab_len = sect_len + sep + ab_len;
    let sect_ba_len = sect_len + sep + ba_len;
    let result = norm_similarity(indel_distance(&diff_ab, &diff_ba), sect_ab_len + sect_ba_len);
    if sect_len == 0 {
        return result;
    }
    let sect_ab_ratio = norm_similarity(sep + ab_len, sect_len + sect_ab_len);
    let sect_ba_ratio = norm_similarity(sep + ba_len, sect_len + sect_ba_len);
    result.max(sect_ab_ratio).max(sect_ba_ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scores() {
        // Values from thefuzz 0.19.0 (no python-Levenshtein) and 0.22.1.
        assert_eq!(token_set_ratio("fuzzy was a bear", "fuzzy fuzzy was a bear"), 100);
        assert_eq!(token_set_ratio("", "abc"), 0);
        assert_eq!(token_set_ratio("Red!", "red"), 100);
        assert_eq!(token_set_ratio("navy blue", "blue"), 100);
        assert_eq!(token_set_ratio("ghih heel", "high heel"), 78);
        assert_eq!(token_set_ratio_with(FuzzVersion::Thefuzz0221, "ghih heel", "high heel"), 89);
        assert_eq!(token_set_ratio("DUMMY_ATTR", "dummy attr"), 50);
        assert_eq!(token_set_ratio_with(FuzzVersion::Thefuzz0221, "DUMMY_ATTR", "dummy attr"), 100);
        assert_eq!(token_set_ratio("красный", "Красный"), 100);
        assert_eq!(full_process("Café\u{a0}Ÿ_x ΟΔΟΣ"), "cafÿ_x οδος");
        assert_eq!(intr(2.5), 2);
        assert_eq!(intr(3.5), 4);
        assert_eq!(intr(85.5), 86);
        assert_eq!(intr(86.5), 86);
        assert_eq!(intr(85.49), 85);
        assert_eq!("thefuzz==0.22.1".parse::<FuzzVersion>(), Ok(FuzzVersion::Thefuzz0221));
        assert_eq!("0.19.0".parse::<FuzzVersion>(), Ok(FuzzVersion::Thefuzz019));
        assert!("0.20".parse::<FuzzVersion>().is_err());
    }
}
