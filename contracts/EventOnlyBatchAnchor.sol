// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title EventOnlyBatchAnchor
/// @notice Measurement baseline, never deployed by MediTrustAl: anchors a
/// batch root by emitting an event and storing nothing. It cannot reject a
/// resent root, which is why BatchAnchorRegistry stores one slot per root
/// (docs/anchoring.md compares the gas of both).
contract EventOnlyBatchAnchor {
    address public registrar;

    event BatchAnchored(bytes32 indexed root, uint256 leafCount);

    error Unauthorized();

    constructor() {
        registrar = msg.sender;
    }

    function anchorBatch(bytes32 root, uint256 leafCount) external {
        if (msg.sender != registrar) revert Unauthorized();
        emit BatchAnchored(root, leafCount);
    }
}
