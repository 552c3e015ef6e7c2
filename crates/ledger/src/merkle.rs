//! The Merkle tree that batch anchoring commits to, and its proofs.
//!
//! - A leaf is `SHA-256(0x00 || salt || commitment)`: the record's 32-byte
//!   random salt, then its 32-byte commitment (the record's anchor hash).
//! - A node is `SHA-256(0x01 || left || right)`. The different first bytes
//!   keep a node from ever passing for a leaf, or a leaf for a node.
//! - Leaves are paired left to right on each level. When a level has an odd
//!   number of nodes, the last one moves up to the next level unchanged; it
//!   is never paired with a copy of itself.
//! - The root of a one-leaf tree is that leaf. An empty tree has no root.
//!
//! Which siblings a proof has, and on which side, follows from the leaf's
//! index and the leaf count alone, so [`MerkleProof::root_for`] rejects a
//! path whose length does not fit them.

use std::fmt;
use std::str::FromStr;

use meditrustal_crypto::{CryptoError, Digest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// First byte hashed into a leaf.
pub const LEAF_PREFIX: u8 = 0x00;
/// First byte hashed into an inner node.
pub const NODE_PREFIX: u8 = 0x01;

/// A record's 32 random bytes, hashed into its leaf so that the leaf
/// reveals nothing about the record even to someone who can guess it.
/// Generated once per record and stored with it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Salt([u8; 32]);

impl Salt {
    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Draws a fresh salt from the system's secure random number generator.
    /// Errors: [`CryptoError::Random`].
    pub fn generate() -> Result<Self, CryptoError> {
        meditrustal_crypto::random_bytes_32().map(Self)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Salt({self})")
    }
}

impl FromStr for Salt {
    type Err = meditrustal_crypto::DigestParseError;

    /// Parses `0x` and 64 lowercase hex digits, the spelling of [`Digest`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse::<Digest>()
            .map(|digest| Self(*digest.as_bytes()))
    }
}

impl Serialize for Salt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Salt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Computes the leaf of a record: `SHA-256(0x00 || salt || commitment)`.
pub fn leaf_hash(salt: &Salt, commitment: &Digest) -> Digest {
    let mut preimage = [0u8; 65];
    preimage[0] = LEAF_PREFIX;
    preimage[1..33].copy_from_slice(salt.as_bytes());
    preimage[33..].copy_from_slice(commitment.as_bytes());
    meditrustal_crypto::sha256(&preimage)
}

/// Computes an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Digest, right: &Digest) -> Digest {
    let mut preimage = [0u8; 65];
    preimage[0] = NODE_PREFIX;
    preimage[1..33].copy_from_slice(left.as_bytes());
    preimage[33..].copy_from_slice(right.as_bytes());
    meditrustal_crypto::sha256(&preimage)
}

/// Side on which a proof's sibling hash goes when it is combined with the
/// running hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// `node_hash(sibling, running)`.
    Left,
    /// `node_hash(running, sibling)`.
    Right,
}

/// One step of a proof: a sibling hash and its side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStep {
    /// Side of the sibling.
    pub side: Side,
    /// The sibling's hash.
    pub hash: Digest,
}

/// Why a proof does not lead to a root.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not below the leaf count, or the count is 0.
    #[error("leaf index {index} is out of range for {count} leaves")]
    IndexOutOfRange {
        /// Leaf index of the proof.
        index: u64,
        /// Leaf count of the proof.
        count: u64,
    },
    /// The path has another number of siblings than the index and count
    /// give.
    #[error("the path has {actual} siblings, but leaf {index} of {count} needs {expected}")]
    WrongLength {
        /// Leaf index of the proof.
        index: u64,
        /// Leaf count of the proof.
        count: u64,
        /// Siblings the tree shape requires.
        expected: usize,
        /// Siblings present.
        actual: usize,
    },
    /// A step's side differs from the side the index gives at that level.
    #[error(
        "step {step} has its sibling on the {actual:?} side, but leaf {index} needs {expected:?}"
    )]
    WrongSide {
        /// Leaf index of the proof.
        index: u64,
        /// Position of the step in the path, from 0.
        step: usize,
        /// Side the tree shape requires.
        expected: Side,
        /// Side in the path.
        actual: Side,
    },
}

