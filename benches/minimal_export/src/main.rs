//! The baseline of the `export` benchmark (`cargo bench --bench cli export`, docs/benchmarks.md):
//! the least a program can do to print what `authdeck --export` prints. It reads a 32-byte key
//! file and a file of sealed tokens, decrypts each with AES-256-GCM and prints one
//! `export NAME='TOKEN'` line per token. No argument parsing, no configuration, no vault
//! format, no checks beyond the cipher's.
//!
//! Usage: `minimal_export KEY_FILE TOKENS_FILE`. `TOKENS_FILE` holds records of: name length
//! (1 byte), name, nonce (12 bytes), sealed length (2 bytes, little endian), sealed token
//! (ciphertext and tag); benches/cli.rs writes it and builds this crate.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use std::io::Write;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(key_path), Some(tokens_path)) = (args.next(), args.next()) else {
        eprintln!("usage: minimal_export KEY_FILE TOKENS_FILE");
        return std::process::ExitCode::from(2);
    };
    let (Ok(key), Ok(data)) = (std::fs::read(key_path), std::fs::read(tokens_path)) else {
        eprintln!("minimal_export: cannot read the key or the tokens");
        return std::process::ExitCode::FAILURE;
    };
    let Ok(cipher) = Aes256Gcm::new_from_slice(&key) else {
        eprintln!("minimal_export: the key is not 32 bytes");
        return std::process::ExitCode::FAILURE;
    };
    let mut out = Vec::with_capacity(4096);
    let mut rest = &data[..];
    while let Some((&name_len, tail)) = rest.split_first() {
        let name_len = usize::from(name_len);
        if tail.len() < name_len + 14 {
            break;
        }
        let (name, tail) = tail.split_at(name_len);
        let (nonce, tail) = tail.split_at(12);
        let (len, tail) = tail.split_at(2);
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        if tail.len() < len {
            break;
        }
        let (sealed, tail) = tail.split_at(len);
        rest = tail;
        let Ok(token) = cipher.decrypt(Nonce::from_slice(nonce), sealed) else {
            eprintln!("minimal_export: a token does not decrypt");
            return std::process::ExitCode::FAILURE;
        };
        out.extend_from_slice(b"export ");
        out.extend_from_slice(name);
        out.extend_from_slice(b"='");
        out.extend_from_slice(&token);
        out.extend_from_slice(b"'\n");
    }
    if std::io::stdout().lock().write_all(&out).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
