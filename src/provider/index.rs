//! A stat-checked index of the account directory, so that `--export` of valid tokens does not
//! read, parse and validate every account file on every run (the export budget in
//! docs/benchmarks.md: 50 accounts in ≤ 2 ms).
//!
//! The index records, for one configuration directory and one authdeck executable, the stamp
//! (device, inode, size, modification and change times) of `providers/` and of every `*.toml`
//! file in it, and of each account that loaded without errors what the token commands need of
//! it: the export variable, and `git_urls`, `git_username` and the template for
//! `git-credential get` (GIT-1, GIT-2), so that git's helper too answers without reading every
//! account file. It answers
//! only while every stamp still matches: an edit, a new, removed or renamed file, or another
//! executable makes it stale, and the caller loads the files as usual and writes a new one.
//!
//! Stamps are taken *before* the files are read, so an edit made during a load leaves a stamp
//! that no longer matches. Like git's index, stamps of a change younger than [`RACY`] are not
//! trusted (a file system clock may not tick between two writes): such an index is not
//! written. The index holds no secret: only names, variable names and file metadata.
//!
//! It relies on an account's validity depending on its files alone (the environment only
//! ever adds warnings, see `validate.rs`), so stamps are all it needs to check.

use super::{GitUrl, Loaded, Provider, list_toml};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bumped when the file's layout or meaning changes; another value is simply stale.
const FORMAT: u32 = 3;

/// A change younger than this is not trusted to show in the stamps of a later change.
pub const RACY: Duration = Duration::from_secs(2);

/// What the index remembers of a file or directory: enough to notice any change without
/// reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of `path` (links followed); `None` if it cannot be read or on a platform
    /// without inode numbers and change times (there the index is never used).
    pub fn of(path: &Path) -> Option<Stamp> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(path).ok()?;
            Some(Stamp {
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            None
        }
    }

    /// True when the last change is younger than [`RACY`] at `now` (or in the future).
    fn is_racy(&self, now: SystemTime) -> bool {
        let newest = self.mtime.max(self.ctime);
        let at = UNIX_EPOCH + Duration::new(newest.0.max(0).unsigned_abs(), 0);
        now.duration_since(at).map_or(true, |age| age < RACY)
    }
}

/// The stamps of the executable, the account directory and its files, taken before a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    exe: Stamp,
    dir: Stamp,
    files: BTreeMap<String, Stamp>,
}

impl Stamps {
    /// Stamps everything the accounts of `config_dir` depend on, now. `None` when something
    /// cannot be stamped (no account directory, a file name that is not UTF-8, ...): then no
    /// index is written and every command loads the files.
    pub fn take(config_dir: &Path) -> Option<Stamps> {
        let dir = super::accounts_dir(config_dir);
        let exe = Stamp::of(&std::env::current_exe().ok()?)?;
        let dir_stamp = Stamp::of(&dir)?;
        let mut files = BTreeMap::new();
        for path in list_toml(&dir).ok()?.values() {
            let name = path.file_name()?.to_str()?.to_owned();
            files.insert(name, Stamp::of(path)?);
        }
        Some(Stamps {
            exe,
            dir: dir_stamp,
            files,
        })
    }
}

/// The index as stored (see [`IndexFile::encode`]).
#[derive(Debug, PartialEq, Eq)]
struct IndexFile {
    format: u32,
    config_dir: PathBuf,
    exe: Stamp,
    dir: Stamp,
    files: BTreeMap<String, Stamp>,
    /// The accounts that loaded without errors, by name.
    accounts: BTreeMap<String, Entry>,
}

/// What the index keeps of one account that loaded without errors: the token commands' share
/// of its file, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The export variable ([`Provider::export_var_name`]).
    var: String,
    /// `git_urls` (GIT-1).
    git_urls: Vec<GitUrl>,
    /// `git_username` (GIT-2).
    git_username: Option<String>,
    /// The template the account extends, for git's default user name (GIT-2).
    template: Option<String>,
}

impl Entry {
    fn of(p: &Provider) -> Entry {
        Entry {
            var: p.export_var_name(),
            git_urls: p.git_urls.clone(),
            git_username: p.git_username.clone(),
            template: p.template.clone(),
        }
    }
}

