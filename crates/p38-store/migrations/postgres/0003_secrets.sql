-- Secrets of the local backend: only XChaCha20-Poly1305 ciphertext (the
-- secret's name is bound in as associated data); never a plaintext value.
CREATE TABLE secrets (
    name       TEXT    PRIMARY KEY,
    ciphertext BYTEA   NOT NULL,
    version    BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