/// The sibling sides from leaf `index` up to the root of a tree of `count`
/// leaves; levels where the node moves up unpaired have no entry.
pub fn sibling_sides(index: u64, count: u64) -> Result<Vec<Side>, ProofError> {
    if index >= count {
        return Err(ProofError::IndexOutOfRange { index, count });
    }
    let mut sides = Vec::new();
    let (mut position, mut width) = (index, count);
    while width > 1 {
        if position % 2 == 1 {
            sides.push(Side::Left);
        } else if position + 1 < width {
            sides.push(Side::Right);
        }
        position /= 2;
        width = width.div_ceil(2);
    }
    Ok(sides)
}

/// A leaf's path to the root: its index, the leaf count and the sibling
/// hashes from the leaf level up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleProof {
    /// Position of the leaf, from 0.
    pub leaf_index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Sibling hashes, leaf level first.
    pub siblings: Vec<Digest>,
}

impl MerkleProof {
    /// Pairs each sibling with its side. Errors: as for
    /// [`MerkleProof::root_for`], except that it checks no hash.
    pub fn steps(&self) -> Result<Vec<ProofStep>, ProofError> {
        let sides = sibling_sides(self.leaf_index, self.leaf_count)?;
        if sides.len() != self.siblings.len() {
            return Err(ProofError::WrongLength {
                index: self.leaf_index,
                count: self.leaf_count,
                expected: sides.len(),
                actual: self.siblings.len(),
            });
        }
        Ok(sides
            .into_iter()
            .zip(&self.siblings)
            .map(|(side, hash)| ProofStep { side, hash: *hash })
            .collect())
    }

    /// Computes the root that `leaf` leads to along this path. Errors:
    /// [`ProofError::IndexOutOfRange`], [`ProofError::WrongLength`].
    pub fn root_for(&self, leaf: &Digest) -> Result<Digest, ProofError> {
        Ok(fold_steps(leaf, &self.steps()?))
    }
}

/// Combines `leaf` with each step in turn and returns the result.
pub fn fold_steps(leaf: &Digest, steps: &[ProofStep]) -> Digest {
    steps.iter().fold(*leaf, |running, step| match step.side {
        Side::Left => node_hash(&step.hash, &running),
        Side::Right => node_hash(&running, &step.hash),
    })
}

/// Checks that `steps` have the sides that leaf `index` of `count` needs.
/// Errors: [`ProofError`].
pub fn check_steps(index: u64, count: u64, steps: &[ProofStep]) -> Result<(), ProofError> {
    let sides = sibling_sides(index, count)?;
    if sides.len() != steps.len() {
        return Err(ProofError::WrongLength {
            index,
            count,
            expected: sides.len(),
            actual: steps.len(),
        });
    }
    for (position, (expected, step)) in sides.iter().zip(steps).enumerate() {
        if *expected != step.side {
            return Err(ProofError::WrongSide {
                index,
                step: position,
                expected: *expected,
                actual: step.side,
            });
        }
    }
    Ok(())
}

