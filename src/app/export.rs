//! Rendering `export NAME=value` lines that are safe to `eval`, whatever a server returned.
//!
//! Each format quotes values so that the shell reads them back as the same literal bytes and
//! never runs anything: `eval "$(authdeck --export)"` must be safe even for an access token
//! such as `a'$(touch pwned)'b`.

use std::fmt::Write as _;

/// Output formats of `authdeck --export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExportFormat {
    /// POSIX sh / bash / zsh: `export NAME='value'`.
    #[default]
    Sh,
    /// fish: `set -gx NAME 'value'`.
    Fish,
    /// PowerShell: `$env:NAME = 'value'`.
    Powershell,
    /// A `.env` file: `NAME='value'`.
    Dotenv,
    /// One JSON object `{"NAME": "value", ...}`.
    Json,
}

/// Why a variable could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// The variable name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("'{0}' is not a valid environment variable name")]
    BadName(String),
    /// The value holds a byte no environment variable can carry, or that this format cannot
    /// represent without risk.
    #[error("the value of {name} cannot be represented safely in {format} format")]
    Unrepresentable {
        /// The variable name.
        name: String,
        /// The format asked for.
        format: &'static str,
    },
}

/// True for a portable environment variable name.
pub fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Renders `vars` (name, value) in `format`. Values are secrets: the caller passes them
/// straight from the secret wrapper and prints the result to stdout only.
pub fn render(format: ExportFormat, vars: &[(String, &str)]) -> Result<String, ExportError> {
    let mut out = String::new();
    if format == ExportFormat::Json {
        let map: serde_json::Map<String, serde_json::Value> = vars
            .iter()
            .map(|(k, v)| check_name(k).map(|()| (k.clone(), serde_json::Value::from(*v))))
            .collect::<Result<_, _>>()?;
        out.push_str(&serde_json::Value::Object(map).to_string());
        out.push('\n');
        return Ok(out);
    }
    for (name, value) in vars {
        out.push_str(&line(format, name, value)?);
        out.push('\n');
    }
    Ok(out)
}

/// One line (without the newline) for one variable.
pub fn line(format: ExportFormat, name: &str, value: &str) -> Result<String, ExportError> {
    check_name(name)?;
    if value.contains('\0') {
        return Err(unrepresentable(name, format));
    }
    let mut s = String::with_capacity(name.len() + value.len() + 16);
    match format {
        ExportFormat::Sh => {
            let _ = write!(s, "export {name}={}", sh_quote(value));
        }
        ExportFormat::Fish => {
            let _ = write!(s, "set -gx {name} {}", fish_quote(value));
        }
        ExportFormat::Powershell => {
            let _ = write!(s, "$env:{name} = {}", powershell_quote(value));
        }
        ExportFormat::Dotenv => {
            // dotenv dialects disagree on escapes inside quotes; refuse what they could
            // misread instead of guessing.
            if value.contains(['\'', '\n', '\r', '\\']) {
                return Err(unrepresentable(name, format));
            }
            let _ = write!(s, "{name}='{value}'");
        }
        ExportFormat::Json => {
            let _ = write!(
                s,
                "{}",
                serde_json::json!({ name: value }).to_string().as_str()
            );
        }
    }
    Ok(s)
}

fn check_name(name: &str) -> Result<(), ExportError> {
    if valid_var_name(name) {
        Ok(())
    } else {
        Err(ExportError::BadName(name.to_string()))
    }
}

fn unrepresentable(name: &str, format: ExportFormat) -> ExportError {
    let format = match format {
        ExportFormat::Sh => "sh",
        ExportFormat::Fish => "fish",
        ExportFormat::Powershell => "powershell",
        ExportFormat::Dotenv => "dotenv",
        ExportFormat::Json => "json",
    };
    ExportError::Unrepresentable {
        name: name.to_string(),
        format,
    }
}

/// POSIX single quotes: nothing inside is special except `'`, which becomes `'\''`.
pub fn sh_quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if c == '\'' {
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

/// fish single quotes: only `\'` and `\\` are escapes.
pub fn fish_quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

/// PowerShell verbatim strings: `'` doubles. PowerShell also treats the typographic single
/// quotes U+2018..U+201B as quote characters, so those double as well.
pub fn powershell_quote(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            s.push(c);
        }
        s.push(c);
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a'$(touch pwned)'b";

    #[test]
    fn sh_quotes_hostile_value() {
        assert_eq!(sh_quote(HOSTILE), r#"'a'\''$(touch pwned)'\''b'"#);
        assert_eq!(
            line(ExportFormat::Sh, "X", "plain").unwrap(),
            "export X='plain'"
        );
    }

    #[test]
    fn fish_escapes_backslash_and_quote() {
        assert_eq!(fish_quote(r"a\'b"), r"'a\\\'b'");
    }

    #[test]
    fn powershell_doubles_all_single_quotes() {
        assert_eq!(powershell_quote("a'b\u{2019}c"), "'a''b\u{2019}\u{2019}c'");
    }

    #[test]
    fn dotenv_refuses_ambiguous_values() {
        assert!(line(ExportFormat::Dotenv, "X", HOSTILE).is_err());
        assert_eq!(line(ExportFormat::Dotenv, "X", "a$b").unwrap(), "X='a$b'");
    }

    #[test]
    fn bad_names_and_nul_refused() {
        assert!(line(ExportFormat::Sh, "A;rm", "v").is_err());
        assert!(line(ExportFormat::Sh, "A", "v\0").is_err());
    }

    #[test]
    fn json_is_one_object() {
        let out = render(
            ExportFormat::Json,
            &[("A".into(), "1"), ("B".into(), HOSTILE)],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["B"], HOSTILE);
    }

    /// The real shell reads the value back byte for byte and runs nothing.
    #[test]
    fn sh_eval_round_trips_hostile_values() {
        let dir = tempfile::tempdir().unwrap();
        for value in [HOSTILE, "x\ny", "`id`", "$HOME", "\\'\"", "é ünï"] {
            let script = format!(
                "{}\nprintf %s \"$V\"",
                line(ExportFormat::Sh, "V", value).unwrap()
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg("eval \"$(cat)\"")
                .current_dir(dir.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(script.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
        }
        assert!(!dir.path().join("pwned").exists());
    }
}
