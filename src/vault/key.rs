//! Key sources: an Argon2id-stretched passphrase, a 32-byte key file or a random key kept in the
//! OS keyring (VAULT-3, VAULT-7), and how the command line finds one in the environment or on
//! the terminal.

use super::error::{Result, VaultError};
use crate::secret::{Key32, LockedKey32, Passphrase};
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Environment variable naming a key file.
pub const ENV_KEY_FILE: &str = "AUTHDECK_KEY_FILE";
/// Environment variable holding the passphrase itself.
pub const ENV_PASSPHRASE: &str = "AUTHDECK_PASSPHRASE";
/// Environment variable naming a file whose first line is the passphrase.
pub const ENV_PASSPHRASE_FILE: &str = "AUTHDECK_PASSPHRASE_FILE";

/// Which kind of key a vault is encrypted with; recorded in the header so the right source is
/// asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Argon2id over a passphrase.
    Passphrase,
    /// 32 raw bytes from a key file.
    KeyFile,
    /// 32 random bytes kept in the OS keyring (VAULT-7).
    OsKeyring,
}

impl KeyKind {
    /// The word used on the agent's wire and in `--json` output.
    pub fn word(self) -> &'static str {
        match self {
            Self::Passphrase => "passphrase",
            Self::KeyFile => "key_file",
            Self::OsKeyring => "os_keyring",
        }
    }

    /// Whether opening a vault of this kind can need a person (a passphrase): the other kinds
    /// open with no prompt, and an agent holding their key cannot be locked (AGENT-6).
    pub fn needs_passphrase(self) -> bool {
        self == Self::Passphrase
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Passphrase => "a passphrase",
            Self::KeyFile => "a key file",
            Self::OsKeyring => "the OS keyring",
        })
    }
}

/// Where the vault key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A passphrase, stretched with Argon2id (salt and parameters in the header).
    Passphrase(Passphrase),
    /// A file of 32 random bytes (or 64 hex digits), mode 0600.
    KeyFile(PathBuf),
    /// A passphrase vault's key, already derived (`FileStore::derive_key`): what a long-running
    /// process keeps instead of the passphrase (AGENT-6).
    Derived(DerivedKey),
    /// The OS keyring (VAULT-7): for an existing vault, the item its header names; for a new
    /// vault or a re-key, a fresh random key stored there under a fresh item name.
    OsKeyring,
}

/// A passphrase vault's key derived for one header (its salt and Argon2id parameters), held in
/// locked memory. Clones share the one copy; it is zeroized when the last clone goes.
#[derive(Clone)]
pub struct DerivedKey {
    pub(crate) params: KdfParams,
    pub(crate) salt: [u8; 16],
    key: Arc<LockedKey32>,
}

impl DerivedKey {
    pub(crate) fn new(params: KdfParams, salt: [u8; 16], key: Key32) -> Self {
        Self {
            params,
            salt,
            key: Arc::new(LockedKey32::new(key)),
        }
    }

    pub(crate) fn key(&self) -> &Key32 {
        self.key.key()
    }

    /// Whether the OS agreed to lock the key's memory.
    pub fn is_memory_locked(&self) -> bool {
        self.key.is_memory_locked()
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey([redacted])")
    }
}

impl KeySource {
    /// What a vault is opened with before it exists and no key is named (`Backend::open`
    /// without `create`): no key yet. The first save that creates the vault resolves it from
    /// the environment or the terminal, as a first login does (MACH-1: a machine account's
    /// first token creates the vault).
    pub fn not_yet() -> KeySource {
        KeySource::KeyFile(PathBuf::new())
    }

    /// True for [`KeySource::not_yet`].
    pub fn is_not_yet(&self) -> bool {
        matches!(self, KeySource::KeyFile(p) if p.as_os_str().is_empty())
    }

    /// The kind of key this source provides.
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Passphrase(_) | Self::Derived(_) => KeyKind::Passphrase,
            Self::KeyFile(_) => KeyKind::KeyFile,
            Self::OsKeyring => KeyKind::OsKeyring,
        }
    }
}

