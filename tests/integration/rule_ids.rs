//! Rule IDs: every ID cited in the repository is defined in `docs/protocol.md`, and every rule
//! defined there (unless marked *Not implemented*) is cited by at least one test.
//!
//! The scanner is plain string handling (no regex crate): a candidate is a run of 2–6 ASCII
//! capitals at a word start, a hyphen, and 1–3 digits not followed by a letter or digit.
//! Candidates whose prefix is listed in protocol.md's prefix table are rule citations; those
//! listed under "Not rule IDs" (`SHA-256`, `UTF-8`, …) are ignored; anything else is reported,
//! so an area cannot cite rules it never defined. This file holds no literal rule ID on
//! purpose: whatever it mentioned would count as a test citation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the rules are defined, relative to the repository root.
const PROTOCOL: &str = "docs/protocol.md";
/// Directories scanned for citations (recursively).
const DIRS: [&str; 10] = [
    "src",
    "tests",
    "benches",
    "docs",
    "providers",
    ".ci",
    "scripts",
    "contrib",
    "examples",
    "fuzz",
];
/// Single files scanned for citations.
const FILES: [&str; 4] = ["README.md", "CONTRIBUTING.md", "CHANGELOG.md", "Cargo.toml"];
/// Directories never scanned: third-party or generated content.
const SKIP_DIRS: [&str; 3] = ["node_modules", "target", "snapshots"];
/// File extensions scanned; files without an extension are scanned too (`.ci/run`).
const EXTENSIONS: [&str; 9] = ["rs", "md", "toml", "mjs", "js", "sh", "py", "cfg", "conf"];
/// The heading of the prefix table in protocol.md.
const PREFIX_HEADING: &str = "### ID prefixes";
/// The line of protocol.md that lists prefixes which are not rule IDs.
const NOT_IDS_MARKER: &str = "Not rule IDs:";
/// The mark of a rule with no implementation (and so no test).
const NOT_IMPLEMENTED: &str = "Not implemented.";

/// A rule defined in protocol.md.
#[derive(Debug)]
struct Rule {
    line: usize,
    implemented: bool,
}

/// What protocol.md defines.
#[derive(Debug, Default)]
struct Catalogue {
    prefixes: BTreeSet<String>,
    not_ids: BTreeSet<String>,
    rules: BTreeMap<String, Rule>,
}

/// One ID-like token found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    prefix: String,
    number: u32,
    line: usize,
    /// Inside a test: under `tests/`, a `tests.rs`, or after `#[cfg(test)] mod …`.
    in_test: bool,
}

impl Token {
    fn id(&self) -> String {
        format!("{}-{}", self.prefix, self.number)
    }
}

/// The text after `**` at the start of a definition line, up to the closing `**`.
fn definition_id(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("- **")?;
    let end = rest.find("**")?;
    Some(&rest[..end])
}

/// Splits `PREFIX-N` into its parts when it has the ID shape.
fn split_id(id: &str) -> Option<(String, u32)> {
    let (prefix, number) = id.split_once('-')?;
    let prefix_ok =
        (2..=6).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase());
    let number_ok = (1..=3).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit());
    (prefix_ok && number_ok).then(|| (prefix.to_string(), number.parse().unwrap_or(0)))
}

