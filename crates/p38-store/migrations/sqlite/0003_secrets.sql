-- Secrets of the local backend: only XChaCha20-Poly1305 ciphertext (the
-- secret's name is bound in as associated data); never a plaintext value.
CREATE TABLE secrets (
    name       TEXT    PRIMARY KEY,
    ciphertext BLOB    NOT NULL,
    version    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
