//! The one sanitiser for text that came from outside (a server, a token response, an ID
//! token, a discovery document) on its way to a terminal, a log line or an error message
//! (HARD-9, AUTHZ-7).

/// `text` made safe to print: control characters (C0, DEL, C1: ESC, BEL, CR, the OSC and CSI
/// introducers…) and the invisible characters that reorder or hide text (bidi overrides and
/// isolates, zero-width characters, line and paragraph separators) are written as `\u{…}`
/// escapes; other printable characters, non-ASCII letters included, stay. The result is at
/// most `max_chars` characters long, plus `…` when something was cut.
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut len = 0;
    for c in text.chars() {
        let piece: String = if is_unsafe(c) {
            c.escape_unicode().collect()
        } else {
            c.to_string()
        };
        let n = piece.chars().count();
        if len + n > max_chars {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        len += n;
    }
    out
}

/// True for the characters [`sanitize`] escapes.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HARD-9: escape sequences (CSI colours, an OSC 52 clipboard write, BEL, CR) and bidi
    /// overrides come out as visible escapes; letters stay; long text is cut.
    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        let hostile = "a\u{1b}[31mred\u{1b}]52;c;cHduZWQ=\u{7}\rover\u{202e}txt.exe";
        let s = sanitize(hostile, 200);
        assert!(!s.chars().any(is_unsafe), "{s}");
        assert!(s.contains("\\u{1b}[31mred"), "{s}");
        assert!(s.contains("\\u{7}") && s.contains("\\u{d}") && s.contains("\\u{202e}"));
        assert_eq!(sanitize("José ✓", 10), "José ✓");
        assert_eq!(sanitize(&"x".repeat(50), 5), "xxxxx…");
        assert!(sanitize("\u{9b}31m", 10).starts_with("\\u{9b}"), "C1 CSI");
    }
}