/// The backquoted words of `line`.
fn backquoted(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Reads the prefix table, the "not rule IDs" list and the definitions of protocol.md.
fn parse_catalogue(text: &str) -> (Catalogue, Vec<String>) {
    let mut cat = Catalogue::default();
    let mut problems = Vec::new();
    let mut in_prefix_table = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.starts_with('#') {
            in_prefix_table = line.trim() == PREFIX_HEADING;
            continue;
        }
        if in_prefix_table
            && line.starts_with("| `")
            && let Some(prefix) = backquoted(line).into_iter().next()
        {
            cat.prefixes.insert(prefix);
        }
        if let Some(rest) = line.strip_prefix(NOT_IDS_MARKER) {
            cat.not_ids.extend(backquoted(rest));
        }
        let Some(id) = definition_id(line) else {
            continue;
        };
        if split_id(id).is_none() {
            problems.push(format!(
                "{PROTOCOL}:{n}: `{id}` is not an ID (2-6 capitals, a hyphen, 1-3 digits)"
            ));
            continue;
        }
        let implemented = !line.contains(NOT_IMPLEMENTED);
        if let Some(first) = cat.rules.get(id) {
            problems.push(format!(
                "{PROTOCOL}:{n}: `{id}` is defined twice (first on line {})",
                first.line
            ));
        } else {
            cat.rules.insert(
                id.to_string(),
                Rule {
                    line: n,
                    implemented,
                },
            );
        }
    }
    for (id, rule) in &cat.rules {
        let prefix = id.split('-').next().unwrap_or_default();
        if !cat.prefixes.contains(prefix) {
            problems.push(format!(
                "{PROTOCOL}:{}: `{id}` uses the prefix `{prefix}`, which is missing from the \
                 table under \"{PREFIX_HEADING}\": add a row for it",
                rule.line
            ));
        }
    }
    if cat.prefixes.is_empty() {
        problems.push(format!(
            "{PROTOCOL}: no prefix table found under \"{PREFIX_HEADING}\""
        ));
    }
    (cat, problems)
}

/// The line numbers (1-based) from which a source file counts as test code: everything for a
/// test file, else from the first `#[cfg(test)]` that is followed by a `mod` item.
fn test_start(path: &str, text: &str) -> usize {
    let file = path.rsplit('/').next().unwrap_or(path);
    if path.starts_with("tests/") || file == "tests.rs" {
        return 1;
    }
    if !path.ends_with(".rs") {
        return usize::MAX;
    }
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        let next = lines[i + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !l.starts_with("#["));
        // An inline module (`mod tests {`); a `mod x;` declaration says nothing about x's lines.
        let inline_mod =
            |l: &str| (l.starts_with("mod ") || l.starts_with("pub mod ")) && l.ends_with('{');
        if next.is_some_and(inline_mod) {
            return i + 1;
        }
    }
    usize::MAX
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The digits at the start of `s`, if 1–3 of them and not followed by a letter or digit.
fn leading_number(s: &str) -> Option<(u32, usize)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=3).contains(&len) || s[len..].chars().next().is_some_and(is_word) {
        return None;
    }
    Some((s[..len].parse().ok()?, len))
}

/// Expands the range or pair that may follow an ID: `..3`, `..X-3`, `–X-3` or `/3`.
fn range_end(after: &str, prefix: &str) -> Option<u32> {
    let rest = after
        .strip_prefix("..")
        .or_else(|| after.strip_prefix('–'))
        .or_else(|| after.strip_prefix('/'))?;
    let rest = rest
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .unwrap_or(rest);
    leading_number(rest).map(|(n, _)| n)
}

/// Every ID-like token of one line (ranges expanded).
fn line_tokens(line: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (start, c) = chars[k];
        let at_word_start = k == 0 || !is_word(chars[k - 1].1);
        if !(c.is_ascii_uppercase() && at_word_start) {
            k += 1;
            continue;
        }
        let caps = line[start..]
            .bytes()
            .take_while(u8::is_ascii_uppercase)
            .count();
        let after_caps = &line[start + caps..];
        let number = after_caps
            .strip_prefix('-')
            .and_then(leading_number)
            .filter(|_| (2..=6).contains(&caps));
        if let Some((number, len)) = number {
            let prefix = line[start..start + caps].to_string();
            let after = &after_caps[1 + len..];
            if let Some(end) = range_end(after, &prefix).filter(|&e| e > number && e - number <= 30)
            {
                out.extend((number + 1..=end).map(|n| (prefix.clone(), n)));
            }
            out.push((prefix, number));
        }
        k += caps.max(1);
    }
    out
}

