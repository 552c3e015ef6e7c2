//! Envelope encryption: every message gets a fresh 256-bit data key, which
//! is itself sealed by the current master key. Both layers use AES-256-GCM
//! with random 96-bit nonces and bind the caller's associated data, so a
//! ciphertext moved to another record fails to open.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::keys::{KeyId, KeyProvider, MasterKey};

/// Ciphertext and the wrapped data key needed to open it. Nothing in it is
/// secret without the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedData {
    /// Id of the master key that wrapped the data key.
    pub key_id: KeyId,
    /// Data key sealed by the master key: nonce, ciphertext and tag.
    pub wrapped_key: Vec<u8>,
    /// Nonce of the data encryption.
    pub nonce: [u8; NONCE_LEN],
    /// Encrypted data followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
}

/// Errors from sealing or opening data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The ciphertext, wrapped key or associated data was altered, or the
    /// data belongs to another record. No plaintext is returned.
    #[error("integrity check failed: the ciphertext or its context was altered")]
    Integrity,
    /// The master key that sealed the data is not in the key provider.
    #[error("master key {0} is not configured")]
    UnknownKey(KeyId),
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
}

const WRAP_CONTEXT: &[u8] = b"meditrustal.data-key.v1";

/// Seals `plaintext` under a fresh data key, binding `aad` to both layers.
pub fn seal(
    keys: &dyn KeyProvider,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<SealedData, CryptoError> {
    seal_with_rng(keys, plaintext, aad, &SystemRandom::new())
}

/// Same as [`seal`] with an explicit random source, for tests.
pub fn seal_with_rng(
    keys: &dyn KeyProvider,
    plaintext: &[u8],
    aad: &[u8],
    rng: &dyn SecureRandom,
) -> Result<SealedData, CryptoError> {
    let master = keys.current();

    let mut data_key = Zeroizing::new([0u8; 32]);
    rng.fill(data_key.as_mut())
        .map_err(|_| CryptoError::Random)?;
    let nonce = random_nonce(rng)?;

    let mut ciphertext = plaintext.to_vec();
    aead_key(&data_key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut ciphertext,
        )
        .map_err(|_| CryptoError::Integrity)?;

    let wrapped_key = wrap_key(master, &data_key, aad, rng)?;
    Ok(SealedData {
        key_id: master.id().clone(),
        wrapped_key,
        nonce,
        ciphertext,
    })
}

/// Opens sealed data. Fails with [`CryptoError::Integrity`] if any byte of
/// it, or the associated data, differs from what was sealed.
pub fn open(
    keys: &dyn KeyProvider,
    sealed: &SealedData,
    aad: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let master = keys
        .by_id(&sealed.key_id)
        .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
    let data_key = unwrap_key(master, &sealed.wrapped_key, aad)?;

    // The buffer contains the plaintext after decryption, so it is wiped on
    // drop; the caller owns the returned copy.
    let mut buffer = Zeroizing::new(sealed.ciphertext.clone());
    let plaintext = aead_key(&data_key)?
        .open_in_place(
            Nonce::assume_unique_for_key(sealed.nonce),
            Aad::from(aad),
            buffer.as_mut_slice(),
        )
        .map_err(|_| CryptoError::Integrity)?;
    Ok(plaintext.to_vec())
}

/// Re-wraps the data key of `sealed` under `target` and returns the sealed
/// data with the new key id and wrapped key. The nonce and ciphertext are
/// carried over unchanged, so the content is never decrypted. Errors:
/// [`CryptoError::UnknownKey`] when the provider lacks the key that wrapped
/// it, [`CryptoError::Integrity`] when the wrapped key or `aad` was altered.
pub fn rewrap(
    keys: &dyn KeyProvider,
    sealed: &SealedData,
    aad: &[u8],
    target: &MasterKey,
) -> Result<SealedData, CryptoError> {
    let master = keys
        .by_id(&sealed.key_id)
        .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
    let data_key = unwrap_key(master, &sealed.wrapped_key, aad)?;
    let wrapped_key = wrap_key(target, &data_key, aad, &SystemRandom::new())?;
    Ok(SealedData {
        key_id: target.id().clone(),
        wrapped_key,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext.clone(),
    })
}

fn wrap_key(
    master: &MasterKey,
    data_key: &[u8; 32],
    aad: &[u8],
    rng: &dyn SecureRandom,
) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_nonce(rng)?;
    let mut sealed = data_key.to_vec();
    aead_key(master.secret_bytes())?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(master.id(), aad)),
            &mut sealed,
        )
        .map_err(|_| CryptoError::Integrity)?;

    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&sealed);
    Ok(wrapped)
}

fn unwrap_key(
    master: &MasterKey,
    wrapped: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let (nonce, sealed) = wrapped
        .split_at_checked(NONCE_LEN)
        .ok_or(CryptoError::Integrity)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Integrity)?;

    let mut buffer = Zeroizing::new(sealed.to_vec());
    let opened = aead_key(master.secret_bytes())?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(master.id(), aad)),
            buffer.as_mut_slice(),
        )
        .map_err(|_| CryptoError::Integrity)?;
    let key: [u8; 32] = (&*opened).try_into().map_err(|_| CryptoError::Integrity)?;
    Ok(Zeroizing::new(key))
}

fn wrap_aad(key_id: &KeyId, aad: &[u8]) -> Vec<u8> {
    crate::Digest::of_parts(&[WRAP_CONTEXT, key_id.as_str().as_bytes(), aad])
        .as_bytes()
        .to_vec()
}

fn aead_key(key: &[u8; 32]) -> Result<LessSafeKey, CryptoError> {
    let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Integrity)?;
    Ok(LessSafeKey::new(unbound))
}

