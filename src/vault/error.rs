//! The vault's error type. Every message is one user-facing line and names files, never secrets.

use std::path::PathBuf;

/// Everything that can go wrong with the vault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The key or passphrase does not open this vault (VAULT-5: the file is left untouched).
    #[error("wrong passphrase or key for vault {}", .path.display())]
    WrongKey {
        /// The vault file.
        path: PathBuf,
    },

    /// The file fails its integrity checks: corrupt, truncated or tampered with (VAULT-5).
    #[error(
        "vault {} is corrupt or was tampered with ({reason}); it was left untouched; {}",
        .path.display(),
        backup_hint(.backup)
    )]
    Corrupt {
        /// The vault file.
        path: PathBuf,
        /// What check failed (never any decrypted content).
        reason: &'static str,
        /// The previous generation, if one exists.
        backup: Option<PathBuf>,
    },

    /// The file is not an authdeck vault at all.
    #[error("{} is not an authdeck vault (bad magic bytes)", .path.display())]
    NotAVault {
        /// The file.
        path: PathBuf,
    },

    /// Written by a newer authdeck.
    #[error(
        "vault {} uses format version {found}, this authdeck reads up to {supported}; upgrade authdeck",
        .path.display()
    )]
    UnsupportedVersion {
        /// The vault file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },

    /// The vault expects a different kind of key than the one supplied.
    #[error("vault {} is encrypted with {expected}, but {given} was supplied{}", .path.display(), kind_hint(.expected))]
    KeyKindMismatch {
        /// The vault file.
        path: PathBuf,
        /// What the header says.
        expected: super::KeyKind,
        /// What the caller gave.
        given: super::KeyKind,
    },

    /// A key file is readable by others (VAULT-4).
    #[error(
        "key file {} has mode {mode:04o}; it must be readable only by you (run: chmod 600 {})",
        .path.display(),
        .path.display()
    )]
    KeyFileMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A passphrase file is readable by others (VAULT-4, HARD-6).
    #[error(
        "passphrase file {} has mode {mode:04o}; it must be readable only by you (run: chmod 600 {})",
        .path.display(),
        .path.display()
    )]
    PassphraseFileMode {
        /// The passphrase file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A passphrase file is larger than a passphrase can be (HARD-6).
    #[error("passphrase file {} is larger than {limit} bytes; it must hold one line", .path.display())]
    PassphraseFileTooLarge {
        /// The passphrase file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// A passphrase file is not UTF-8 text.
    #[error("passphrase file {} is not UTF-8 text", .path.display())]
    PassphraseFileFormat {
        /// The passphrase file.
        path: PathBuf,
    },

    /// A key file has the wrong size or content.
    #[error("key file {} must hold exactly 32 bytes (raw, or 64 hex digits)", .path.display())]
    KeyFileFormat {
        /// The key file.
        path: PathBuf,
    },

    /// A passphrase cannot be empty.
    #[error("the vault passphrase must not be empty")]
    EmptyPassphrase,

    /// The two passphrase entries differ.
    #[error("the passphrases do not match")]
    PassphraseMismatch,

    /// No key source in the environment and no terminal to prompt on.
    #[error(
        "no terminal to ask for the vault passphrase; set AUTHDECK_KEY_FILE, AUTHDECK_PASSPHRASE_FILE or AUTHDECK_PASSPHRASE"
    )]
    NoTerminal,

    /// Argon2 parameters out of range (a hand-edited or hostile header, or a bad override).
    #[error("invalid Argon2id parameters in {}: {reason}", .path.display())]
    BadKdfParams {
        /// The vault file (or the override's target).
        path: PathBuf,
        /// Which bound was violated.
        reason: String,
    },

    /// `Vault::create` on an existing file.
    #[error("vault {} already exists", .path.display())]
    AlreadyExists {
        /// The vault file.
        path: PathBuf,
    },

    /// An operation that needs an existing vault found none.
    #[error("no vault at {} (log in to an account, or run `authdeck vault init`)", .path.display())]
    NotFound {
        /// The vault file.
        path: PathBuf,
    },

    /// Compare-and-swap lost: another writer saved first (VAULT-4).
    #[error(
        "vault {} changed underneath this writer (expected generation {expected}, found {found}); retry",
        .path.display()
    )]
    Conflict {
        /// The vault file.
        path: PathBuf,
        /// Generation the writer started from.
        expected: u64,
        /// Generation on disk.
        found: u64,
    },

    /// Another process held the lock for too long.
    #[error("timed out waiting for the lock on vault {} (another authdeck is writing)", .path.display())]
    LockTimeout {
        /// The vault file.
        path: PathBuf,
    },

    /// The records could not be serialized (a bug, not a user error).
    #[error("could not serialize the vault records: {0}")]
    Serialize(String),

    /// No data directory could be determined for the default vault path.
    #[error(
        "cannot determine a data directory for the vault; pass --vault PATH or set AUTHDECK_VAULT"
    )]
    NoDataDir,

    /// The shared backend (etcd) cannot be reached or has no quorum (ETCD-6): nothing was
    /// written; the next call tries again.
    #[error("vault backend unavailable: {reason}")]
    BackendUnavailable {
        /// One sanitized line: which endpoints, what failed.
        reason: String,
    },

    /// The backend refused the request for a reason a retry will not fix (authentication,
    /// permission, a bad TLS file), or its settings are wrong.
    #[error("vault backend error: {0}")]
    Backend(String),

    /// ETCD-4: this process no longer holds a lock it took (its lease expired, e.g. while the
    /// process was paused), so it must not save: another machine may hold the lock now.
    #[error(
        "vault {}: the {what} lock was lost (its lease expired) before saving; nothing was written",
        .path.display()
    )]
    LockLost {
        /// The vault location.
        path: PathBuf,
        /// Which lock: "account refresh" or "vault".
        what: &'static str,
    },

    /// VAULT-7: the OS keyring could not give or keep the vault key. The vault is untouched.
    #[error("vault {}: {failure}", .path.display())]
    OsKeyring {
        /// The vault.
        path: PathBuf,
        /// What the keyring said (never the key).
        failure: super::os_keyring::KeyringFailure,
    },

    /// An I/O error on a named file.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. "cannot read".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Shorthand for vault results.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;

impl VaultError {
    /// Wraps an I/O error with the file it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

fn backup_hint(backup: &Option<PathBuf>) -> String {
    match backup {
        Some(b) => format!("the previous generation is in {}", b.display()),
        None => "no backup file exists".to_owned(),
    }
}

fn kind_hint(expected: &super::KeyKind) -> &'static str {
    match expected {
        super::KeyKind::KeyFile => " (set AUTHDECK_KEY_FILE to its key file)",
        super::KeyKind::Passphrase => {
            " (unset AUTHDECK_KEY_FILE; use AUTHDECK_PASSPHRASE_FILE or the prompt)"
        }
        super::KeyKind::OsKeyring => " (its key is in the OS keyring; nothing needs to be set)",
    }
}