/// A current index: every stamp in it matched when it was read.
#[derive(Debug)]
pub struct Index {
    files: BTreeMap<String, Stamp>,
    accounts: BTreeMap<String, Entry>,
}

impl Index {
    /// Reads the index at `path` for `config_dir`. `None` when there is none, it cannot be
    /// decoded, it was written for another directory or executable, or any stamp differs.
    pub fn read(path: &Path, config_dir: &Path) -> Option<Index> {
        let bytes = std::fs::read(path).ok()?;
        let file = IndexFile::decode(std::str::from_utf8(&bytes).ok()?)?;
        if file.format != FORMAT || file.config_dir != config_dir {
            return None;
        }
        let dir = super::accounts_dir(config_dir);
        // The directory first: it changes whenever a file is added, removed or renamed, so
        // the file list below is complete when it matches.
        if Stamp::of(&dir)? != file.dir || Stamp::of(&std::env::current_exe().ok()?)? != file.exe {
            return None;
        }
        // One path buffer for all the files: a `stat` each, no allocation each.
        let mut path = dir;
        for (name, stamp) in &file.files {
            path.push(name);
            if Stamp::of(&path).as_ref() != Some(stamp) {
                return None;
            }
            path.pop();
        }
        Some(Index {
            files: file.files,
            accounts: file.accounts,
        })
    }

    /// True when `providers/NAME.toml` exists (valid or not).
    pub fn has_file(&self, name: &str) -> bool {
        self.files.contains_key(&format!("{name}.toml"))
    }

    /// The export variable of `name` when its file loaded without errors.
    pub fn export_var(&self, name: &str) -> Option<&str> {
        self.accounts.get(name).map(|e| e.var.as_str())
    }

    /// Each valid account's `git_urls`, by name (what `app::gitcred::choose` picks from, as it
    /// does from the loaded accounts: GIT-1).
    pub fn git_urls(&self) -> impl Iterator<Item = (&str, &[GitUrl])> {
        self.accounts
            .iter()
            .map(|(name, e)| (name.as_str(), e.git_urls.as_slice()))
    }

    /// `git_username` and the template of `name` when its file loaded without errors (GIT-2).
    pub fn git_user(&self, name: &str) -> Option<(Option<&str>, Option<&str>)> {
        self.accounts
            .get(name)
            .map(|e| (e.git_username.as_deref(), e.template.as_deref()))
    }

    /// The accounts that loaded without errors, by name.
    pub fn account_names(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }

    /// Writes the index of `loaded`, whose files were stamped as `stamps` before they were
    /// read. Returns `false` (and writes nothing) when a stamp is too young to trust.
    pub fn write(
        path: &Path,
        config_dir: &Path,
        stamps: &Stamps,
        loaded: &Loaded,
        now: SystemTime,
    ) -> std::io::Result<bool> {
        let all = [&stamps.exe, &stamps.dir]
            .into_iter()
            .chain(stamps.files.values());
        if all.into_iter().any(|s| s.is_racy(now)) {
            return Ok(false);
        }
        let file = IndexFile {
            format: FORMAT,
            config_dir: config_dir.to_path_buf(),
            exe: stamps.exe,
            dir: stamps.dir,
            files: stamps.files.clone(),
            accounts: loaded
                .accounts
                .iter()
                .map(|p| (p.name.clone(), Entry::of(p)))
                .collect(),
        };
        // A directory or file name that cannot be written: no index, every command loads.
        let Some(text) = file.encode() else {
            return Ok(false);
        };
        write_replace(path, text.as_bytes())?;
        Ok(true)
    }
}

/// The first line of an index file, with [`FORMAT`] after it.
const MAGIC: &str = "authdeck-account-index";

/// A stamp as seven numbers (device, inode, size, mtime s ns, ctime s ns) after a tag.
fn stamp_line(out: &mut String, tag: &str, s: &Stamp) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "{tag} {} {} {} {} {} {} {}",
        s.dev, s.ino, s.len, s.mtime.0, s.mtime.1, s.ctime.0, s.ctime.1
    );
}

fn parse_stamp<'a>(words: &mut impl Iterator<Item = &'a str>) -> Option<Stamp> {
    let mut n = || words.next()?.parse::<i64>().ok();
    let (dev, ino, len) = (n()?, n()?, n()?);
    Some(Stamp {
        dev: u64::try_from(dev).ok()?,
        ino: u64::try_from(ino).ok()?,
        len: u64::try_from(len).ok()?,
        mtime: (n()?, n()?),
        ctime: (n()?, n()?),
    })
}

