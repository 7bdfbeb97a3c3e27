//! Python string semantics the official scorers rely on (`str.split()`, `strip()`, `float()`,
//! `repr()` of lists). Scores only match the official numbers if these match, so they live in
//! one place and are tested against Python's behaviour.

/// Python's `str.isspace()` for one character: Rust's `White_Space` plus the four ASCII
/// information separators (`\x1c`..`\x1f`) that Python also treats as whitespace.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `s.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `s.split()` (no argument): runs of whitespace separate, empty pieces are dropped.
pub fn split_ws(s: &str) -> Vec<&str> {
    s.split(is_py_space).filter(|p| !p.is_empty()).collect()
}

/// Number of code points (`len(s)` in Python).
pub fn py_len(s: &str) -> usize {
    s.chars().count()
}

/// The first code point of every run of ten Unicode decimal digits (general category `Nd`) in
/// the Unicode 14.0 tables of CPython 3.11 (`unicodedata.decimal(c) == 0`); every run is
/// contiguous, so a digit's value is its distance from the run's zero.
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0,
    0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620,
    0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0,
    0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a Unicode decimal digit (`'7'`, `'٧'`, `'７'`, `'𝟕'`), as Python's
/// `unicodedata.decimal` gives it; `None` for anything else (`'²'`, `'Ⅶ'` are not decimal).
pub fn py_decimal(c: char) -> Option<u32> {
    let cp = c as u32;
    let i = DECIMAL_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (cp - zero < 10).then_some(cp - zero)
}

/// `float(s)` for a `str`, as CPython 3.11 parses it: Unicode decimal digits count as their ASCII
/// digits and any Python whitespace as a space (`_PyUnicode_TransformDecimalAndSpaceToASCII`),
/// then surrounding whitespace, a sign, `inf`/`infinity`/`nan` in any case, and underscores
/// between digits are accepted; anything else is `None`.
pub fn py_float(s: &str) -> Option<f64> {
    // Every other non-ASCII character makes the string invalid (CPython maps it to '?').
    let ascii: String = s
        .chars()
        .map(|c| match py_decimal(c) {
            Some(d) => char::from(b'0' + d as u8),
            None if is_py_space(c) => ' ',
            None if c.is_ascii() => c,
            None => '?',
        })
        .collect();
    let t = strip(&ascii);
    let (sign, body) = match t.as_bytes().first() {
        Some(b'+') => (1.0, &t[1..]),
        Some(b'-') => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    let lower = body.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Some(sign * f64::INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    // Grammar: digitpart ["." [digitpart]] | "." digitpart, then [("e"|"E") ["+"|"-"] digitpart],
    // where digitpart = digit (["_"] digit)*.
    let b = body.as_bytes();
    let mut i = 0;
    let mut clean = String::with_capacity(b.len());
    fn digitpart(b: &[u8], i: &mut usize, out: &mut String) -> bool {
        let start = *i;
        while *i < b.len() {
            if b[*i].is_ascii_digit() {
                out.push(b[*i] as char);
                *i += 1;
            } else if b[*i] == b'_' && *i > start && *i + 1 < b.len() && b[*i + 1].is_ascii_digit() {
                *i += 1;
            } else {
                break;
            }
        }
        *i > start
    }
    let int_part = digitpart(b, &mut i, &mut clean);
    let mut frac_part = false;
    if i < b.len() && b[i] == b'.' {
        clean.push('.');
        i += 1;
        frac_part = digitpart(b, &mut i, &mut clean);
    }
    if !int_part && !frac_part {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        clean.push('e');
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            clean.push(b[i] as char);
            i += 1;
        }
        if !digitpart(b, &mut i, &mut clean) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    clean.parse::<f64>().ok().map(|v| sign * v)
}

/// `repr(x)` for a Python float: shortest round-trip digits, scientific notation outside
/// `1e-4 <= |x| < 1e16`, and always a `.0` on integral values.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // Shortest digits and decimal exponent from Rust's `{:e}` (also shortest round-trip).
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let m = if rest.is_empty() { first.to_string() } else { format!("{first}.{rest}") };
        let es = if exp < 0 { format!("-{:02}", -exp) } else { format!("+{exp:02}") };
        return format!("{sign}{m}e{es}");
    }
    let n = digits.len() as i32;
    let s = if exp < 0 {
        format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else if exp + 1 >= n {
        format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
    } else {
        let (a, b) = digits.split_at((exp + 1) as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{s}")
}

/// `repr(s)` for a Python `str` (quote choice and escapes as CPython does for printable text).
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `repr(list)` of JSON values as Python would print the decoded list (`[0.1, 0.25]`,
/// `['a', 'b']`, nested lists). Integers print without `.0`, as Python ints do.
pub fn list_repr(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(xs) => format!("[{}]", xs.iter().map(list_repr).collect::<Vec<_>>().join(", ")),
        serde_json::Value::String(s) => str_repr(s),
        serde_json::Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                n.to_string()
            } else {
                float_repr(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Object(_) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_parsing_follows_python() {
        for (s, v) in [
            ("5", 5.0),
            (" 1.5\n", 1.5),
            ("1_0", 10.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("-2e3", -2000.0),
            ("+1E-2", 0.01),
            ("Infinity", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
        ] {
            assert_eq!(py_float(s), Some(v), "{s:?}");
        }
        assert!(py_float("NaN").unwrap().is_nan());
        for s in ["", ".", "1__0", "_1", "1_", "1e", "e5", "1.5 m", "two", "1,5", "0x10", "--1", "²", "1\u{a0}0", "٫5"]
        {
            assert_eq!(py_float(s), None, "{s:?}");
        }
        // Unicode decimal digits and whitespace, as CPython 3.11.
        for (s, v) in [("５", 5.0), ("٣.٥", 3.5), ("１_０", 10.0), ("\u{3000}𝟕\u{2029}", 7.0), ("1e１", 10.0)]
        {
            assert_eq!(py_float(s), Some(v), "{s:?}");
        }
        assert_eq!(py_decimal('/'), None);
        assert_eq!(py_decimal(':'), None);
        assert_eq!(py_decimal('\u{1FBF9}'), Some(9));
        assert_eq!(py_decimal('\u{1FBFA}'), None);
    }

    #[test]
    fn float_repr_follows_python() {
        for (x, s) in [
            (0.2, "0.2"),
            (1.0, "1.0"),
            (0.39, "0.39"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123456.0, "123456.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (-0.5, "-0.5"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(float_repr(x), s);
        }
    }

    #[test]
    fn str_repr_picks_quotes_like_python() {
        assert_eq!(str_repr("abc"), "'abc'");
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("say \"it's\""), "'say \"it\\'s\"'");
        assert_eq!(str_repr("a\nb"), "'a\\nb'");
    }

    #[test]
    fn whitespace_includes_information_separators() {
        assert_eq!(split_ws(" a\x1cb\u{a0}c  "), vec!["a", "b", "c"]);
        assert_eq!(strip("\t x \n"), "x");
    }
}