/// Rule citations in the name of a test function, in either spelling: a test named
/// `cb7_wrong_state` or `wrong_state_cb_7` cites rule 7 of the `CB` section, and
/// `…_proxy_7_8` rules 7 and 8 of `PROXY` (numbers of one or two digits here).
fn fn_name_tokens(line: &str, prefixes: &BTreeSet<String>) -> Vec<(String, u32)> {
    let Some(rest) = line.trim_start().split("fn ").nth(1) else {
        return Vec::new();
    };
    let name: String = rest.chars().take_while(|&c| is_word(c)).collect();
    // One or two digits: `via_proxy_502` names a status, not a rule.
    let number = |s: &str| {
        ((1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let known = |s: &str| {
        let upper = s.to_ascii_uppercase();
        (s.len() >= 2 && s.bytes().all(|b| b.is_ascii_lowercase()) && prefixes.contains(&upper))
            .then_some(upper)
    };
    let parts: Vec<&str> = name.split('_').collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        // `cb7`: letters and digits in one part.
        let letters = part.bytes().take_while(u8::is_ascii_lowercase).count();
        if let (Some(prefix), Some(n)) = (known(&part[..letters]), number(&part[letters..])) {
            out.push((prefix, n));
            continue;
        }
        // `cb_7` and `proxy_7_8`: a prefix, then numbers as parts of their own.
        if let Some(prefix) = known(part) {
            out.extend(
                parts[i + 1..]
                    .iter()
                    .map_while(|p| number(p))
                    .map(|n| (prefix.clone(), n)),
            );
        }
    }
    out
}

/// Every token of one file, with its line and whether it sits in test code.
fn file_tokens(path: &str, text: &str, prefixes: &BTreeSet<String>) -> Vec<Token> {
    let tests_from = test_start(path, text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let in_test = n >= tests_from;
        let mut found = line_tokens(line);
        if in_test && path.ends_with(".rs") {
            found.extend(fn_name_tokens(line, prefixes));
        }
        out.extend(found.into_iter().map(|(prefix, number)| Token {
            prefix,
            number,
            line: n,
            in_test,
        }));
    }
    out
}

/// Citations of an issue number (the word "issue", a space and digits) in Rust code: a comment
/// cites the rule it follows instead, which a reader of this repository alone can look up.
fn issue_citations(path: &str, text: &str) -> Vec<String> {
    if !path.ends_with(".rs") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        let cited = lower.match_indices("issue ").any(|(at, word)| {
            let word_start = at == 0 || !lower[..at].ends_with(|c: char| is_word(c));
            let after = &lower[at + word.len()..];
            word_start && after.starts_with(|c: char| c.is_ascii_digit())
        });
        if cited {
            out.push(format!(
                "{path}:{}: cites an issue number: cite the rule it meant (an ID defined in \
                 {PROTOCOL}, adding one if needed) or say why in words",
                i + 1
            ));
        }
    }
    out
}

/// Checks `files` (path relative to the root, text) against `cat`; one message per problem.
fn check(cat: &Catalogue, files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut tested: BTreeSet<String> = BTreeSet::new();
    for (path, text) in files {
        problems.extend(issue_citations(path, text));
        for token in file_tokens(path, text, &cat.prefixes) {
            let id = token.id();
            let at = format!("{path}:{}", token.line);
            if cat.not_ids.contains(&token.prefix) {
                continue;
            }
            if !cat.prefixes.contains(&token.prefix) {
                problems.push(format!(
                    "{at}: `{id}` looks like a rule ID, but `{}` is not a prefix in {PROTOCOL}: \
                     define the rule there (add the prefix to the table under \
                     \"{PREFIX_HEADING}\" and a `- **{id}** …` item), or, if it is not a rule \
                     ID, add `{}` to the \"{NOT_IDS_MARKER}\" line",
                    token.prefix, token.prefix
                ));
                continue;
            }
            if !cat.rules.contains_key(&id) {
                problems.push(format!(
                    "{at}: `{id}` is cited but not defined in {PROTOCOL}: add a `- **{id}** …` \
                     item to its section, or cite the rule that is meant"
                ));
                continue;
            }
            if token.in_test {
                tested.insert(id);
            }
        }
    }
    for (id, rule) in &cat.rules {
        if rule.implemented && !tested.contains(id) {
            let name = id.replace('-', "").to_ascii_lowercase();
            problems.push(format!(
                "{PROTOCOL}:{}: `{id}` is defined but no test cites it: cite it in a test \
                 (a test name such as `fn {name}_…`, or a comment or assertion message in \
                 tests/ or a #[cfg(test)] module), or mark the rule \"***{NOT_IMPLEMENTED}***\"",
                rule.line
            ));
        }
    }
    problems
}

/// Every scanned file under `root`, as (relative path with `/`, text).
fn repository_files(root: &Path) -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
    let mut dirs: Vec<PathBuf> = DIRS.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) {
                    dirs.push(path);
                }
            } else {
                paths.push(path);
            }
        }
    }
    let mut files: Vec<(String, String)> = paths
        .into_iter()
        .filter(|p| {
            p.extension()
                .is_none_or(|e| EXTENSIONS.contains(&e.to_string_lossy().as_ref()))
        })
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let rel = p
                .strip_prefix(root)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            Some((rel, text))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_cited_rule_is_defined_and_every_rule_is_tested() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let protocol = std::fs::read_to_string(root.join(PROTOCOL)).expect("docs/protocol.md");
    let (cat, mut problems) = parse_catalogue(&protocol);
    assert!(
        cat.rules.len() > 50,
        "only {} rules parsed from {PROTOCOL}",
        cat.rules.len()
    );
    let files = repository_files(root);
    assert!(
        files.iter().any(|(p, _)| p == "src/lib.rs") && files.iter().any(|(p, _)| p == PROTOCOL),
        "the scan missed the sources"
    );
    problems.extend(check(&cat, &files));
    assert!(
        problems.is_empty(),
        "rule ID problems ({}), see \"How IDs work\" in {PROTOCOL}:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---- The scanner itself, on planted input (IDs built at run time, see the module doc). ----

/// An ID from parts, so this file's text holds no literal ID.
fn id(prefix: &str, n: u32) -> String {
    format!("{prefix}-{n}")
}

/// A small catalogue: prefixes `AB` and `CDE`, rules 1-3 of `AB` and an unimplemented `CDE` 1.
fn planted_catalogue() -> String {
    format!(
        "# Rules\n\n{PREFIX_HEADING}\n\n| prefix | area |\n| --- | --- |\n| `AB` | a |\n\
         | `CDE` | c |\n\n{NOT_IDS_MARKER} `SHA`, `UTF`.\n\n## A\n\n- **{}** one.\n\
         - **{}** two.\n- **{}** three.\n- **{}** ***{NOT_IMPLEMENTED}*** later.\n",
        id("AB", 1),
        id("AB", 2),
        id("AB", 3),
        id("CDE", 1)
    )
}

fn planted(cat_text: &str, files: &[(&str, String)]) -> Vec<String> {
    let (cat, mut problems) = parse_catalogue(cat_text);
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.clone()))
        .collect();
    problems.extend(check(&cat, &files));
    problems
}

