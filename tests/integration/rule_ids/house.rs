//! House rules checked on the sources, beside the rule IDs (CONTRIBUTING.md, "Size and
//! test-only code"):
//!
//! - every file under `src/` holds at most [`MAX_LINES`] lines of non-test code;
//! - the test-only modules (fault injection, hostile answers, preview fixtures, the HTTP stub)
//!   are compiled only under `cfg(test)` or the `test-support` feature, and nothing but the
//!   self dev-dependency turns that feature on, so `cargo build --release` and `authdeck demo`
//!   carry none of them.
//!
//! The line counter is deliberately simple and relies on rustfmt's layout (CI checks it):
//! - a file is all test code when it is a `tests.rs`, or when its `mod` declaration is
//!   `#[cfg(test)]` (e.g. `src/oauth/jwks/testkeys.rs`);
//! - in any other file, a `#[cfg(test)]` line followed (after further attributes or doc
//!   comments) by an inline `mod NAME {` starts test code, which ends at the first `}` line with
//!   the `mod` line's indentation;
//! - every other line counts: code, comments and blank lines alike (a split is judged by what
//!   a reader has to hold, and a file is not shortened by deleting its comments).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Most lines of non-test code a file under `src/` may hold.
const MAX_LINES: usize = 600;

/// Files allowed above [`MAX_LINES`], each with its ceiling and the reason. An entry is for a
/// file where a split would hurt more than the length does; the ceiling stops it growing.
const ALLOWED: &[(&str, usize, &str)] = &[];

/// The test-only modules: (declaring file, module name). Each must be declared under
/// `#[cfg(any(test, feature = "test-support"))]` or `#[cfg(test)]`, and so must every `pub use`
/// of it in that file.
const TEST_ONLY: &[(&str, &str)] = &[
    ("src/devserver/mod.rs", "faults"),
    ("src/devserver/mod.rs", "hostile"),
    ("src/ui/mod.rs", "preview"),
    ("src/oauth/mod.rs", "testutil"),
];

/// The attributes that keep a module out of a normal build.
const GATES: [&str; 2] = [
    "#[cfg(any(test, feature = \"test-support\"))]",
    "#[cfg(test)]",
];

/// Every `.rs` file under `dir`, as (path relative to `root` with `/`, text), sorted.
fn rust_files(root: &Path, dir: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![root.join(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                let rel = path.strip_prefix(root).expect("under root");
                files.push((rel.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    files.sort();
    files
}

/// The line after `i` that is not an attribute or a doc comment, trimmed.
fn item_after<'a>(lines: &[&'a str], i: usize) -> Option<(usize, &'a str)> {
    lines
        .iter()
        .enumerate()
        .skip(i + 1)
        .map(|(j, l)| (j, l.trim()))
        .find(|(_, l)| !l.starts_with("#[") && !l.starts_with("///") && !l.is_empty())
}

/// The module name of a `mod` item line (`pub(crate) mod x {`, `mod x;`), and whether it is
/// inline.
fn mod_item(line: &str) -> Option<(&str, bool)> {
    let rest = line.strip_prefix("pub ").unwrap_or(line);
    let rest = match rest.strip_prefix("pub(") {
        Some(r) => r.split_once(") ")?.1,
        None => rest,
    };
    let rest = rest.strip_prefix("mod ")?;
    if let Some(name) = rest.strip_suffix(" {") {
        return Some((name, true));
    }
    rest.strip_suffix(';').map(|name| (name, false))
}

/// Lines of non-test code in one file's text (see the module doc), and the modules it
/// declares as `#[cfg(test)] mod NAME;`.
fn count(text: &str) -> (usize, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut code = 0;
    let mut test_files = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]"
            && let Some((j, item)) = item_after(&lines, i)
            && let Some((name, inline)) = mod_item(item)
        {
            if !inline {
                test_files.push(name.to_owned());
            } else {
                let indent = &lines[j][..lines[j].len() - lines[j].trim_start().len()];
                let close = format!("{indent}}}");
                let end = (j + 1..lines.len()).find(|&k| lines[k] == close);
                // An unclosed block counts as code: the check must not pass by a layout slip.
                if let Some(end) = end {
                    i = end + 1;
                    continue;
                }
            }
        }
        code += 1;
        i += 1;
    }
    (code, test_files)
}