/// Argon2id cost parameters, stored in the vault header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// The default for new vaults: the memory and passes of RFC 9106 §4's second recommended
    /// option (64 MiB, t = 3; OWASP's minimum is 19 MiB). One derivation measured 182 ms of CPU
    /// on the project's 2-core machine (docs/benchmarks.md), under the 250 ms budget. One lane
    /// rather than the RFC's four because the `argon2` crate computes lanes one after another:
    /// extra lanes would only help an attacker who runs them in parallel.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// Upper bounds accepted from a header, so a hostile file cannot make us allocate without
    /// limit (1 GiB, 64 passes, 16 lanes).
    const MAX: KdfParams = KdfParams {
        m_cost_kib: 1024 * 1024,
        t_cost: 64,
        p_cost: 16,
    };

    /// Checks the parameters against Argon2's own minimums and our maximums.
    pub(crate) fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| VaultError::BadKdfParams {
            path: path.to_path_buf(),
            reason,
        };
        if self.p_cost == 0 || self.p_cost > Self::MAX.p_cost {
            return Err(bad(format!("lanes {} not in 1..=16", self.p_cost)));
        }
        if self.t_cost == 0 || self.t_cost > Self::MAX.t_cost {
            return Err(bad(format!("passes {} not in 1..=64", self.t_cost)));
        }
        if self.m_cost_kib < 8 * self.p_cost || self.m_cost_kib > Self::MAX.m_cost_kib {
            return Err(bad(format!(
                "memory {} KiB not in {}..=1048576",
                self.m_cost_kib,
                8 * self.p_cost
            )));
        }
        Ok(())
    }
}

/// Stretches a passphrase into a vault key with Argon2id.
pub(crate) fn derive_key(
    pass: &Passphrase,
    salt: &[u8; 16],
    params: KdfParams,
    path: &Path,
) -> Result<Key32> {
    params.validate(path)?;
    let bad = |e: argon2::Error| VaultError::BadKdfParams {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let p = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(bad)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(pass.secret().as_bytes(), salt, out.as_mut())
        .map_err(bad)?;
    Ok(Key32::from_bytes(*out))
}

/// Reads a key file: mode must be 0600 or stricter; content 32 raw bytes or 64 hex digits.
pub fn read_key_file(path: &Path) -> Result<Key32> {
    let mut file =
        std::fs::File::open(path).map_err(|e| VaultError::io("cannot open key file", path, e))?;
    check_private_mode(&file, path)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(80));
    // Read at most 80 bytes: a key file is never larger, and a huge file should not be slurped.
    (&mut file)
        .take(80)
        .read_to_end(&mut buf)
        .map_err(|e| VaultError::io("cannot read key file", path, e))?;
    parse_key_bytes(&buf).ok_or_else(|| VaultError::KeyFileFormat {
        path: path.to_path_buf(),
    })
}