#[test]
fn scanner_parses_the_catalogue() {
    let (cat, problems) = parse_catalogue(&planted_catalogue());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(cat.prefixes, BTreeSet::from(["AB".into(), "CDE".into()]));
    assert_eq!(cat.not_ids, BTreeSet::from(["SHA".into(), "UTF".into()]));
    assert_eq!(cat.rules.len(), 4);
    assert!(!cat.rules[&id("CDE", 1)].implemented);
    assert!(cat.rules[&id("AB", 2)].implemented);
}

#[test]
fn scanner_accepts_a_fully_cited_tree() {
    let test = format!(
        "// {} and {}\n#[test]\nfn ab3_works() {{}}\n",
        id("AB", 1),
        id("AB", 2)
    );
    let problems = planted(
        &planted_catalogue(),
        &[
            ("tests/a.rs", test),
            ("README.md", format!("UTF-8, SHA-256 and {}", id("AB", 1))),
        ],
    );
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn scanner_reports_an_undefined_id_with_file_and_line() {
    let src = format!("fn f() {{}}\n// see {}\n", id("AB", 9));
    let test = format!("// {}..3\n", id("AB", 1));
    let problems = planted(
        &planted_catalogue(),
        &[("src/x.rs", src), ("tests/t.rs", test)],
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!(
            "src/x.rs:2: `{}` is cited but not defined",
            id("AB", 9)
        )),
        "{problems:?}"
    );
}

