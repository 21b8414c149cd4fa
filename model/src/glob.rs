//! Redis's glob patterns (KEYS, SCAN MATCH, CONFIG GET): `*`, `?`, classes
//! `[abc]`, `[^abc]`, `[a-z]`, and `\` escaping the next byte. Matched
//! without recursion (backtracking to the last `*` only), so no pattern
//! can make a match take more than pattern length x subject length steps.

/// One pattern token matching one byte (a `*` is handled apart).
fn one(pattern: &[u8], at: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    match pattern.get(at)? {
        b'?' => Some((true, at + 1)),
        b'\\' if at + 1 < pattern.len() => Some((eq(pattern[at + 1], c), at + 2)),
        b'[' => {
            let mut i = at + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            loop {
                match pattern.get(i) {
                    // An unclosed class ends with the pattern, as in Redis.
                    None => break,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < pattern.len() => {
                        hit |= eq(pattern[i + 1], c);
                        i += 2;
                    }
                    Some(&lo)
                        if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() && pattern[i + 2] != b']' =>
                    {
                        let hi = pattern[i + 2];
                        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                        let (c, lo, hi) = if nocase {
                            (c.to_ascii_lowercase(), lo.to_ascii_lowercase(), hi.to_ascii_lowercase())
                        } else {
                            (c, lo, hi)
                        };
                        hit |= lo <= c && c <= hi;
                        i += 3;
                    }
                    Some(&p) => {
                        hit |= eq(p, c);
                        i += 1;
                    }
                }
            }
            Some((hit != negate, i))
        }
        &p => Some((eq(p, c), at + 1)),
    }
}

/// Whether `s` matches `pattern`; `nocase` compares ASCII letters without
/// case (CONFIG GET), as Redis's `stringmatchlen` does.
pub fn matches(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the
    // subject position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            star = Some((p, i));
            continue;
        }
        match one(pattern, p, s[i], nocase) {
            Some((true, next)) => {
                p = next;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    star = Some((sp, si + 1));
                    p = sp;
                    i = si + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_as_in_redis() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes(), false);
        assert!(m("*", "") && m("*", "anything"));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello") && !m("h*llo", "hellox"));
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo") && m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo") && !m("h\\*llo", "hello"));
        assert!(m("user:*:name", "user:42:name") && !m("user:*:name", "user:42:mail"));
        assert!(m("*a*b", "xxaxxb") && !m("*a*b", "xxbxxa"));
        assert!(!m("abc", "ab") && !m("ab", "abc") && m("ab*", "ab"));
        assert!(matches(b"MAX*", b"maxclients", true) && !matches(b"MAX*", b"maxclients", false));
    }

    /// A pattern of many stars against a long subject: a recursive matcher
    /// would try some 10^100 ways (this test would never end); this one
    /// looks at most pattern x subject positions.
    #[test]
    fn no_pattern_takes_exponential_time() {
        let s = "a".repeat(10_000);
        let p = "*a".repeat(50) + "b";
        assert!(!matches(p.as_bytes(), s.as_bytes(), false));
    }
}
