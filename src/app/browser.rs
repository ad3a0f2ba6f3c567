//! Handing the authorization URL to the browser without putting it in argv (HARD-12): the URL
//! carries `state` and `nonce`, and any local user can read another process's argv
//! (`ps`, `/proc/PID/cmdline`). The browser gets the path of a small HTML page instead, in a
//! directory only the user can enter, which forwards to the URL; both go when the login ends.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A private page that forwards the browser to the authorization URL; removed on drop.
#[derive(Debug)]
pub struct BrowserHandoff {
    dir: PathBuf,
    page: PathBuf,
}

impl BrowserHandoff {
    /// Writes the page for `url` into a new 0700 directory under the temporary directory.
    pub fn new(url: &str) -> std::io::Result<Self> {
        Self::new_in(&std::env::temp_dir(), url)
    }

    /// Like [`new`](Self::new), under `parent`.
    pub fn new_in(parent: &Path, url: &str) -> std::io::Result<Self> {
        let name = format!(
            "authdeck-login-{}",
            crate::secret::fingerprint(&crate::secret::random_bytes::<16>())
        );
        let dir = parent.join(name);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        // `create`, not `create_all`: an existing directory (someone else's) is an error.
        builder.create(&dir)?;
        let handoff = Self {
            page: dir.join("login.html"),
            dir,
        };
        let mut file = crate::vault::private::open_new_private(&handoff.page)?;
        file.write_all(page(url).as_bytes())?;
        file.sync_all()?;
        Ok(handoff)
    }

    /// The page's path: what the browser command gets.
    pub fn path(&self) -> &Path {
        &self.page
    }
}

impl Drop for BrowserHandoff {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.page);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The forwarding page: a meta refresh and a link, no script, no referrer.
fn page(url: &str) -> String {
    let url = html_escape(url);
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\">\
         <title>authdeck login</title></head>\
         <body><p><a href=\"{url}\">Continue to the login page</a></p></body></html>\n"
    )
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The URL a handoff page forwards to (what a browser does with it), for tests and tools.
pub fn forwarded_url(page: &str) -> Option<String> {
    let start = page.find("content=\"0;url=")? + "content=\"0;url=".len();
    let end = start + page[start..].find('"')?;
    Some(
        page[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HARD-12: the page is private (0600 in a 0700 directory), forwards to the exact URL,
    /// and is gone once the handoff is dropped.
    #[test]
    fn the_page_is_private_forwards_exactly_and_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let url = "https://as.example/authorize?client_id=a&state=st-\"<x>&nonce=n'1";
        let handoff = BrowserHandoff::new_in(tmp.path(), url).unwrap();
        let text = std::fs::read_to_string(handoff.path()).unwrap();
        assert_eq!(forwarded_url(&text).as_deref(), Some(url));
        assert!(!text.contains("<x>"), "escaped");
        assert!(!text.contains("<script"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(handoff.path()), 0o600);
            assert_eq!(mode(handoff.path().parent().unwrap()), 0o700);
        }
        let dir = handoff.path().parent().unwrap().to_path_buf();
        drop(handoff);
        assert!(!dir.exists());
    }
}
