//! Reading the file: every problem TOML and the schema find, not just the first.
//!
//! `toml` stops at the first unknown key or wrong type. To report them all at once, the text is
//! parsed again with each offending key (or unknown table) blanked out, line numbers kept,
//! until it parses; what the check step then says about a key that was blanked (its default
//! stood in for it) is dropped, so every key is reported once and for what the operator wrote.

use std::collections::BTreeMap;

use super::raw::RawConfig;

/// Most problems read from one file before giving up (each costs one parse).
const MAX_PROBLEMS: usize = 50;

/// The raw config with the problems found reading it, or only the problems when it cannot be
/// read at all (a syntax error no line can be blanked around, or too many problems).
pub(super) struct Read {
    pub raw: Option<RawConfig>,
    pub problems: Vec<String>,
    /// Key paths blanked out ("target[0].timeout", "servr"): the check step's words about
    /// them are about defaults, not what was written.
    pub blanked: Vec<String>,
}

/// Parses `text`, blanking each key that does not fit the schema and parsing again.
pub(super) fn read(text: &str) -> Read {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // (line, problem), sorted by line at the end: serde finds them in its own order.
    let mut problems: Vec<(usize, String)> = Vec::new();
    let mut blanked = Vec::new();
    let sorted = |mut p: Vec<(usize, String)>| {
        p.sort_by_key(|(line, _)| *line);
        p.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
    };
    loop {
        let text = lines.join("\n");
        let e = match toml::from_str::<RawConfig>(&text) {
            Ok(raw) => {
                return Read {
                    raw: Some(raw),
                    problems: sorted(problems),
                    blanked,
                };
            }
            Err(e) => e,
        };
        let first = e.span().map_or(usize::MAX, |s| line_of(&text, s.start));
        problems.push((first, describe(&text, &e)));
        let give_up = |mut problems: Vec<(usize, String)>| {
            if problems.len() >= MAX_PROBLEMS {
                problems.push((
                    usize::MAX,
                    format!("(stopped after {MAX_PROBLEMS} problems)"),
                ));
            }
            Read {
                raw: None,
                problems: sorted(problems),
                blanked: Vec::new(),
            }
        };
        let Some(span) = e.span() else {
            return give_up(problems);
        };
        if problems.len() >= MAX_PROBLEMS {
            return give_up(problems);
        }
        let last = line_of(&text, span.end.saturating_sub(1).max(span.start));
        match blank(&mut lines, first, last) {
            Some(path) => blanked.push(path),
            None => return give_up(problems),
        }
    }
}

/// The 1-based line of byte `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Blanks the key on line `first` (its value may run to line `last` or further) or the table
/// whose header is on line `first`; returns what was blanked, or `None` when line `first` is
/// neither (a syntax error that blanking cannot get past).
fn blank(lines: &mut [String], first: usize, last: usize) -> Option<String> {
    let text = lines.join("\n");
    if lines.get(first - 1)?.trim_start().starts_with('[') {
        let name = header_name(&lines[first - 1])?;
        let end = (first..lines.len())
            .find(|&i| lines[i].trim_start().starts_with('['))
            .unwrap_or(lines.len());
        lines[first - 1..end].iter_mut().for_each(String::clear);
        return Some(name);
    }
    let path = key_path_at(&text, first)?;
    // A multi-line value (an array, an inline table) runs until its brackets close.
    let mut depth = 0i32;
    let mut end = first;
    for (i, l) in lines.iter().enumerate().skip(first - 1) {
        let value = if i == first - 1 {
            l.split_once('=').map_or("", |(_, v)| v)
        } else {
            l.as_str()
        };
        depth += bracket_depth(value);
        end = i + 1;
        if depth <= 0 && end >= last {
            break;
        }
    }
    lines[first - 1..end].iter_mut().for_each(String::clear);
    Some(path)
}

/// How many more brackets `s` opens than it closes, outside quoted strings and comments.
fn bracket_depth(s: &str) -> i32 {
    let mut depth = 0;
    let mut quote = None;
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => break,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    depth
}

/// The name of a well-formed `[table]` or `[[array]]` header line.
fn header_name(line: &str) -> Option<String> {
    let l = line.split('#').next().unwrap_or("").trim();
    let inner = l
        .strip_prefix("[[")
        .and_then(|r| r.strip_suffix("]]"))
        .or_else(|| l.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
    let name = inner.trim();
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
    (!name.is_empty() && name.bytes().all(plain)).then(|| name.to_string())
}

/// One line naming the key path and line: "target[0].bukket (line 5): unknown field ...".
/// (toml's own rendering spans several lines and has no key path.)
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else { return message };
    let line = line_of(text, span.start);
    let table = || {
        let l = text.lines().nth(line - 1)?;
        header_name(l).filter(|_| l.trim_start().starts_with('['))
    };
    match key_path_at(text, line).or_else(table) {
        Some(path) => format!("{path} (line {line}): {message}"),
        None => format!("line {line}: {message}"),
    }
}

/// The dotted key path of a `key = value` line, from the table headers above it
/// (`[[target]]` headers are counted, so the second target's keys are `target[1].key`).
fn key_path_at(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in text.lines().take(line.saturating_sub(1)) {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let n = counts.entry(name.trim().to_string()).or_insert(0);
            section = format!("{}[{n}]", name.trim());
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = name.trim().to_string();
        }
    }
    let (key, _) = text.lines().nth(line - 1)?.split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        return None;
    }
    Some(if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    })
}

/// Whether the check step's `problem` is about a key in `blanked` (or under it).
pub(super) fn about_blanked(problem: &str, blanked: &[String]) -> bool {
    blanked.iter().any(|b| {
        problem
            .strip_prefix(b.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '.', '[', ':']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "[[target]]\nname = \"a\"\nbucket = \"my-bucket\"\nregion = \"us-east-1\"\n";

    #[test]
    fn every_unknown_key_and_wrong_type_is_reported_with_its_line() {
        let text = format!(
            "[defaults]\nintervall = \"30s\"\nobject_size = [\n  1,\n  2,\n]\n{ONE}bukket = \"x\"\n\
             [servr]\nlisten = 1\n[[target]]\nname = \"b\"\nbucket = \"b-b\"\nregion = \"us-east-1\"\ntimeout = 5\n"
        );
        let r = read(&text);
        assert!(r.raw.is_some(), "{:?}", r.problems);
        let at: Vec<&str> = r
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            at,
            [
                "defaults.intervall (line 2)",
                "defaults.object_size (line 3)",
                "target[0].bukket (line 11)",
                "servr (line 12)",
                "target[1].timeout (line 18)"
            ],
            "{:?}",
            r.problems
        );
        let mut blanked = r.blanked.clone();
        blanked.sort();
        assert_eq!(
            blanked,
            [
                "defaults.intervall",
                "defaults.object_size",
                "servr",
                "target[0].bukket",
                "target[1].timeout"
            ]
        );
    }

    #[test]
    fn a_syntax_error_stops_reading_at_its_line() {
        let r = read("[[target]\nname = \"a\"\n");
        assert!(r.raw.is_none());
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    }

    #[test]
    fn problems_about_blanked_keys_are_recognised() {
        let b = vec!["target[0].timeout".to_string()];
        assert!(about_blanked(
            "target[0].timeout (10s) must be shorter than interval (5s)",
            &b
        ));
        assert!(!about_blanked("target[0].timeouts (1s) ...", &b));
        assert!(!about_blanked("target[1].timeout ...", &b));
    }
}