/// A string as one space-free word: bytes other than ASCII letters, digits and `._-/:@+~`
/// as `%XX`.
fn word(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._-/:@+~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The string [`word`] wrote; `None` for anything it cannot have written.
fn unword(w: &str) -> Option<String> {
    if !w.contains('%') {
        return Some(w.to_owned());
    }
    let mut bytes = Vec::with_capacity(w.len());
    let mut it = w.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// An optional string as one word: `-` for none, `=` and the [`word`] for some.
fn opt_word(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("={}", word(s)))
}

fn unopt_word(w: &str) -> Option<Option<String>> {
    match w {
        "-" => Some(None),
        _ => Some(Some(unword(w.strip_prefix('=')?)?)),
    }
}

impl IndexFile {
    /// One line per item, space-separated words: read by every `--export`, `token`,
    /// `git-credential get` and `kube-credential` run, it decodes in a small fraction of the
    /// time JSON took (docs/benchmarks.md, "`export` of 50 accounts beside a minimal
    /// program"). `None` when the configuration directory is not UTF-8.
    fn encode(&self) -> Option<String> {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(128 * (self.files.len() + self.accounts.len()));
        let _ = writeln!(out, "{MAGIC} {}", self.format);
        let _ = writeln!(out, "config {}", word(self.config_dir.to_str()?));
        stamp_line(&mut out, "exe", &self.exe);
        stamp_line(&mut out, "dir", &self.dir);
        for (name, stamp) in &self.files {
            stamp_line(&mut out, &format!("file {}", word(name)), stamp);
        }
        for (name, e) in &self.accounts {
            let _ = write!(
                out,
                "account {} {} {} {}",
                word(name),
                word(&e.var),
                opt_word(e.git_username.as_deref()),
                opt_word(e.template.as_deref())
            );
            for u in &e.git_urls {
                let _ = write!(
                    out,
                    " {},{},{}",
                    word(&u.protocol),
                    word(&u.host),
                    word(&u.path)
                );
            }
            out.push('\n');
        }
        Some(out)
    }

    /// What [`encode`](Self::encode) wrote; `None` for anything else (then the index is
    /// stale and rewritten).
    fn decode(text: &str) -> Option<IndexFile> {
        let mut lines = text.lines();
        let mut head = lines.next()?.split(' ');
        if head.next()? != MAGIC {
            return None;
        }
        let format = head.next()?.parse().ok()?;
        let config_dir = PathBuf::from(unword(lines.next()?.strip_prefix("config ")?)?);
        let mut stamp_of = |tag: &str| {
            let line = lines.next()?;
            let mut words = words(line.strip_prefix(tag)?.strip_prefix(' ')?);
            parse_stamp(&mut words)
        };
        let exe = stamp_of("exe")?;
        let dir = stamp_of("dir")?;
        // Written in name order: collected at the end, the maps are built in one pass.
        let mut files = Vec::new();
        let mut accounts = Vec::new();
        for line in lines {
            let mut words = words(line);
            match words.next()? {
                "file" => {
                    let name = unword(words.next()?)?;
                    files.push((name, parse_stamp(&mut words)?));
                }
                "account" => {
                    let name = unword(words.next()?)?;
                    let var = unword(words.next()?)?;
                    let git_username = unopt_word(words.next()?)?;
                    let template = unopt_word(words.next()?)?;
                    let git_urls = words
                        .map(|w| {
                            let mut parts = w.split(',');
                            let url = GitUrl {
                                protocol: unword(parts.next()?)?,
                                host: unword(parts.next()?)?,
                                path: unword(parts.next()?)?,
                            };
                            parts.next().is_none().then_some(url)
                        })
                        .collect::<Option<Vec<_>>>()?;
                    let entry = Entry {
                        var,
                        git_urls,
                        git_username,
                        template,
                    };
                    accounts.push((name, entry));
                }
                _ => return None,
            }
        }
        Some(IndexFile {
            format,
            config_dir,
            exe,
            dir,
            files: files.into_iter().collect(),
            accounts: accounts.into_iter().collect(),
        })
    }
}

/// The words of a line. (A closure pattern: for words of a few bytes, a byte loop costs
/// less than the `memchr` set-up of a `char` pattern: 12 k fewer instructions per `--export`
/// of 50 accounts, measured with callgrind.)
#[allow(clippy::manual_pattern_char_comparison)]
fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| c == ' ')
}