#[cfg(unix)]
fn check_private_mode(file: &std::fs::File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = file
        .metadata()
        .map_err(|e| VaultError::io("cannot inspect key file", path, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyFileMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_file: &std::fs::File, _path: &Path) -> Result<()> {
    Ok(())
}

/// 32 raw bytes, or 64 hex digits with optional surrounding whitespace.
fn parse_key_bytes(buf: &[u8]) -> Option<Key32> {
    if buf.len() == 32 {
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(buf);
        return Some(Key32::from_bytes(*key));
    }
    let text = std::str::from_utf8(buf).ok()?.trim();
    if text.len() != 64 {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        key[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(Key32::from_bytes(*key))
}

/// Creates a new key file of 32 random bytes with mode 0600; fails if the file exists.
pub fn generate_key_file(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(path)
        .map_err(|e| VaultError::io("cannot create key file", path, e))?;
    let key = Key32::generate();
    file.write_all(key.secret())
        .and_then(|()| file.sync_all())
        .map_err(|e| VaultError::io("cannot write key file", path, e))
}

/// A snapshot of the key-related environment variables, so resolution is testable.
#[derive(Debug, Default, Clone)]
pub struct KeyEnv {
    /// `AUTHDECK_KEY_FILE`.
    pub key_file: Option<PathBuf>,
    /// `AUTHDECK_PASSPHRASE`.
    pub passphrase: Option<Passphrase>,
    /// `AUTHDECK_PASSPHRASE_FILE`.
    pub passphrase_file: Option<PathBuf>,
}

/// Whether a passphrase prompt is for an existing vault or a new one (asked twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptPurpose {
    /// Unlock an existing vault.
    Unlock,
    /// Choose a new passphrase (entered twice).
    New,
}

impl KeyEnv {
    /// Reads the three variables from the process environment (empty values count as unset).
    pub fn from_process() -> Self {
        let get = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            key_file: get(ENV_KEY_FILE).map(PathBuf::from),
            passphrase: get(ENV_PASSPHRASE)
                .and_then(|v: OsString| v.into_string().ok())
                .map(Passphrase::new),
            passphrase_file: get(ENV_PASSPHRASE_FILE).map(PathBuf::from),
        }
    }

    /// Picks a key source. When the vault exists, `expected` (from its header) decides which
    /// source is asked for (an OS keyring vault needs nothing from the environment and never
    /// prompts, VAULT-7); otherwise the first one set wins: key file, passphrase, passphrase
    /// file, and finally `prompt`.
    pub fn resolve(
        &self,
        vault: &Path,
        expected: Option<KeyKind>,
        purpose: PromptPurpose,
        prompt: impl FnOnce(PromptPurpose) -> Result<Passphrase>,
    ) -> Result<KeySource> {
        if expected == Some(KeyKind::OsKeyring) {
            return Ok(KeySource::OsKeyring);
        }
        if expected != Some(KeyKind::Passphrase)
            && let Some(path) = &self.key_file
        {
            return Ok(KeySource::KeyFile(path.clone()));
        }
        if expected == Some(KeyKind::KeyFile) {
            return Err(VaultError::KeyKindMismatch {
                path: vault.to_path_buf(),
                expected: KeyKind::KeyFile,
                given: KeyKind::Passphrase,
            });
        }
        if let Some(pass) = &self.passphrase {
            return Ok(KeySource::Passphrase(pass.clone()));
        }
        if let Some(file) = &self.passphrase_file {
            return read_passphrase_file(file).map(KeySource::Passphrase);
        }
        prompt(purpose).map(KeySource::Passphrase)
    }
}

/// The most a passphrase file may hold (HARD-6): a passphrase is a line of text, and a file
/// such as `/dev/zero` must not be read until memory runs out.
pub const MAX_PASSPHRASE_FILE: u64 = 4096;

/// Reads the first line of a passphrase file (the trailing newline is not part of it). The file
/// follows the key file's mode rule (VAULT-4: nobody else may read it) and is read up to
/// `MAX_PASSPHRASE_FILE` bytes; a larger one is refused rather than cut (HARD-6).
pub fn read_passphrase_file(path: &Path) -> Result<Passphrase> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| VaultError::io("cannot open passphrase file", path, e))?;
    check_private_mode(&file, path).map_err(|e| match e {
        VaultError::KeyFileMode { path, mode } => VaultError::PassphraseFileMode { path, mode },
        other => other,
    })?;
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    (&mut file)
        .take(MAX_PASSPHRASE_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| VaultError::io("cannot read passphrase file", path, e))?;
    if buf.len() as u64 > MAX_PASSPHRASE_FILE {
        return Err(VaultError::PassphraseFileTooLarge {
            path: path.to_path_buf(),
            limit: MAX_PASSPHRASE_FILE,
        });
    }
    let text = std::str::from_utf8(&buf).map_err(|_| VaultError::PassphraseFileFormat {
        path: path.to_path_buf(),
    })?;
    let line = text.lines().next().unwrap_or("");
    non_empty(Passphrase::new(line))
}

fn non_empty(pass: Passphrase) -> Result<Passphrase> {
    if pass.is_empty() {
        Err(VaultError::EmptyPassphrase)
    } else {
        Ok(pass)
    }
}

