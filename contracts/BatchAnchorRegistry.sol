// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title BatchAnchorRegistry
/// @notice Anchors Merkle roots of batches of MediTrustAl record commitments.
/// Each root commits to `leafCount` salted leaves; no patient identifier,
/// record type or record hash reaches the chain. Only the registrar (the
/// deployer) writes; anyone reads. docs/anchoring.md defines the leaves and
/// the tree.
contract BatchAnchorRegistry {
    /// @notice The only account allowed to anchor roots. A storage variable
    /// rather than `immutable`, so the runtime code on chain equals the
    /// compiler's `deployedBytecode` and a deployment can be checked against
    /// the committed artifact by code hash.
    address public registrar;

    /// @notice Per anchored root, one slot: the block number in the high 192
    /// bits and the leaf count in the low 64 bits. 0 when the root is not
    /// anchored.
    mapping(bytes32 => uint256) private batches;

    event BatchAnchored(bytes32 indexed root, uint256 leafCount);

    error Unauthorized();
    error InvalidBatch(bytes32 root, uint256 leafCount);
    error BatchAlreadyAnchored(bytes32 root);

    constructor() {
        registrar = msg.sender;
    }

    /// @notice Anchors `root`, the Merkle root of `leafCount` leaves. Reverts
    /// with `Unauthorized` for any sender but the registrar, `InvalidBatch`
    /// for a zero root or a leaf count of 0 or above 2^64 - 1, and
    /// `BatchAlreadyAnchored` when the root is anchored already, so a resent
    /// batch never anchors twice.
    function anchorBatch(bytes32 root, uint256 leafCount) external {
        if (msg.sender != registrar) revert Unauthorized();
        if (root == bytes32(0) || leafCount == 0 || leafCount > type(uint64).max) {
            revert InvalidBatch(root, leafCount);
        }
        if (batches[root] != 0) revert BatchAlreadyAnchored(root);

        batches[root] = (block.number << 64) | leafCount;
        emit BatchAnchored(root, leafCount);
    }

    /// @notice Returns the batch anchored under `root`. `exists` is false
    /// (and the other fields zero) when none is.
    function getBatch(bytes32 root) external view returns (bool exists, uint256 leafCount, uint256 blockNumber) {
        uint256 packed = batches[root];
        if (packed == 0) return (false, 0, 0);
        return (true, packed & type(uint64).max, packed >> 64);
    }
}