/// Where `mod name;` declared in `file` lives: both candidate paths.
fn module_paths(file: &str, name: &str) -> [String; 2] {
    let (dir, leaf) = file.rsplit_once('/').unwrap_or((".", file));
    let base = match leaf {
        "mod.rs" | "lib.rs" | "main.rs" => dir.to_owned(),
        _ => format!("{dir}/{}", leaf.trim_end_matches(".rs")),
    };
    [format!("{base}/{name}.rs"), format!("{base}/{name}/mod.rs")]
}

/// (path, lines of non-test code) of every non-test file, largest first.
fn sizes(files: &[(String, String)]) -> Vec<(String, usize)> {
    let mut test_only: BTreeSet<String> = BTreeSet::new();
    let mut counted = Vec::new();
    for (path, text) in files {
        let (code, test_mods) = count(text);
        for name in test_mods {
            test_only.extend(module_paths(path, &name));
        }
        counted.push((path.clone(), code));
    }
    let mut sizes: Vec<(String, usize)> = counted
        .into_iter()
        .filter(|(p, _)| !p.ends_with("/tests.rs") && !test_only.contains(p))
        .collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sizes
}

/// One line per file over its limit.
fn oversized(sizes: &[(String, usize)], allowed: &[(&str, usize, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, lines) in sizes {
        let entry = allowed.iter().find(|(p, _, _)| p == path);
        let limit = entry.map_or(MAX_LINES, |(_, ceiling, _)| *ceiling);
        if *lines > limit {
            problems.push(match entry {
                None => format!(
                    "{path}: {lines} lines of non-test code (at most {MAX_LINES}): split it into \
                     files named for what they own, or, where a split would hurt, add an entry \
                     with the reason to ALLOWED in tests/integration/rule_ids/house.rs"
                ),
                Some(_) => format!(
                    "{path}: {lines} lines of non-test code, above its allowed ceiling {limit}"
                ),
            });
        }
    }
    for (path, _, _) in allowed {
        if !sizes.iter().any(|(p, _)| p == path) {
            problems.push(format!("ALLOWED names {path}, which is not a source file"));
        }
    }
    problems
}

#[test]
fn source_files_hold_at_most_600_lines_of_non_test_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rust_files(root, "src");
    let sizes = sizes(&files);
    assert!(
        sizes.iter().any(|(p, _)| p == "src/lib.rs") && sizes.len() > 100,
        "the scan missed the sources: {} files",
        sizes.len()
    );
    let problems = oversized(&sizes, ALLOWED);
    assert!(
        problems.is_empty(),
        "files too long ({}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn line_counter_skips_test_modules_only() {
    let text = "\
//! doc
fn a() {}

#[cfg(test)]
mod tests {
    fn b() {}
}

#[cfg(test)]
/// Keys.
pub(crate) mod testkeys;
#[cfg(any(test, feature = \"test-support\"))]
mod support {
    fn c() {}
}
fn d() {
    #[cfg(test)]
    mod inner {
        fn e() {}
    }
}
";
    let (code, test_mods) = count(text);
    // 3 lines before the first test module, the blank line after it, the 3 of `testkeys`'
    // declaration, the 4 of `support` and the 2 lines of `d` around its inner test module.
    assert_eq!(code, 3 + 1 + 3 + 4 + 2);
    assert_eq!(test_mods, ["testkeys"]);
    // An unclosed test module counts as code.
    assert_eq!(count("#[cfg(test)]\nmod tests {\n  fn x() {}\n").0, 3);
    assert_eq!(
        module_paths("src/oauth/jwks.rs", "testkeys"),
        [
            "src/oauth/jwks/testkeys.rs",
            "src/oauth/jwks/testkeys/mod.rs"
        ]
    );
    assert_eq!(
        module_paths("src/ui/mod.rs", "preview")[0],
        "src/ui/preview.rs"
    );
}

#[test]
fn size_check_reports_a_long_file_and_honours_the_allow_list() {
    let long = "fn f() {}\n".repeat(MAX_LINES + 1);
    let files = vec![
        ("src/a.rs".to_owned(), long.clone()),
        ("src/a/tests.rs".to_owned(), long.clone()),
        (
            "src/b.rs".to_owned(),
            format!("#[cfg(test)]\nmod k;\n{long}"),
        ),
        ("src/b/k.rs".to_owned(), long),
    ];
    let sizes = sizes(&files);
    assert_eq!(
        sizes.len(),
        2,
        "tests.rs and b/k.rs are test code: {sizes:?}"
    );
    let problems = oversized(&sizes, &[]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("src/b.rs: 603 lines"),
        "{problems:?}"
    );
    assert!(oversized(&sizes, &[("src/a.rs", 601, "x"), ("src/b.rs", 603, "y")]).is_empty());
    assert_eq!(
        oversized(&sizes, &[("src/a.rs", 600, "x"), ("src/b.rs", 603, "y")]).len(),
        1
    );
    assert_eq!(
        oversized(
            &sizes,
            &[
                ("src/a.rs", 601, "x"),
                ("src/b.rs", 603, "y"),
                ("src/c.rs", 1, "z")
            ]
        )
        .len(),
        1
    );
}

/// Problems with how `file`'s text gates the test-only module `name`.
fn gate_problems(file: &str, text: &str, name: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut problems = Vec::new();
    let mut declared = false;
    for (i, line) in lines.iter().enumerate() {
        let declares = mod_item(line).is_some_and(|(n, _)| n == name);
        let exports = line.starts_with("pub use ") && line[8..].starts_with(&format!("{name}::"));
        if !declares && !exports {
            continue;
        }
        declared |= declares;
        let gated = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
            .any(|l| GATES.contains(l));
        if !gated {
            problems.push(format!(
                "{file}:{}: `{line}` is test-only code outside cfg(test) / the test-support \
                 feature: it would ship in the release binary",
                i + 1
            ));
        }
    }
    if !declared {
        problems.push(format!("{file}: no `mod {name}` found (update TEST_ONLY)"));
    }
    problems
}

/// Problems with how Cargo.toml turns `test-support` on: only the self dev-dependency may.
fn feature_problems(manifest: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut section = "";
    for (i, line) in manifest.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if line.starts_with('#') || !line.contains("\"test-support\"") {
            continue;
        }
        let dev_self = section == "[dev-dependencies]" && line.starts_with("authdeck ");
        if !dev_self {
            problems.push(format!(
                "Cargo.toml:{}: `{line}` turns test-support on outside the self dev-dependency \
                 (in {section}): a release build would carry the test-only code",
                i + 1
            ));
        }
    }
    problems
}

