//! The Python `str` methods WebShop's reward relies on, answered as CPython answers them:
//! `isalnum`, `isspace`, `lower()` (full mappings and the context-sensitive final sigma),
//! `strip()` and `split()` without arguments.
//!
//! Rust's `char` methods are not used for these: Rust's `is_alphanumeric` is the Unicode
//! `Alphabetic` property (it includes combining marks such as Devanagari vowel signs, which Python
//! calls neither alpha nor numeric), its `is_whitespace` leaves out `\x1c`–`\x1f`, and it follows
//! a newer Unicode. The tables in `pyunicode_tables.rs` are what Python itself answered for every
//! code point (see `fixtures/webshop/gen_pyunicode.py`; [`PYTHON_VERSION`], [`UNICODE_VERSION`]).

#[rustfmt::skip]
#[allow(clippy::unreadable_literal)]
mod tables {
    include!("pyunicode_tables.rs");
}

pub use tables::{PYTHON_VERSION, UNICODE_VERSION};

/// Whether `c` lies in one of the sorted, disjoint inclusive `ranges`.
pub(crate) fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    match ranges.binary_search_by(|&(lo, _)| lo.cmp(&c)) {
        Ok(_) => true,
        Err(0) => false,
        Err(i) => c <= ranges[i - 1].1,
    }
}

/// Python's `ch.isalnum()` for one character.
pub fn is_alnum(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    in_ranges(tables::ALNUM, c)
}

/// Python's `ch.isspace()` (what `str.strip()` and `str.split()` remove): includes the
/// information separators `\x1c`–`\x1f`, `\x85` and the Unicode space separators.
pub fn is_space(c: char) -> bool {
    in_ranges(tables::SPACE, c)
}

/// A character of the regex class `\w` of Python's `re` on `str` patterns: alphanumeric or `_`.
pub fn is_word(c: char) -> bool {
    c == '_' || is_alnum(c)
}

fn is_case_ignorable(c: char) -> bool {
    in_ranges(tables::CASE_IGNORABLE, c)
}

fn is_cased(c: char) -> bool {
    in_ranges(tables::CASED, c)
}

/// Appends Python's `ch.lower()` of one character (the final sigma is the caller's business).
fn push_lower(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    let u = c as u32;
    if let Ok(i) = tables::LOWER_MULTI.binary_search_by(|&(k, _)| k.cmp(&u)) {
        out.push_str(tables::LOWER_MULTI[i].1);
        return;
    }
    let runs = tables::LOWER_RANGES;
    let idx = runs.partition_point(|&(lo, _, _, _)| lo <= u);
    if idx > 0 {
        let (lo, hi, stride, delta) = runs[idx - 1];
        if u <= hi && (u - lo).is_multiple_of(stride) {
            // The generator only records mappings to valid scalar values.
            if let Some(m) = char::from_u32(u.wrapping_add_signed(delta)) {
                out.push(m);
                return;
            }
        }
    }
    out.push(c);
}

/// The simple (one-character) lower-case mapping of `c`, as tables built with Python's
/// `ch.lower()` give it: its first character (only `İ` lowers to two, `i` + U+0307, in Unicode
/// 14; its simple mapping is `i`). No final sigma: `Σ` gives `σ`.
pub fn lower_char_simple(c: char) -> char {
    let mut s = String::new();
    push_lower(c, &mut s);
    s.chars().next().unwrap_or(c)
}

/// Python's `s.lower()`: the full lower-case mapping of each character (`İ` becomes `i̇`, two
/// characters) and `Σ` as `ς` where it ends a word (a cased character before it, skipping
/// case-ignorable ones, and none after it), else `σ`.
pub fn lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    if s.is_ascii() {
        out.push_str(s);
        out.make_ascii_lowercase();
        return out;
    }
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\u{3A3}' {
            out.push(if final_sigma(&chars, i) { '\u{3C2}' } else { '\u{3C3}' });
        } else {
            push_lower(c, &mut out);
        }
    }
    out
}

/// CPython's final-sigma context test for the `Σ` at `i`.
fn final_sigma(chars: &[char], i: usize) -> bool {
    let before = chars[..i].iter().rev().find(|&&c| !is_case_ignorable(c));
    if !before.is_some_and(|&c| is_cased(c)) {
        return false;
    }
    match chars[i + 1..].iter().find(|&&c| !is_case_ignorable(c)) {
        None => true,
        Some(&c) => !is_cased(c),
    }
}

/// Python's `s.strip()` without arguments.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `s.split()` without arguments: runs of whitespace separate, no empty pieces.
pub fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_answers() {
        assert!(is_alnum('a') && is_alnum('Я') && is_alnum('中') && is_alnum('²') && is_alnum('Ⅻ'));
        assert!(!is_alnum('_') && is_word('_') && !is_alnum('\u{93E}') && !is_alnum('‐'));
        assert!(is_space('\x1c') && is_space('\x1f') && is_space('\u{85}') && is_space('\u{3000}'));
        assert!(!is_space('\u{200b}') && !is_space('\u{180e}'));
        assert_eq!(lower("İ"), "i\u{307}");
        assert_eq!(lower("ΟΔΟΣ"), "οδος");
        assert_eq!(lower("ΟΔΟΣ ΟΔΟΣ."), "οδος οδος.");
        assert_eq!(lower("Σ"), "σ");
        assert_eq!(lower("ΑΣ'Α"), "ασ'α");
        assert_eq!(lower("ΑΣ'"), "ας'");
        assert_eq!(lower("Straße ÅKELVIN\u{212A}"), "straße åkelvink");
        assert_eq!(strip("\x1c a b\u{3000}\x1f"), "a b");
        assert_eq!(split(" a\x1db  c ").collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