/// A Merkle tree over leaf hashes, every level kept, so that proofs of all
/// leaves cost one pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTree {
    /// Level 0 contains the leaves, and the last level contains only the root.
    levels: Vec<Vec<Digest>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves`, in their order. Returns `None` for no
    /// leaves.
    pub fn new(leaves: Vec<Digest>) -> Option<Self> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(level) = levels.last().filter(|level| level.len() > 1) {
            let next = level
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [alone] => *alone,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(next);
        }
        Some(Self { levels })
    }

    /// The root.
    pub fn root(&self) -> Digest {
        self.levels
            .last()
            .and_then(|level| level.first())
            .copied()
            .unwrap_or_else(|| unreachable!("a tree has at least one leaf"))
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// The proof of leaf `index`, or `None` past the last leaf.
    pub fn proof(&self, index: usize) -> Option<MerkleProof> {
        if index >= self.leaf_count() {
            return None;
        }
        let mut siblings = Vec::new();
        let mut position = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = if position % 2 == 1 {
                level.get(position - 1)
            } else {
                level.get(position + 1)
            };
            siblings.extend(sibling.copied());
            position /= 2;
        }
        Some(MerkleProof {
            leaf_index: index as u64,
            leaf_count: self.leaf_count() as u64,
            siblings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(hex_text: &str) -> Digest {
        format!("0x{hex_text}").parse().unwrap()
    }

    /// Leaf `i` of the vectors: salt of 32 bytes `i`, commitment of 32
    /// bytes `0x10 + i`.
    fn vector_leaf(i: u8) -> Digest {
        leaf_hash(
            &Salt::from_bytes([i; 32]),
            &Digest::from_bytes([0x10 + i; 32]),
        )
    }

    fn leaves(count: u8) -> Vec<Digest> {
        (0..count).map(vector_leaf).collect()
    }

    // Expected values computed with Python's hashlib, independently of this
    // code: sha256(b"\x00" + salt + commitment) for leaves,
    // sha256(b"\x01" + left + right) for nodes, the last odd node moved up.
    const LEAF_0: &str = "f82b01fb442c24690afd037fd3f75c0d16952632ef5f249e477b027ff3acd392";
    const LEAF_4: &str = "d2f9f2c778c21ae9cd266b808b59be46f12edb8304c3a6307565539ef9a5b67b";
    const ROOT_2: &str = "3d4ddbd618759a0163226f25420650b46f0d52e6e05081b8791d1495584ea0b1";
    const ROOT_3: &str = "25ee8690004394986d59136a0fe5544e069bb126f7e15848430cabfaaa846085";
    const ROOT_4: &str = "fb0649f42fb85ffdde1af8bf37b72f4cba6d270ba1759b848b91ebc087536dd2";
    const ROOT_5: &str = "5b185034db14fb0b2837b6a11e5c231e4684a4dfa33a3eeaf531691859685ff2";
    const NODE_23: &str = "9a848e9ea8adec98523676e8b70aab364d2d010e2ce9100677cd81502b7f95d7";

    #[test]
    fn leaf_matches_independent_vectors() {
        assert_eq!(vector_leaf(0), digest(LEAF_0));
        assert_eq!(vector_leaf(4), digest(LEAF_4));
    }

    #[test]
    fn roots_match_independent_vectors() {
        let expected = [
            (1, LEAF_0),
            (2, ROOT_2),
            (3, ROOT_3),
            (4, ROOT_4),
            (5, ROOT_5),
        ];
        for (count, root) in expected {
            let tree = MerkleTree::new(leaves(count)).unwrap();
            assert_eq!(tree.root(), digest(root), "{count} leaves");
        }
    }

    #[test]
    fn empty_tree_has_no_root() {
        assert_eq!(MerkleTree::new(Vec::new()), None);
    }

    #[test]
    fn odd_last_leaf_moves_up_unpaired() {
        let tree = MerkleTree::new(leaves(5)).unwrap();
        let proof = tree.proof(4).unwrap();

        assert_eq!(proof.siblings, vec![digest(ROOT_4)]);
        assert_eq!(
            proof.steps().unwrap(),
            vec![ProofStep {
                side: Side::Left,
                hash: digest(ROOT_4)
            }]
        );
    }

    #[test]
    fn proof_of_leaf_two_of_four_has_known_siblings() {
        let tree = MerkleTree::new(leaves(4)).unwrap();
        let proof = tree.proof(2).unwrap();

        assert_eq!(
            proof.steps().unwrap(),
            vec![
                ProofStep {
                    side: Side::Right,
                    hash: vector_leaf(3)
                },
                ProofStep {
                    side: Side::Left,
                    hash: digest(ROOT_2)
                },
            ]
        );
        assert_eq!(node_hash(&vector_leaf(2), &vector_leaf(3)), digest(NODE_23));
    }

    #[test]
    fn every_proof_leads_to_the_root() {
        for count in 1..=33u8 {
            let tree = MerkleTree::new(leaves(count)).unwrap();
            for index in 0..usize::from(count) {
                let proof = tree.proof(index).unwrap();
                let root = proof.root_for(&vector_leaf(index as u8)).unwrap();
                assert_eq!(root, tree.root(), "leaf {index} of {count}");
            }
            assert_eq!(tree.proof(usize::from(count)), None);
        }
    }

    #[test]
    fn node_never_passes_for_a_leaf() {
        // The root of leaves 0 and 1 as a "leaf" of a one-leaf tree: with
        // distinct prefixes its leaf hash differs from the node hash.
        let node = node_hash(&vector_leaf(0), &vector_leaf(1));
        let as_leaf = leaf_hash(
            &Salt::from_bytes(*vector_leaf(0).as_bytes()),
            &vector_leaf(1),
        );
        assert_ne!(as_leaf, node);
        assert_eq!(node, digest(ROOT_2));
    }

    #[test]
    fn one_changed_byte_of_any_input_changes_the_root() {
        let tree = MerkleTree::new(leaves(5)).unwrap();
        let proof = tree.proof(1).unwrap();
        let salt = Salt::from_bytes([1; 32]);
        let commitment = Digest::from_bytes([0x11; 32]);
        let root = tree.root();
        assert_eq!(proof.root_for(&leaf_hash(&salt, &commitment)), Ok(root));

        for byte in 0..32 {
            let mut salt_bytes = *salt.as_bytes();
            salt_bytes[byte] ^= 1;
            let leaf = leaf_hash(&Salt::from_bytes(salt_bytes), &commitment);
            assert_ne!(proof.root_for(&leaf), Ok(root), "salt byte {byte}");

            let mut commitment_bytes = *commitment.as_bytes();
            commitment_bytes[byte] ^= 1;
            let leaf = leaf_hash(&salt, &Digest::from_bytes(commitment_bytes));
            assert_ne!(proof.root_for(&leaf), Ok(root), "commitment byte {byte}");

            for step in 0..proof.siblings.len() {
                let mut changed = proof.clone();
                let mut sibling = *changed.siblings[step].as_bytes();
                sibling[byte] ^= 1;
                changed.siblings[step] = Digest::from_bytes(sibling);
                let leaf = leaf_hash(&salt, &commitment);
                assert_ne!(
                    changed.root_for(&leaf),
                    Ok(root),
                    "sibling {step} byte {byte}"
                );
            }
        }
    }

    #[test]
    fn proof_with_wrong_index_or_count_is_rejected() {
        let tree = MerkleTree::new(leaves(5)).unwrap();
        let proof = tree.proof(1).unwrap();
        let leaf = vector_leaf(1);

        let moved = MerkleProof {
            leaf_index: 0,
            ..proof.clone()
        };
        assert_ne!(moved.root_for(&leaf), Ok(tree.root()));

        let shorter = MerkleProof {
            leaf_count: 2,
            ..proof.clone()
        };
        assert_eq!(
            shorter.root_for(&leaf),
            Err(ProofError::WrongLength {
                index: 1,
                count: 2,
                expected: 1,
                actual: 3
            })
        );

        let outside = MerkleProof {
            leaf_index: 5,
            ..proof
        };
        assert_eq!(
            outside.root_for(&leaf),
            Err(ProofError::IndexOutOfRange { index: 5, count: 5 })
        );
    }

    #[test]
    fn steps_with_swapped_side_are_rejected() {
        let tree = MerkleTree::new(leaves(4)).unwrap();
        let mut steps = tree.proof(2).unwrap().steps().unwrap();
        steps[0].side = Side::Left;

        assert_eq!(
            check_steps(2, 4, &steps),
            Err(ProofError::WrongSide {
                index: 2,
                step: 0,
                expected: Side::Right,
                actual: Side::Left
            })
        );
        assert_ne!(fold_steps(&vector_leaf(2), &steps), tree.root());
    }

    #[test]
    fn sibling_sides_follow_index_and_count() {
        assert_eq!(sibling_sides(0, 1), Ok(vec![]));
        assert_eq!(sibling_sides(0, 2), Ok(vec![Side::Right]));
        assert_eq!(sibling_sides(4, 5), Ok(vec![Side::Left]));
        assert_eq!(
            sibling_sides(3, 5),
            Ok(vec![Side::Left, Side::Left, Side::Right])
        );
        assert_eq!(sibling_sides(1024, 1025), Ok(vec![Side::Left]));
        assert_eq!(sibling_sides(1023, 1024).unwrap().len(), 10);
        assert_eq!(
            sibling_sides(0, 0),
            Err(ProofError::IndexOutOfRange { index: 0, count: 0 })
        );
    }

    #[test]
    fn salt_prints_and_parses_as_prefixed_hex() {
        let salt = Salt::from_bytes([0xab; 32]);
        let text = salt.to_string();

        assert_eq!(text, format!("0x{}", "ab".repeat(32)));
        assert_eq!(text.parse::<Salt>(), Ok(salt));
        assert_ne!(Salt::generate().unwrap(), Salt::generate().unwrap());
    }
}