#[test]
fn test_only_code_is_gated_out_of_the_release_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for (file, name) in TEST_ONLY {
        let text = std::fs::read_to_string(root.join(file)).expect("read a source file");
        problems.extend(gate_problems(file, &text, name));
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    problems.extend(feature_problems(&manifest));
    assert!(
        manifest.contains("authdeck = { path = \".\", features = [\"test-support\"] }"),
        "the self dev-dependency that turns test-support on for tests and benches is gone"
    );
    assert!(
        problems.is_empty(),
        "test-only code reachable from a release build:\n{}",
        problems.join("\n")
    );
}

#[test]
fn gate_check_reports_an_ungated_module_and_a_feature_turned_on() {
    let gated = "#[cfg(any(test, feature = \"test-support\"))]\nmod faults;\n\
                 #[cfg(any(test, feature = \"test-support\"))]\npub use faults::Fault;\n";
    assert!(gate_problems("m.rs", gated, "faults").is_empty());
    let open = "mod faults;\n#[cfg(test)]\npub use faults::Fault;\n";
    let problems = gate_problems("m.rs", open, "faults");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("m.rs:1: `mod faults;`"),
        "{problems:?}"
    );
    let export = "#[cfg(test)]\nmod faults;\npub use faults::Fault;\n";
    assert_eq!(gate_problems("m.rs", export, "faults").len(), 1);
    assert_eq!(gate_problems("m.rs", "mod other;\n", "faults").len(), 1);

    let fine = "[features]\ntest-support = []\n[dev-dependencies]\n\
                authdeck = { path = \".\", features = [\"test-support\"] }\n";
    assert!(feature_problems(fine).is_empty());
    let default = "[features]\ndefault = [\"test-support\"]\ntest-support = []\n";
    assert_eq!(feature_problems(default).len(), 1);
    let normal = "[dependencies]\nauthdeck = { path = \".\", features = [\"test-support\"] }\n";
    assert_eq!(feature_problems(normal).len(), 1);
}
