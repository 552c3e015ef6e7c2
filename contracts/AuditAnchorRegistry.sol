// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title AuditAnchorRegistry
/// @notice Anchors heads of MediTrustAl's hash-chained audit log. Each entry
/// records that the event with sequence number `seq` had hash `headHash`,
/// and that hash commits to every earlier event. Only the registrar (the
/// deployer) writes; anyone reads. No audit event content reaches the chain.
contract AuditAnchorRegistry {
    struct Anchor {
        uint64 seq;
        bytes32 headHash;
        uint64 blockNumber;
    }

    /// @notice The only account allowed to anchor heads. A storage variable
    /// rather than `immutable`, so the runtime code on chain equals the
    /// compiler's `deployedBytecode` and a deployment can be checked against
    /// the committed artifact by code hash.
    address public registrar;

    /// @notice Every anchor, in the order the registrar wrote them.
    Anchor[] private anchors;

    /// @notice Position in `anchors` plus one for each anchored sequence
    /// number; 0 when the sequence number is not anchored.
    mapping(uint64 => uint256) private positions;

    event HeadAnchored(uint64 indexed seq, bytes32 headHash);

    error Unauthorized();
    error InvalidHead(uint64 seq, bytes32 headHash);
    error HeadAlreadyAnchored(uint64 seq);

    constructor() {
        registrar = msg.sender;
    }

    /// @notice Anchors the hash of audit event `seq`. Reverts with
    /// `Unauthorized` for any sender but the registrar, `InvalidHead` for
    /// sequence number 0 or a zero hash, and `HeadAlreadyAnchored` when `seq`
    /// already has an anchor, so an anchored head can never be replaced.
    function anchorHead(uint64 seq, bytes32 headHash) external {
        if (msg.sender != registrar) revert Unauthorized();
        if (seq == 0 || headHash == bytes32(0)) revert InvalidHead(seq, headHash);
        if (positions[seq] != 0) revert HeadAlreadyAnchored(seq);

        anchors.push(Anchor({seq: seq, headHash: headHash, blockNumber: uint64(block.number)}));
        positions[seq] = anchors.length;
        emit HeadAnchored(seq, headHash);
    }

    /// @notice Returns the number of anchors.
    function anchorCount() external view returns (uint256) {
        return anchors.length;
    }

    /// @notice Returns up to `count` anchors starting at position `start`, in
    /// anchoring order. Returns fewer (or none) past the end.
    function anchorsFrom(uint256 start, uint256 count) external view returns (Anchor[] memory page) {
        uint256 end = start + count;
        if (end > anchors.length) end = anchors.length;
        if (start >= end) return new Anchor[](0);

        page = new Anchor[](end - start);
        for (uint256 i = start; i < end; i++) {
            page[i - start] = anchors[i];
        }
    }

    /// @notice Returns the anchor of `seq`. `exists` is false (and the other
    /// fields zero) when `seq` is not anchored.
    function getAnchor(uint64 seq) external view returns (bool exists, bytes32 headHash, uint256 blockNumber) {
        uint256 position = positions[seq];
        if (position == 0) return (false, bytes32(0), 0);
        Anchor storage anchor = anchors[position - 1];
        return (true, anchor.headHash, anchor.blockNumber);
    }
}
