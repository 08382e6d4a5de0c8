//! Pagination cursors as the API hands them out: a store cursor sealed with
//! XChaCha20-Poly1305 under a server-side key, with the listing that issued it as associated
//! data. A client sees an opaque token that says nothing of the key schema; a token changed
//! in any bit, or presented to another listing (another route or other filters), fails to
//! open and is answered with 400.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::store::Cursor;

/// Bytes of nonce before the ciphertext.
const NONCE: usize = 24;

/// Seals and opens cursors.
#[derive(Clone)]
pub(crate) struct CursorSeal {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for CursorSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSeal(<key>)")
    }
}

impl CursorSeal {
    /// A seal whose key is derived from `secret`, with a label that keeps it apart from any
    /// other use of the same secret.
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"socratic/api/cursor/v1\0");
        hasher.update(secret);
        let key = hasher.finalize();
        Self {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    /// The token for `cursor`, valid only for `listing`.
    pub(crate) fn seal(&self, listing: &str, cursor: &Cursor) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: cursor.0.as_bytes(),
            aad: listing.as_bytes(),
        };
        // Encryption fails only for messages of gigabytes.
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut token = nonce.to_vec();
        token.extend_from_slice(&sealed);
        hex::encode(token)
    }

    /// The cursor inside `token`, if this seal made it for `listing`.
    pub(crate) fn open(&self, listing: &str, token: &str) -> Option<Cursor> {
        let bytes = hex::decode(token).ok()?;
        if bytes.len() <= NONCE {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let payload = Payload {
            msg: sealed,
            aad: listing.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .ok()?;
        String::from_utf8(plain).ok().map(Cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_for_its_listing_and_only_untouched() {
        let seal = CursorSeal::from_secret(b"secret");
        let cursor = Cursor("SEED#APO-PHY-HEAT-TEMP-01|METADATA".into());
        let token = seal.seal("catalog/scenarios", &cursor);
        assert_eq!(seal.open("catalog/scenarios", &token), Some(cursor.clone()));
        assert!(
            !token
                .to_uppercase()
                .contains(&hex::encode("SEED#").to_uppercase())
        );
        assert_eq!(seal.open("catalog/prompts", &token), None);
        // Every single-bit change is caught.
        let bytes = hex::decode(&token).unwrap();
        for i in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[i] ^= 1;
            assert_eq!(seal.open("catalog/scenarios", &hex::encode(tampered)), None);
        }
        assert_eq!(seal.open("catalog/scenarios", "not hex"), None);
        assert_eq!(seal.open("catalog/scenarios", ""), None);
        // Another server key does not open it.
        assert_eq!(
            CursorSeal::from_secret(b"other").open("catalog/scenarios", &token),
            None
        );
        // Two seals of one cursor differ (a fresh nonce each time).
        assert_ne!(seal.seal("catalog/scenarios", &cursor), token);
    }
}
