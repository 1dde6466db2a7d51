//! The crypto of the local store: secrets sealed with XChaCha20-Poly1305
//! under a 32-byte master key before they reach the database.
//!
//! The master key comes from `P38_MASTER_KEY` (base64 of 32 bytes) or from
//! a key file created on first use with mode 0600. A sealed blob is
//!
//! ```text
//! 0x01 (format version) || nonce (24 random bytes) || ciphertext || tag (16)
//! ```
//!
//! with associated data `p38-secret-v1\0NAME`, so a blob copied to another
//! name's row does not open.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use p38_core::{Error, Result};

use crate::SecretValue;

/// The variable holding the master key.
pub const MASTER_KEY_ENV: &str = "P38_MASTER_KEY";
/// The length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &[u8] = b"p38-secret-v1\0";

/// The 32-byte key sealing local secrets. Zeroed on drop; `Debug` shows
/// nothing of it.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

fn key_error(msg: impl std::fmt::Display) -> Error {
    Error::validation("master_key", msg.to_string())
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut k[..]).expect("the system random source works");
        MasterKey(k)
    }

    /// The key from its base64 (standard or URL alphabet, padding
    /// optional). `source` names where it came from, for the message.
    pub fn from_base64(encoded: &str, source: &str) -> Result<Self> {
        let s = encoded.trim();
        let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|e| e.decode(s).ok())
            .map(Zeroizing::new);
        let hint = "generate one with `openssl rand -base64 32`";
        match decoded {
            None => Err(key_error(format!(
                "{source} is not valid base64: it must be the base64 of {MASTER_KEY_LEN} random bytes; {hint}"
            ))),
            Some(bytes) if bytes.len() != MASTER_KEY_LEN => Err(key_error(format!(
                "{source} decodes to {} bytes, not {MASTER_KEY_LEN}: it must be the base64 of {MASTER_KEY_LEN} random bytes; {hint}",
                bytes.len()
            ))),
            Some(bytes) => {
                let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
                k.copy_from_slice(&bytes);
                Ok(MasterKey(k))
            }
        }
    }

    /// The key's base64, to back it up or move it to `P38_MASTER_KEY`.
    pub fn to_base64(&self) -> SecretValue {
        SecretValue::new(STANDARD.encode(&self.0[..]))
    }

    /// The key from `env_value` (the value of `P38_MASTER_KEY`, when set),
    /// else from the key file at `path`, which is created with mode 0600
    /// (and its folder with 0700) holding a new random key when missing.
    /// An existing key file readable by group or others is refused.
    pub fn load_or_create(env_value: Option<&str>, path: &Path) -> Result<Self> {
        if let Some(v) = env_value {
            return MasterKey::from_base64(v, MASTER_KEY_ENV);
        }
        match Self::read_file(path) {
            Ok(k) => return Ok(k),
            Err(FileError::Missing) => {}
            Err(FileError::Other(e)) => return Err(e),
        }
        let key = MasterKey::generate();
        match key.write_new(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created a new master key file; back it up: without it the local secrets cannot be read");
                Ok(key)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read_file(path)
                .map_err(|e| match e {
                    FileError::Missing => key_error(format!(
                        "master key file {} vanished while being created",
                        path.display()
                    )),
                    FileError::Other(e) => e,
                }),
            Err(e) => Err(key_error(format!(
                "cannot create the master key file {}: {e}; set {MASTER_KEY_ENV} instead",
                path.display()
            ))),
        }
    }

    fn read_file(path: &Path) -> std::result::Result<Self, FileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Missing),
            Err(e) => {
                return Err(FileError::Other(key_error(format!(
                    "cannot read the master key file {}: {e}",
                    path.display()
                ))));
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(FileError::Other(key_error(format!(
                    "the master key file {} is readable by others (mode {:o}): run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                ))));
            }
        }
        MasterKey::from_base64(&text, &format!("the master key file {}", path.display()))
            .map_err(FileError::Other)
    }

    /// Writes the key to a new file atomically: a private temporary file in
    /// the same folder, hard-linked into place (which fails if the path
    /// exists, so two racing processes agree on one key).
    fn write_new(&self, path: &Path) -> std::io::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir)?;
        }
        let mut rnd = [0u8; 8];
        aws_lc_rs::rand::fill(&mut rnd).map_err(|_| std::io::Error::other("random source"))?;
        let tmp = dir.join(format!(".p38-master-key.{}.tmp", hex::encode(rnd)));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let result = (|| {
            let mut f = opts.open(&tmp)?;
            let line = Zeroizing::new(format!("{}\n", self.to_base64().expose()));
            f.write_all(line.as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, path)
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }

    /// Seals `plaintext` as the value of secret `name`.
    pub fn seal(&self, name: &str, plaintext: &str) -> Vec<u8> {
        LocalCipher::new(self.clone()).seal(name, plaintext)
    }

    /// Opens a blob sealed for `name`.
    pub fn open(&self, name: &str, blob: &[u8]) -> Result<SecretValue> {
        LocalCipher::new(self.clone()).open(name, blob)
    }
}

enum FileError {
    Missing,
    Other(Error),
}

/// Seals and opens the values of the local store.
#[derive(Clone)]
pub struct LocalCipher {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for LocalCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalCipher([REDACTED])")
    }
}

fn aad(name: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_PREFIX.len() + name.len());
    a.extend_from_slice(AAD_PREFIX);
    a.extend_from_slice(name.as_bytes());
    a
}

impl LocalCipher {
    /// A cipher under `key` (the cipher zeroes its copy of the key on drop).
    pub fn new(key: MasterKey) -> Self {
        LocalCipher {
            cipher: XChaCha20Poly1305::new((&*key.0).into()),
        }
    }

    /// Seals `plaintext` as the value of `name`, under a fresh random
    /// nonce: `version || nonce || ciphertext+tag`.
    pub fn seal(&self, name: &str, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system random source works");
        let ct = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad(name),
                },
            )
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a blob sealed for `name`. Fails, without detail, when the blob
    /// was sealed under another key or for another name, or was altered.
    pub fn open(&self, name: &str, blob: &[u8]) -> Result<SecretValue> {
        if blob.len() < 1 + NONCE_LEN + TAG_LEN || blob[0] != VERSION {
            return Err(Error::validation(
                "secrets",
                format!(
                    "local backend: the stored value of secret {name} is not a sealed blob of a known format"
                ),
            ));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&blob[1..1 + NONCE_LEN]);
        let nonce = &XNonce::from(nonce);
        let pt = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &blob[1 + NONCE_LEN..],
                    aad: &aad(name),
                },
            )
            .map_err(|_| {
                Error::validation(
                    "secrets",
                    format!(
                        "local backend: secret {name} cannot be decrypted: the master key is not the one it was stored with, or the row was altered or copied from another name"
                    ),
                )
            })?;
        let pt = Zeroizing::new(pt);
        let s = std::str::from_utf8(&pt).map_err(|_| {
            Error::validation(
                "secrets",
                format!("local backend: secret {name} is not UTF-8"),
            )
        })?;
        Ok(SecretValue::new(s))
    }
}
