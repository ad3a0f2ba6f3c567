//! A text field whose content may be secret (a pasted redirect URL, a code, a passphrase):
//! zeroized when cleared or dropped, never in `Debug`.

use std::fmt;
use zeroize::Zeroize;

/// Longest text a field accepts: a redirect URL is well under this; more is a mistaken paste.
/// Fields preallocate this much so that typing never reallocates (and leaves no stray copy).
pub const FIELD_MAX: usize = 4096;

/// A text field whose content may be secret: zeroized on drop, never in `Debug`.
#[derive(Default)]
pub struct Field {
    text: String,
}

impl Field {
    pub(super) fn new() -> Self {
        Self {
            text: String::with_capacity(FIELD_MAX),
        }
    }

    pub(super) fn push(&mut self, c: char) {
        if c.is_control() || self.text.len() + c.len_utf8() > FIELD_MAX {
            return;
        }
        if self.text.capacity() == 0 {
            self.text.reserve_exact(FIELD_MAX);
        }
        self.text.push(c);
    }

    pub(super) fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }

    pub(super) fn backspace(&mut self) {
        self.text.pop();
    }

    pub(super) fn clear(&mut self) {
        self.text.zeroize();
    }

    /// Moves the content out, leaving the field empty.
    pub(super) fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }

    /// The content, for rendering on the alternate screen only.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Number of characters typed.
    pub fn chars(&self) -> usize {
        self.text.chars().count()
    }

    /// Nothing typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

impl Drop for Field {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Field({} chars)", self.chars())
    }
}