#[test]
fn scanner_reports_an_unknown_prefix_and_an_untested_rule() {
    let src = format!("// {} and {}\n", id("ZZZ", 1), id("AB", 1));
    let test = format!("// {}\n", id("AB", 1));
    let problems = planted(
        &planted_catalogue(),
        &[("src/x.rs", src), ("tests/t.rs", test)],
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with(&format!(
        "src/x.rs:1: `{}` looks like a rule ID",
        id("ZZZ", 1)
    )));
    // `AB` 2 and 3 are cited by no test; `CDE` 1 is not implemented, so it needs none.
    assert!(problems[1].contains(&format!(
        "`{}` is defined but no test cites it",
        id("AB", 2)
    )));
    assert!(problems[2].contains(&format!(
        "`{}` is defined but no test cites it",
        id("AB", 3)
    )));
}

#[test]
fn scanner_counts_only_test_code_as_tests() {
    let src = format!(
        "// {} in the code\n#[cfg(test)]\nmod tests {{\n    // {}\n    fn ab3_x() {{}}\n}}\n",
        id("AB", 1),
        id("AB", 2)
    );
    let problems = planted(&planted_catalogue(), &[("src/m.rs", src)]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains(&format!(
        "`{}` is defined but no test cites it",
        id("AB", 1)
    )));
}

#[test]
fn scanner_reports_issue_numbers_in_code() {
    let src = format!(
        "// fine: no tissue 5 here\n// see {} 7 item 1\n/// ({} 5: speed)\n",
        "issue", "Issue"
    );
    let problems = planted(&planted_catalogue(), &[("src/x.rs", src.clone())]);
    let issues: Vec<&String> = problems
        .iter()
        .filter(|p| p.contains("cites an issue number"))
        .collect();
    assert_eq!(issues.len(), 2, "{problems:?}");
    assert!(issues[0].starts_with("src/x.rs:2:") && issues[1].starts_with("src/x.rs:3:"));
    // Only Rust code is checked: a changelog may name an issue.
    let problems = planted(&planted_catalogue(), &[("CHANGELOG.md", src)]);
    assert!(
        !problems.iter().any(|p| p.contains("issue number")),
        "{problems:?}"
    );
}

#[test]
fn scanner_catalogue_problems() {
    let text = format!(
        "{}- **{}** again.\n- **{}** no prefix row.\n",
        planted_catalogue(),
        id("AB", 1),
        id("XY", 1)
    );
    let (_, problems) = parse_catalogue(&text);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("is defined twice"));
    assert!(problems[1].contains("`XY`, which is missing from the table"));
}

#[test]
fn scanner_tokens() {
    let t = |s: &str| line_tokens(s);
    assert_eq!(t(&format!("({})", id("AB", 12))), [("AB".into(), 12)]);
    // Ranges and pairs expand; the end of a spelled-out range is found on its own as well.
    let range: Vec<u32> = t(&format!("{}..3", id("AB", 1)))
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(range, [2, 3, 1]);
    let spelled: Vec<u32> = t(&format!("{}..{}", id("AB", 7), id("AB", 9)))
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(spelled, [8, 9, 7, 9]);
    let pair: Vec<u32> = t(&format!("{}/8", id("AB", 7)))
        .iter()
        .map(|x| x.1)
        .collect();
    assert_eq!(pair, [8, 7]);
    // Not IDs: inside a word, a letter or a fourth digit after the number, one capital, seven.
    for s in [
        "xAB-1",
        "AB-1a",
        "AB-1234",
        "A-1",
        "ABCDEFG-1",
        "AB-",
        "ab-1",
    ] {
        assert!(t(s).is_empty(), "{s}: {:?}", t(s));
    }
    // A prefix after another word's hyphen is still a candidate (fixture strings are listed
    // under "Not rule IDs" instead).
    assert_eq!(t(&format!("at-{}", id("AB", 1))), [("AB".into(), 1)]);
    let prefixes = BTreeSet::from(["AB".to_string()]);
    assert_eq!(
        fn_name_tokens("    fn ab1_ab22_and_sha256_x() {", &prefixes),
        [("AB".into(), 1), ("AB".into(), 22)]
    );
    assert_eq!(
        fn_name_tokens("async fn ab_e2e_ab_3_4_then_ab_500_x() {", &prefixes),
        [("AB".into(), 3), ("AB".into(), 4)]
    );
}

/// The other house rules checked on the sources: file size and test-only code.
mod house;
