//! Python's `difflib.SequenceMatcher(None, a, b)` (no junk predicate, `autojunk=True` by
//! default): the longest-match recursion that thefuzz 0.19.0's `ratio` runs when
//! python-Levenshtein is absent, as the official WebShop installs it.
//!
//! What makes it differ from an LCS:
//! * the longest matching block is found first (leftmost in `a`, then in `b`, on ties) and the
//!   two sides are matched recursively, so the result is greedy, not optimal;
//! * "popular" elements: when `b` has 200 or more elements, every element occurring more than
//!   `len(b) / 100 + 1` times is dropped from the index, so no match *starts* from it; a match
//!   found without them is still extended over equal neighbours, popular or not.
//!
//! Matching only depends on equality, so any `Eq + Hash` element type works (thefuzz compares
//! `str`s, whose elements are code points: use `char`).

use std::collections::HashMap;
use std::hash::Hash;

/// A matching block: `a[a..a + size] == b[b..b + size]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    pub a: usize,
    pub b: usize,
    pub size: usize,
}

/// Two rows of match lengths indexed by `j + 1`, reused across `find_longest_match` calls.
struct Rows {
    prev: Vec<usize>,
    cur: Vec<usize>,
    prev_touched: Vec<usize>,
    cur_touched: Vec<usize>,
}

impl Rows {
    fn new(lb: usize) -> Self {
        Rows { prev: vec![0; lb + 1], cur: vec![0; lb + 1], prev_touched: Vec::new(), cur_touched: Vec::new() }
    }

    /// The current row becomes the previous one; the old previous row is zeroed for reuse.
    fn advance(&mut self) {
        for &t in &self.prev_touched {
            self.prev[t] = 0;
        }
        self.prev_touched.clear();
        std::mem::swap(&mut self.prev, &mut self.cur);
        std::mem::swap(&mut self.prev_touched, &mut self.cur_touched);
    }
}

/// `difflib.SequenceMatcher` with `isjunk=None`.
pub struct SequenceMatcher<'s, T> {
    a: &'s [T],
    b: &'s [T],
    /// Positions of each non-popular element of `b`, ascending.
    b2j: HashMap<&'s T, Vec<usize>>,
}

/// `len(b)` from which the popularity heuristic applies (difflib's `n >= 200`).
pub const AUTOJUNK_MIN_LEN: usize = 200;

impl<'s, T: Eq + Hash> SequenceMatcher<'s, T> {
    /// `SequenceMatcher(None, a, b)` (autojunk on, as difflib's default and thefuzz's call).
    pub fn new(a: &'s [T], b: &'s [T]) -> Self {
        Self::with_autojunk(a, b, true)
    }

    /// `SequenceMatcher(None, a, b, autojunk=autojunk)`.
    pub fn with_autojunk(a: &'s [T], b: &'s [T], autojunk: bool) -> Self {
        let mut b2j: HashMap<&T, Vec<usize>> = HashMap::new();
        for (j, x) in b.iter().enumerate() {
            b2j.entry(x).or_default().push(j);
        }
        if autojunk && b.len() >= AUTOJUNK_MIN_LEN {
            let limit = b.len() / 100 + 1;
            b2j.retain(|_, js| js.len() <= limit);
        }
        Self { a, b, b2j }
    }

