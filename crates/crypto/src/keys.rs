use std::collections::HashMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretBox};

/// Identifier of a master key, stored beside every data key it wraps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Wraps a key id. Ids are short printable names such as `dev-1`.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit master key that wraps per-record data keys. Its bytes are
/// zeroized on drop and never printed.
pub struct MasterKey {
    id: KeyId,
    secret: SecretBox<[u8; 32]>,
}

impl MasterKey {
    /// Builds a master key from its id and 32 secret bytes.
    pub fn new(id: KeyId, secret: [u8; 32]) -> Self {
        Self {
            id,
            secret: SecretBox::new(Box::new(secret)),
        }
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// A value that identifies the key without revealing it: HMAC-SHA256 of
    /// a fixed label under the key. Stored beside sealed data, it shows
    /// whether a configured key is the one that sealed the data.
    pub fn check_value(&self) -> crate::Digest {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret_bytes());
        let tag = ring::hmac::sign(&key, b"meditrustal.master-key-check.v1");
        crate::Digest::from_slice(tag.as_ref()).unwrap_or_else(|_| crate::sha256(tag.as_ref()))
    }

    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        self.secret.expose_secret()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Source of master keys: the key new data is sealed under, and any key
/// that sealed existing data.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait KeyProvider: Send + Sync {
    /// The key that seals new data.
    fn current(&self) -> &MasterKey;

    /// The key with `id`, or `None` when this provider does not hold it (the
    /// caller reports the data as unreadable).
    fn by_id(&self, id: &KeyId) -> Option<&MasterKey>;
}

/// An in-memory set of master keys, one of which is current.
#[derive(Debug)]
pub struct MasterKeyring {
    current: KeyId,
    keys: HashMap<KeyId, MasterKey>,
}

impl MasterKeyring {
    /// Builds a keyring whose current key is `current`; `previous` keys stay
    /// readable so that data sealed before a rotation still opens.
    pub fn new(current: MasterKey, previous: impl IntoIterator<Item = MasterKey>) -> Self {
        let current_id = current.id.clone();
        let mut keys: HashMap<KeyId, MasterKey> = previous
            .into_iter()
            .map(|key| (key.id.clone(), key))
            .collect();
        keys.insert(current_id.clone(), current);
        Self {
            current: current_id,
            keys,
        }
    }
}

impl MasterKeyring {
    /// Every key in the ring, the current one included, in no set order.
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        self.keys.values()
    }
}

impl KeyProvider for MasterKeyring {
    #[expect(clippy::expect_used, reason = "new() always inserts the current key")]
    fn current(&self) -> &MasterKey {
        self.keys
            .get(&self.current)
            .expect("current key is in the keyring")
    }

    fn by_id(&self, id: &KeyId) -> Option<&MasterKey> {
        self.keys.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_depends_on_key_bytes_only() {
        let first = MasterKey::new(KeyId::new("a"), [1; 32]);
        let same_bytes = MasterKey::new(KeyId::new("b"), [1; 32]);
        let other_bytes = MasterKey::new(KeyId::new("a"), [2; 32]);

        assert_eq!(first.check_value(), same_bytes.check_value());
        assert_ne!(first.check_value(), other_bytes.check_value());
    }
}