/// Writes `bytes` to a private temporary file beside `path` and renames it over `path`: a
/// reader sees the old index or the new one, never half of one. No fsync: an index lost in a
/// crash is rebuilt by the next command.
fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let result = opts
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use crate::provider::load_accounts;

    const ACCOUNT: &str = "extends = \"oidc\"\nissuer = \"https://as.example\"\n\
        authorization_endpoint = \"https://as.example/a\"\n\
        token_endpoint = \"https://as.example/t\"\nclient_id = \"x\"\n";

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("providers")).unwrap();
            Fixture { dir }
        }
        fn config(&self) -> &Path {
            self.dir.path()
        }
        fn index_path(&self) -> PathBuf {
            self.dir.path().join("vault.bin.accounts")
        }
        fn put(&self, name: &str, text: &str) {
            std::fs::write(self.config().join("providers").join(name), text).unwrap();
        }
        /// Loads and writes the index as if the files had settled long ago.
        fn index(&self) -> bool {
            let stamps = Stamps::take(self.config()).unwrap();
            let loaded = load_accounts(self.config());
            let later = SystemTime::now() + RACY + Duration::from_secs(1);
            Index::write(&self.index_path(), self.config(), &stamps, &loaded, later).unwrap()
        }
        fn read(&self) -> Option<Index> {
            Index::read(&self.index_path(), self.config())
        }
    }

    #[test]
    fn answers_for_valid_accounts_and_knows_broken_files() {
        let f = Fixture::new();
        f.put("work.toml", ACCOUNT);
        f.put("named.toml", &format!("{ACCOUNT}export_var = \"GH\"\n"));
        f.put("broken.toml", "extends = \"oidc\"\nclient_idd = \"x\"\n");
        assert!(f.index());
        let index = f.read().expect("a fresh index answers");
        assert_eq!(index.export_var("work"), Some("WORK_ACCESS_TOKEN"));
        assert_eq!(index.export_var("named"), Some("GH"));
        assert_eq!(index.export_var("broken"), None);
        assert!(index.has_file("broken"));
        assert!(!index.has_file("absent"));
        assert_eq!(index.account_names().collect::<Vec<_>>(), ["named", "work"]);
    }

    #[test]
    fn keeps_what_git_credential_needs_and_an_edited_git_url_is_seen_at_once() {
        let f = Fixture::new();
        f.put(
            "work.toml",
            &format!(
                "{ACCOUNT}git_urls = [\"https://git.example.com/group/\"]\n\
                 git_username = \"bot\"\n"
            ),
        );
        f.put("home.toml", ACCOUNT);
        assert!(f.index());
        let index = f.read().expect("a fresh index answers");
        let urls: Vec<(&str, &[GitUrl])> = index.git_urls().collect();
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[0], ("home", &[][..]));
        assert_eq!(
            urls[1],
            (
                "work",
                &[GitUrl::parse("https://git.example.com/group/").unwrap()][..]
            )
        );
        assert_eq!(index.git_user("work"), Some((Some("bot"), Some("oidc"))));
        assert_eq!(index.git_user("home"), Some((None, Some("oidc"))));
        assert_eq!(index.git_user("absent"), None);
        // GIT-1: another URL in the file is another answer, so the old one must not be used.
        f.put(
            "work.toml",
            &format!("{ACCOUNT}git_urls = [\"https://git.example.com/other/\"]\n"),
        );
        assert!(
            f.read().is_none(),
            "an edited git_urls must make the index stale"
        );
        assert!(f.index());
        let index = f.read().expect("rewritten");
        assert_eq!(
            index.git_urls().nth(1).map(|(_, u)| u[0].path.clone()),
            Some("other".to_owned())
        );
        assert_eq!(index.git_user("work"), Some((None, Some("oidc"))));
    }

    #[test]
    fn the_line_format_round_trips_any_string_and_refuses_anything_else() {
        let stamp = |n: i64| Stamp {
            dev: 1,
            ino: 2,
            len: 3,
            mtime: (n, 999_999_999),
            ctime: (-n, 0),
        };
        let odd = "a b%c,d\n\u{e9}=-";
        let file = IndexFile {
            format: FORMAT,
            config_dir: PathBuf::from("/home/x y/.config/authdeck%"),
            exe: stamp(1),
            dir: stamp(2),
            files: [("w ork.toml".to_owned(), stamp(3))].into(),
            accounts: [
                (
                    "w ork".to_owned(),
                    Entry {
                        var: "W_ORK".into(),
                        git_urls: vec![
                            GitUrl::parse("https://git.example.com:8443/a b/c").unwrap(),
                            GitUrl::parse("http://h").unwrap(),
                        ],
                        git_username: Some(odd.into()),
                        template: Some("-".into()),
                    },
                ),
                (
                    "plain".to_owned(),
                    Entry {
                        var: "P".into(),
                        git_urls: vec![],
                        git_username: None,
                        template: None,
                    },
                ),
            ]
            .into(),
        };
        let text = file.encode().unwrap();
        assert_eq!(text.lines().count(), 7, "{text}");
        assert!(!text.contains(odd));
        assert_eq!(IndexFile::decode(&text), Some(file));
        for bad in [
            "",
            "authdeck-account-index x\n",
            &text.replace("file ", "fil "),
            &text.replace(" 999999999", " x"),
            &text.replace("=-", "-x"),
            &text.replace("%20", "%2"),
            &format!("{text}extra line\n"),
        ] {
            assert_eq!(IndexFile::decode(bad), None, "{bad:?}");
        }
    }

    type Edit<'a> = &'a dyn Fn(&Fixture);

    #[test]
    fn any_change_in_the_directory_makes_it_stale() {
        let f = Fixture::new();
        f.put("work.toml", ACCOUNT);
        let edits: [(&str, Edit); 4] = [
            ("edited in place", &|f| {
                f.put("work.toml", &format!("{ACCOUNT}\n"))
            }),
            ("a new file", &|f| f.put("google.toml", ACCOUNT)),
            ("a removed file", &|f| {
                std::fs::remove_file(f.config().join("providers/google.toml")).unwrap();
            }),
            ("a renamed file", &|f| {
                let p = f.config().join("providers");
                std::fs::rename(p.join("work.toml"), p.join("job.toml")).unwrap();
            }),
        ];
        for (what, edit) in edits {
            assert!(f.index());
            assert!(f.read().is_some(), "before: {what}");
            edit(&f);
            assert!(f.read().is_none(), "{what} must make the index stale");
        }
    }

    #[test]
    fn a_same_size_edit_within_the_clock_tick_is_caught_by_the_racy_rule() {
        let f = Fixture::new();
        f.put("work.toml", ACCOUNT);
        let stamps = Stamps::take(f.config()).unwrap();
        let loaded = load_accounts(f.config());
        // Written right after the change: refused, so no stale answer can come of it.
        assert!(
            !Index::write(
                &f.index_path(),
                f.config(),
                &stamps,
                &loaded,
                SystemTime::now()
            )
            .unwrap()
        );
        assert!(f.read().is_none());
    }

    #[test]
    fn another_directory_a_bad_file_or_another_format_is_no_index() {
        let f = Fixture::new();
        f.put("work.toml", ACCOUNT);
        assert!(f.index());
        let other = Fixture::new();
        assert!(Index::read(&f.index_path(), other.config()).is_none());
        let text = std::fs::read_to_string(f.index_path()).unwrap();
        std::fs::write(
            f.index_path(),
            text.replace(&format!("{MAGIC} {FORMAT}"), &format!("{MAGIC} 99")),
        )
        .unwrap();
        assert!(f.read().is_none());
        std::fs::write(f.index_path(), "{not json").unwrap();
        assert!(f.read().is_none());
    }

    #[test]
    fn the_index_file_is_private_and_holds_no_secret() {
        use std::os::unix::fs::PermissionsExt;
        let f = Fixture::new();
        f.put(
            "work.toml",
            &format!("{ACCOUNT}client_secret = \"s3cr3t-value\"\nclient_auth = \"basic\"\n"),
        );
        assert!(f.index());
        let meta = std::fs::metadata(f.index_path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(f.index_path()).unwrap();
        assert!(text.contains("WORK_ACCESS_TOKEN"));
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