    /// Elements of `b` that the popularity heuristic dropped from the index.
    pub fn popular(&self) -> Vec<&'s T> {
        let mut seen: Vec<&T> = Vec::new();
        for x in self.b {
            if !self.b2j.contains_key(x) && !seen.contains(&x) {
                seen.push(x);
            }
        }
        seen
    }

    /// `find_longest_match(alo, ahi, blo, bhi)`.
    pub fn find_longest_match(&self, alo: usize, ahi: usize, blo: usize, bhi: usize) -> Match {
        self.find_longest_match_in(alo, ahi, blo, bhi, &mut Rows::new(self.b.len()))
    }

    fn find_longest_match_in(&self, alo: usize, ahi: usize, blo: usize, bhi: usize, rows: &mut Rows) -> Match {
        let (a, b) = (self.a, self.b);
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
        // rows.prev[j + 1]: length of the match ending at a[i - 1], b[j] (difflib's j2len dict as
        // dense rows; the touched entries are cleared, so every call starts from zeros).
        for (i, x) in a.iter().enumerate().take(ahi).skip(alo) {
            if let Some(js) = self.b2j.get(x) {
                for &j in js {
                    if j < blo {
                        continue;
                    }
                    if j >= bhi {
                        break;
                    }
                    let k = rows.prev[j] + 1;
                    rows.cur[j + 1] = k;
                    rows.cur_touched.push(j + 1);
                    if k > bestsize {
                        besti = i + 1 - k;
                        bestj = j + 1 - k;
                        bestsize = k;
                    }
                }
            }
            rows.advance();
        }
        rows.advance();
        // Extend over equal neighbours (there is no junk, so popular elements count too).
        while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] == b[bestj + bestsize] {
            bestsize += 1;
        }
        Match { a: besti, b: bestj, size: bestsize }
    }

    /// `get_matching_blocks()`: sorted, adjacent blocks merged, ending with `(len a, len b, 0)`.
    pub fn matching_blocks(&self) -> Vec<Match> {
        let (la, lb) = (self.a.len(), self.b.len());
        let mut queue = vec![(0, la, 0, lb)];
        let mut blocks = Vec::new();
        let mut rows = Rows::new(lb);
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let m = self.find_longest_match_in(alo, ahi, blo, bhi, &mut rows);
            if m.size > 0 {
                blocks.push(m);
                if alo < m.a && blo < m.b {
                    queue.push((alo, m.a, blo, m.b));
                }
                if m.a + m.size < ahi && m.b + m.size < bhi {
                    queue.push((m.a + m.size, ahi, m.b + m.size, bhi));
                }
            }
        }
        blocks.sort();
        let mut merged: Vec<Match> = Vec::with_capacity(blocks.len() + 1);
        for m in blocks {
            match merged.last_mut() {
                Some(last) if last.a + last.size == m.a && last.b + last.size == m.b => last.size += m.size,
                _ => merged.push(m),
            }
        }
        merged.push(Match { a: la, b: lb, size: 0 });
        merged
    }

    /// Number of matched elements (the sum of the matching blocks' sizes).
    pub fn matches(&self) -> usize {
        self.matching_blocks().iter().map(|m| m.size).sum()
    }

    /// `ratio()`: `2.0 * matches / (len a + len b)`, `1.0` when both are empty.
    pub fn ratio(&self) -> f64 {
        let total = self.a.len() + self.b.len();
        if total == 0 { 1.0 } else { 2.0 * self.matches() as f64 / total as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn difflib_docstring_examples() {
        // difflib's own examples.
        let (a, b) = (chars(" abcd"), chars("abcd abcd"));
        assert_eq!(SequenceMatcher::new(&a, &b).find_longest_match(0, 5, 0, 9), Match { a: 0, b: 4, size: 5 });
        let (a, b) = (chars("abxcd"), chars("abcd"));
        let blocks = SequenceMatcher::new(&a, &b).matching_blocks();
        assert_eq!(
            blocks,
            vec![Match { a: 0, b: 0, size: 2 }, Match { a: 3, b: 2, size: 2 }, Match { a: 5, b: 4, size: 0 }]
        );
        let (a, b) = (chars("abcd"), chars("bcde"));
        assert_eq!(SequenceMatcher::new(&a, &b).ratio(), 0.75);
        let e: Vec<char> = Vec::new();
        assert_eq!(SequenceMatcher::new(&e, &e).ratio(), 1.0);
    }

    #[test]
    fn popular_elements_do_not_start_matches() {
        // b has 200 elements: 'y' occurs 198 > 200 / 100 + 1 times and is dropped from the index.
        let b: Vec<char> = "ab".chars().chain(std::iter::repeat_n('y', 198)).collect();
        let a = chars("ab");
        let m = SequenceMatcher::new(&a, &b);
        assert_eq!(m.popular(), vec![&'y']);
        assert_eq!(m.matches(), 2);
        // "ab" * 100: both letters are popular, so no match can start; an empty best match at
        // (0, 0) is still extended over equal neighbours (difflib gives 2 for "ab", 0 for "ba").
        let b: Vec<char> = std::iter::repeat_n("ab", 100).flat_map(|s| s.chars()).collect();
        assert_eq!(SequenceMatcher::new(&a, &b).matches(), 2);
        assert_eq!(SequenceMatcher::new(&chars("ba"), &b).matches(), 0);
        assert_eq!(SequenceMatcher::with_autojunk(&chars("ba"), &b, false).matches(), 2);
    }
}
