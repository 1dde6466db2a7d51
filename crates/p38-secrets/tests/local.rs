//! The local store's crypto: master key loading and XChaCha20-Poly1305.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use p38_secrets::{LocalCipher, MasterKey};

const PLAINTEXT: &str = "sk-live-canary-plaintext-31337";

#[test]
fn seal_then_open_round_trips() {
    let key = MasterKey::generate();
    let c = LocalCipher::new(key.clone());
    let blob = c.seal("API_KEY", PLAINTEXT);
    assert_eq!(c.open("API_KEY", &blob).unwrap().expose(), PLAINTEXT);
    // The MasterKey shortcuts agree with the cipher.
    assert_eq!(key.open("API_KEY", &blob).unwrap().expose(), PLAINTEXT);
    let blob2 = key.seal("API_KEY", "ünïcödé\nmulti-line");
    assert_eq!(
        c.open("API_KEY", &blob2).unwrap().expose(),
        "ünïcödé\nmulti-line"
    );
    assert_eq!(c.open("EMPTY", &c.seal("EMPTY", "")).unwrap().expose(), "");
}

#[test]
fn ciphertext_hides_the_plaintext_and_nonces_differ() {
    let c = LocalCipher::new(MasterKey::generate());
    let a = c.seal("API_KEY", PLAINTEXT);
    let b = c.seal("API_KEY", PLAINTEXT);
    assert_ne!(a, b, "a fresh nonce each time");
    assert_eq!(a.len(), 1 + 24 + PLAINTEXT.len() + 16);
    for blob in [&a, &b] {
        let hay = String::from_utf8_lossy(blob);
        assert!(!hay.contains("canary"));
        assert!(!blob.windows(6).any(|w| w == b"canary"));
        assert!(!hex::encode(blob).contains(&hex::encode("canary")));
    }
}

#[test]
fn a_blob_moved_to_another_name_does_not_open() {
    let c = LocalCipher::new(MasterKey::generate());
    let blob = c.seal("API_KEY", PLAINTEXT);
    let e = c.open("OTHER_KEY", &blob).unwrap_err().to_string();
    assert!(
        e.contains("OTHER_KEY") && e.contains("cannot be decrypted"),
        "{e}"
    );
    assert!(!e.contains("canary"));
}

#[test]
fn another_key_does_not_open() {
    let blob = MasterKey::generate().seal("API_KEY", PLAINTEXT);
    assert!(MasterKey::generate().open("API_KEY", &blob).is_err());
}

#[test]
fn altered_or_truncated_blobs_do_not_open() {
    let c = LocalCipher::new(MasterKey::generate());
    let blob = c.seal("API_KEY", PLAINTEXT);
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        assert!(c.open("API_KEY", &bad).is_err(), "flip at {i}");
    }
    assert!(c.open("API_KEY", &blob[..blob.len() - 1]).is_err());
    assert!(c.open("API_KEY", &[]).is_err());
    assert!(
        c.open("API_KEY", b"plain text from an old version")
            .is_err()
    );
}

#[test]
fn key_file_is_created_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("master.key");
    let k1 = MasterKey::load_or_create(None, &path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "the new folder is private");
    let content = std::fs::read_to_string(&path).unwrap();
    assert_eq!(STANDARD.decode(content.trim()).unwrap().len(), 32);
    // No temporary file left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );

    let blob = k1.seal("API_KEY", PLAINTEXT);
    let k2 = MasterKey::load_or_create(None, &path).unwrap();
    assert_eq!(k2.open("API_KEY", &blob).unwrap().expose(), PLAINTEXT);
    assert_eq!(k1.to_base64().expose(), k2.to_base64().expose());
}

#[test]
fn racing_creators_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let keys: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| MasterKey::load_or_create(None, &path).unwrap()))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap().to_base64().expose().to_string())
            .collect()
    });
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    MasterKey::load_or_create(None, &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = MasterKey::load_or_create(None, &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("chmod 600"), "{e}");
}

#[test]
fn p38_master_key_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let k = MasterKey::generate();
    let b64 = k.to_base64().expose().to_string();
    let loaded = MasterKey::load_or_create(Some(&format!(" {b64}\n")), &path).unwrap();
    assert_eq!(loaded.to_base64().expose(), b64);
    assert!(!path.exists(), "no key file when the variable is set");
    // URL-safe, unpadded base64 is accepted too.
    let url = b64
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string();
    assert!(MasterKey::from_base64(&url, "P38_MASTER_KEY").is_ok());
}

#[test]
fn invalid_p38_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let short = STANDARD.encode([7u8; 16]);
    for (value, want) in [
        ("not base64 at all!!", "not valid base64"),
        (short.as_str(), "decodes to 16 bytes, not 32"),
        ("", "decodes to 0 bytes"),
    ] {
        let e = MasterKey::load_or_create(Some(value), &path).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("P38_MASTER_KEY"), "{msg}");
        assert!(
            msg.contains(want) && msg.contains("openssl rand -base64 32"),
            "{msg}"
        );
        if !value.is_empty() {
            assert!(!msg.contains(value), "{msg}");
        }
        assert_eq!(e.code(), "validation");
    }
    assert!(!path.exists());
}

#[test]
fn debug_shows_no_key_material() {
    let k = MasterKey::generate();
    let b64 = k.to_base64().expose().to_string();
    let c = LocalCipher::new(k.clone());
    for d in [
        format!("{k:?}"),
        format!("{c:?}"),
        format!("{:?}", k.to_base64()),
    ] {
        assert!(!d.contains(&b64) && !d.contains(&b64[..10]), "{d}");
        assert!(d.contains("REDACTED"), "{d}");
    }
}