/// Asks for the passphrase on the controlling terminal without echo (the `rpassword` crate
/// opens /dev/tty, so it works even when stdin/stdout are redirected). A new passphrase is asked
/// twice.
pub fn prompt_terminal(purpose: PromptPurpose) -> Result<Passphrase> {
    let ask = |text: &str| {
        rpassword::prompt_password(text)
            .map(Passphrase::new)
            .map_err(|_| VaultError::NoTerminal)
    };
    match purpose {
        PromptPurpose::Unlock => non_empty(ask("Vault passphrase: ")?),
        PromptPurpose::New => {
            let first = non_empty(ask("New vault passphrase: ")?)?;
            let second = ask("Repeat the new passphrase: ")?;
            if first.ct_eq(second.secret()) {
                Ok(first)
            } else {
                Err(VaultError::PassphraseMismatch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_raw_and_hex() {
        let raw = [7u8; 32];
        assert_eq!(parse_key_bytes(&raw).unwrap().secret(), &raw);
        let hex = "07".repeat(32) + "\n";
        assert_eq!(parse_key_bytes(hex.as_bytes()).unwrap().secret(), &raw);
        assert!(parse_key_bytes(&[7u8; 31]).is_none());
        assert!(parse_key_bytes("zz".repeat(32).as_bytes()).is_none());
    }

    #[test]
    fn kdf_params_bounds() {
        let p = Path::new("v");
        assert!(KdfParams::DEFAULT.validate(p).is_ok());
        let huge = KdfParams {
            m_cost_kib: u32::MAX,
            ..KdfParams::DEFAULT
        };
        assert!(matches!(
            huge.validate(p),
            Err(VaultError::BadKdfParams { .. })
        ));
        let zero_t = KdfParams {
            t_cost: 0,
            ..KdfParams::DEFAULT
        };
        assert!(zero_t.validate(p).is_err());
    }

    #[test]
    fn derive_is_deterministic_and_salted() {
        let tiny = KdfParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        };
        let pass = Passphrase::new("correct horse");
        let p = Path::new("v");
        let a = derive_key(&pass, &[1; 16], tiny, p).unwrap();
        let b = derive_key(&pass, &[1; 16], tiny, p).unwrap();
        let c = derive_key(&pass, &[2; 16], tiny, p).unwrap();
        assert_eq!(a.secret(), b.secret());
        assert_ne!(a.secret(), c.secret());
    }

    #[test]
    fn resolve_follows_header_kind() {
        let env = KeyEnv {
            key_file: Some(PathBuf::from("/k")),
            passphrase: Some(Passphrase::new("pw")),
            passphrase_file: None,
        };
        let v = Path::new("v");
        let never = |_| -> Result<Passphrase> { panic!("must not prompt") };
        let src = env.resolve(v, None, PromptPurpose::Unlock, never).unwrap();
        assert_eq!(src.kind(), KeyKind::KeyFile);
        let src = env
            .resolve(v, Some(KeyKind::Passphrase), PromptPurpose::Unlock, never)
            .unwrap();
        assert_eq!(src.kind(), KeyKind::Passphrase);
        // VAULT-7: an OS keyring vault takes nothing from the environment and never prompts.
        let src = env
            .resolve(v, Some(KeyKind::OsKeyring), PromptPurpose::Unlock, never)
            .unwrap();
        assert!(matches!(src, KeySource::OsKeyring));
        let only_pass = KeyEnv {
            key_file: None,
            ..env.clone()
        };
        let err = only_pass
            .resolve(v, Some(KeyKind::KeyFile), PromptPurpose::Unlock, never)
            .unwrap_err();
        assert!(err.to_string().contains("AUTHDECK_KEY_FILE"), "{err}");
        let empty = KeyEnv::default();
        let src = empty
            .resolve(v, None, PromptPurpose::New, |purpose| {
                assert_eq!(purpose, PromptPurpose::New);
                Ok(Passphrase::new("typed"))
            })
            .unwrap();
        assert!(matches!(src, KeySource::Passphrase(p) if p.secret() == "typed"));
    }

    #[test]
    fn passphrase_file_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret pass\nignored\n").unwrap();
        set_mode(&f, 0o600);
        assert_eq!(read_passphrase_file(&f).unwrap().secret(), "s3cret pass");
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(
            read_passphrase_file(&f),
            Err(VaultError::EmptyPassphrase)
        ));
    }

    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// HARD-6 / VAULT-4: a passphrase file others can read is refused, like a key file, and
    /// the message names the file and the fix.
    #[test]
    fn passphrase_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret pass\n").unwrap();
        set_mode(&f, 0o644);
        let err = read_passphrase_file(&f).unwrap_err();
        assert!(
            matches!(err, VaultError::PassphraseFileMode { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        set_mode(&f, 0o400);
        assert_eq!(read_passphrase_file(&f).unwrap().secret(), "s3cret pass");
    }

    /// HARD-6: a passphrase file is read up to 4 KiB; a larger one is an error, not a huge
    /// passphrase, and an endless one (a FIFO fed forever, like `/dev/zero`) ends too.
    #[test]
    fn passphrase_file_is_read_up_to_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "x".repeat(1 << 20)).unwrap();
        set_mode(&f, 0o600);
        assert!(matches!(
            read_passphrase_file(&f),
            Err(VaultError::PassphraseFileTooLarge { limit: 4096, .. })
        ));
        std::fs::write(&f, "y".repeat(4096)).unwrap();
        assert_eq!(read_passphrase_file(&f).unwrap().secret().len(), 4096);

        let fifo = dir.path().join("endless");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new()
                .write(true)
                .open(writer_path)
                .unwrap();
            let block = [0u8; 4096];
            // Ends with EPIPE once the reader has closed its end.
            for _ in 0..100_000 {
                if w.write_all(&block).is_err() {
                    return;
                }
            }
            panic!("the reader kept reading an endless passphrase file");
        });
        assert!(matches!(
            read_passphrase_file(&fifo),
            Err(VaultError::PassphraseFileTooLarge { .. })
        ));
        writer.join().unwrap();
    }
}
