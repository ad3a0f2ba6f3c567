//! Which store holds the vault: the local file (default) or etcd (docs/etcd.md). Chosen once,
//! here, from `--vault` / `AUTHDECK_VAULT` (a path or an `etcd://` URL), else the `[vault]`
//! table of `<config dir>/config.toml`, else the default file. Nothing above `vault` looks at
//! the choice again: it gets a [`Vault`].

use super::etcd::{self, ConfiguredBackend, EtcdConfig, EtcdStore};
use super::{
    FileStore, KeyEnv, KeySource, PromptPurpose, Result, Store, Vault, VaultError, prompt_terminal,
};
use std::path::{Path, PathBuf};

/// The file in the configuration directory that may choose the backend.
pub const CONFIG_FILE: &str = "config.toml";

/// Where the vault lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One encrypted file.
    File(PathBuf),
    /// A key on an etcd cluster.
    Etcd(Box<EtcdConfig>),
}

impl Backend {
    /// The backend from `--vault` (`given`), else `config.toml` in `config_dir`, else the
    /// default file. A missing `config.toml` costs one failed `open`.
    pub fn resolve(given: Option<&Path>, config_dir: &Path) -> Result<Backend> {
        if let Some(g) = given {
            return Self::from_arg(g);
        }
        let file = config_dir.join(CONFIG_FILE);
        let configured = match std::fs::read_to_string(&file) {
            Ok(text) => etcd::parse_config_toml(&text, &file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfiguredBackend::File(None),
            Err(e) => return Err(VaultError::io("cannot read", &file, e)),
        };
        Ok(match configured {
            ConfiguredBackend::File(Some(p)) => Backend::File(p),
            ConfiguredBackend::File(None) => Backend::File(super::default_path()?),
            ConfiguredBackend::Etcd(cfg) => Backend::Etcd(cfg),
        })
    }

    /// A `--vault` value: an `etcd://` URL or a file path.
    pub fn from_arg(arg: &Path) -> Result<Backend> {
        match arg.to_str() {
            Some(s) if s.starts_with(etcd::config::SCHEME) => {
                Ok(Backend::Etcd(Box::new(EtcdConfig::from_url(s)?)))
            }
            _ => Ok(Backend::File(arg.to_path_buf())),
        }
    }

    /// Where, for messages: the file path or `etcd://…`.
    pub fn display(&self) -> String {
        match self {
            Backend::File(p) => p.display().to_string(),
            Backend::Etcd(c) => c.display(),
        }
    }

    /// The local file, when the vault is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Backend::File(p) => Some(p),
            Backend::Etcd(_) => None,
        }
    }

    /// A store for this backend unlocked with `key`.
    pub fn store(&self, key: KeySource) -> Result<Box<dyn Store>> {
        Ok(match self {
            Backend::File(p) => Box::new(FileStore::new(p, key)),
            Backend::Etcd(c) => Box::new(EtcdStore::new((**c).clone(), key)?),
        })
    }

    /// Opens the vault. When it exists (or `create`), the key comes from the environment or the
    /// terminal, of the kind the stored header names; a missing vault without `create` opens
    /// with no key ([`KeySource::not_yet`]), reads as empty, and asks for nothing until a save
    /// creates it (a machine account's first token, MACH-1), which takes the key then as a
    /// first login would.
    pub fn open(&self, create: bool) -> Result<Vault> {
        match self {
            Backend::File(path) => {
                // A key file in the environment costs nothing to open.
                if create || path.exists() || KeyEnv::from_process().key_file.is_some() {
                    Vault::open_from_env(path)
                } else {
                    Vault::open(path, KeySource::not_yet())
                }
            }
            Backend::Etcd(cfg) => {
                let store = EtcdStore::new((**cfg).clone(), KeySource::not_yet())?;
                let kind = store.key_kind()?;
                if kind.is_some() || create {
                    let purpose = if kind.is_some() {
                        PromptPurpose::Unlock
                    } else {
                        PromptPurpose::New
                    };
                    let key = KeyEnv::from_process().resolve(
                        store.location(),
                        kind,
                        purpose,
                        prompt_terminal,
                    )?;
                    store.set_key_source(key);
                }
                Vault::open_store(Box::new(store))
            }
        }
    }

    /// The key for the existing vault here, from the environment or the terminal, of the kind
    /// its header names.
    pub fn key_from_env(&self) -> Result<KeySource> {
        let store = self.store(KeySource::KeyFile(PathBuf::new()))?;
        let kind = store.key_kind()?.ok_or_else(|| VaultError::NotFound {
            path: store.location().to_path_buf(),
        })?;
        KeyEnv::from_process().resolve(
            store.location(),
            Some(kind),
            PromptPurpose::Unlock,
            prompt_terminal,
        )
    }

    /// Opens the vault with `key` (no environment, no prompt).
    pub fn open_with(&self, key: KeySource) -> Result<Vault> {
        Vault::open_store(self.store(key)?)
    }

    /// Creates a new, empty vault here with `key`; fails if one exists.
    pub fn create(&self, key: KeySource) -> Result<Vault> {
        Vault::create_store(self.store(key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_config_toml_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::resolve(Some(Path::new("/tmp/v.bin")), dir.path()).unwrap();
        assert_eq!(b, Backend::File(PathBuf::from("/tmp/v.bin")));
        let b = Backend::resolve(Some(Path::new("etcd://h:1,g:2/p")), dir.path()).unwrap();
        assert_eq!(b.display(), "etcd://h:1,g:2/p");
        assert!(b.file().is_none());
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[vault]\nbackend = \"etcd\"\nendpoints = [\"h:1\"]\nprefix = \"/x\"\n",
        )
        .unwrap();
        let b = Backend::resolve(None, dir.path()).unwrap();
        assert_eq!(b.display(), "etcd://h:1/x");
        let b = Backend::resolve(Some(Path::new("/v")), dir.path()).unwrap();
        assert_eq!(b, Backend::File(PathBuf::from("/v")), "the flag wins");
        std::fs::write(dir.path().join(CONFIG_FILE), "[vault]\nbackend = 7\n").unwrap();
        let e = Backend::resolve(None, dir.path()).unwrap_err().to_string();
        assert!(e.contains("config.toml"), "{e}");
    }
}