/// Returns 32 bytes from the system's cryptographically secure random
/// number generator. Errors: [`CryptoError::Random`].
pub fn random_bytes_32() -> Result<[u8; 32], CryptoError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CryptoError::Random)?;
    Ok(bytes)
}

fn random_nonce(rng: &dyn SecureRandom) -> Result<[u8; NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::keys::{MasterKey, MasterKeyring};

    fn keyring(id: &str, byte: u8) -> MasterKeyring {
        MasterKeyring::new(MasterKey::new(KeyId::new(id), [byte; 32]), [])
    }

    #[test]
    fn round_trip_returns_plaintext() {
        let keys = keyring("k1", 7);
        let sealed = seal(&keys, b"{\"resourceType\":\"Observation\"}", b"record-1").unwrap();
        assert_eq!(
            open(&keys, &sealed, b"record-1").unwrap(),
            b"{\"resourceType\":\"Observation\"}"
        );
        assert_eq!(sealed.key_id, KeyId::new("k1"));
    }

    #[test]
    fn identical_plaintexts_get_distinct_nonces_and_ciphertexts() {
        let keys = keyring("k1", 7);
        let first = seal(&keys, b"same", b"r").unwrap();
        let second = seal(&keys, b"same", b"r").unwrap();
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_ne!(first.wrapped_key, second.wrapped_key);
    }

    #[test]
    fn thousand_seals_repeat_no_nonce() {
        let keys = keyring("k1", 7);
        let mut nonces = HashSet::new();
        for _ in 0..1000 {
            assert!(nonces.insert(seal(&keys, b"x", b"r").unwrap().nonce));
        }
        assert_eq!(nonces.len(), 1000);
    }

    #[test]
    fn every_flipped_ciphertext_byte_fails_integrity() {
        let keys = keyring("k1", 7);
        let sealed = seal(&keys, b"glucose 6.3 mmol/L", b"r").unwrap();
        for index in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[index] ^= 0x01;
            assert_eq!(open(&keys, &tampered, b"r"), Err(CryptoError::Integrity));
        }
    }

    #[test]
    fn flipped_wrapped_key_or_nonce_fails_integrity() {
        let keys = keyring("k1", 7);
        let sealed = seal(&keys, b"data", b"r").unwrap();
        for index in 0..sealed.wrapped_key.len() {
            let mut tampered = sealed.clone();
            tampered.wrapped_key[index] ^= 0x80;
            assert_eq!(open(&keys, &tampered, b"r"), Err(CryptoError::Integrity));
        }
        let mut tampered = sealed.clone();
        tampered.nonce[0] ^= 1;
        assert_eq!(open(&keys, &tampered, b"r"), Err(CryptoError::Integrity));
    }

    #[test]
    fn other_associated_data_fails_integrity() {
        let keys = keyring("k1", 7);
        let sealed = seal(&keys, b"data", b"record-a").unwrap();
        assert_eq!(
            open(&keys, &sealed, b"record-b"),
            Err(CryptoError::Integrity)
        );
    }

    #[test]
    fn wrong_master_key_fails_integrity() {
        let sealed = seal(&keyring("k1", 7), b"data", b"r").unwrap();
        assert_eq!(
            open(&keyring("k1", 8), &sealed, b"r"),
            Err(CryptoError::Integrity)
        );
    }

    #[test]
    fn unknown_key_id_is_reported() {
        let sealed = seal(&keyring("old", 7), b"data", b"r").unwrap();
        assert_eq!(
            open(&keyring("new", 7), &sealed, b"r"),
            Err(CryptoError::UnknownKey(KeyId::new("old")))
        );
    }

    #[test]
    fn previous_keys_still_open_after_rotation() {
        let sealed = seal(&keyring("k1", 7), b"data", b"r").unwrap();
        let rotated = MasterKeyring::new(
            MasterKey::new(KeyId::new("k2"), [9; 32]),
            [MasterKey::new(KeyId::new("k1"), [7; 32])],
        );
        assert_eq!(open(&rotated, &sealed, b"r").unwrap(), b"data");
        assert_eq!(
            seal(&rotated, b"new", b"r").unwrap().key_id,
            KeyId::new("k2")
        );
    }

    #[test]
    fn rewrap_keeps_ciphertext_and_opens_under_new_key() {
        let old = keyring("k1", 7);
        let sealed = seal(&old, b"glucose 6.3 mmol/L", b"r").unwrap();
        let target = MasterKey::new(KeyId::new("k2"), [9; 32]);

        let rewrapped = rewrap(&old, &sealed, b"r", &target).unwrap();

        assert_eq!(rewrapped.key_id, KeyId::new("k2"));
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert_eq!(rewrapped.nonce, sealed.nonce);
        assert_ne!(rewrapped.wrapped_key, sealed.wrapped_key);
        let only_new = keyring("k2", 9);
        assert_eq!(
            open(&only_new, &rewrapped, b"r").unwrap(),
            b"glucose 6.3 mmol/L"
        );
    }

    #[test]
    fn rewrap_rejects_other_aad_and_unknown_key() {
        let old = keyring("k1", 7);
        let sealed = seal(&old, b"data", b"record-a").unwrap();
        let target = MasterKey::new(KeyId::new("k2"), [9; 32]);

        assert_eq!(
            rewrap(&old, &sealed, b"record-b", &target),
            Err(CryptoError::Integrity)
        );
        assert_eq!(
            rewrap(&keyring("k3", 7), &sealed, b"record-a", &target),
            Err(CryptoError::UnknownKey(KeyId::new("k1")))
        );
    }
}
