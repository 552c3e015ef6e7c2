// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title UserRegistry
/// @notice Maps a user's custodial account to their DID and role. Only the
/// registrar (the deployer) writes; anyone reads.
contract UserRegistry {
    /// @notice Role codes: 1 patient, 2 doctor, 3 admin. Code 0 marks an
    /// unregistered account, so it is never stored.
    uint8 public constant MAX_ROLE = 3;

    struct User {
        string did;
        uint8 role;
        uint256 blockNumber;
    }

    /// @notice The only account allowed to register users. A storage
    /// variable rather than `immutable`, so the runtime code on chain equals
    /// the compiler's `deployedBytecode` and a deployment can be checked
    /// against the committed artifact by code hash.
    address public registrar;

    mapping(address => User) private users;

    event UserRegistered(address indexed account, string did, uint8 role);

    error Unauthorized();
    error UserAlreadyRegistered(address account);
    error InvalidRole(uint8 role);

    constructor() {
        registrar = msg.sender;
    }

    /// @notice Registers `account` with its DID and role code (1 to 3).
    /// Reverts with `Unauthorized` for any sender but the registrar,
    /// `InvalidRole` for role 0 or above 3, and `UserAlreadyRegistered` when
    /// the account already has an entry.
    function registerUser(address account, string calldata did, uint8 role) external {
        if (msg.sender != registrar) revert Unauthorized();
        if (role == 0 || role > MAX_ROLE) revert InvalidRole(role);
        if (users[account].role != 0) revert UserAlreadyRegistered(account);

        users[account] = User({did: did, role: role, blockNumber: block.number});
        emit UserRegistered(account, did, role);
    }

    /// @notice Returns the entry of `account`. Role 0 (with an empty DID and
    /// block number 0) means the account is not registered.
    function getUser(address account)
        external
        view
        returns (string memory did, uint8 role, uint256 blockNumber)
    {
        User storage user = users[account];
        return (user.did, user.role, user.blockNumber);
    }
}
