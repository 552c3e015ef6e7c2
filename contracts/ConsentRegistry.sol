// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ConsentRegistry
/// @notice Records a patient's grants and revocations of access to their
/// medical records. Each write carries the patient's EIP-712 signature, which
/// this contract checks against the patient's address; the registrar only
/// relays the signed message and pays the gas. The consent terms themselves
/// (record types, record ids, purpose) stay off-chain: `scopeHash` commits to
/// them.
contract ConsentRegistry {
    /// @notice Access levels: 1 read, 2 read and write. Code 0 is never stored.
    uint8 public constant MAX_ACCESS = 2;

    /// @dev Half the order of secp256k1. Signatures with a larger `s` are
    /// rejected, so that each message has one valid signature per key.
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("MediTrustAl ConsentRegistry");
    bytes32 private constant VERSION_HASH = keccak256("1");
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(bytes32 consentId,address patient,address grantee,uint8 access,bytes32 scopeHash,uint64 expiresAt)"
    );
    bytes32 public constant REVOKE_TYPEHASH = keccak256("Revoke(bytes32 consentId,address patient)");

    struct Consent {
        address patient;
        address grantee;
        uint8 access;
        bytes32 scopeHash;
        uint64 expiresAt;
        uint256 grantedBlock;
        uint256 revokedBlock;
    }

    /// @notice The only account allowed to relay signed consents. A storage
    /// variable rather than `immutable`, so the runtime code on chain equals
    /// the compiler's `deployedBytecode`.
    address public registrar;

    mapping(bytes32 => Consent) private consents;

    event ConsentGranted(
        bytes32 indexed consentId,
        address indexed patient,
        address indexed grantee,
        uint8 access,
        bytes32 scopeHash,
        uint64 expiresAt
    );
    event ConsentRevoked(bytes32 indexed consentId, address indexed patient);

    error Unauthorized();
    error InvalidSignature();
    error InvalidAccess(uint8 access);
    error ConsentAlreadyExists(bytes32 consentId);
    error UnknownConsent(bytes32 consentId);
    error ConsentAlreadyRevoked(bytes32 consentId);

    constructor() {
        registrar = msg.sender;
    }

    /// @notice Records consent `consentId`, signed by `patient`. `expiresAt`
    /// is in Unix seconds, 0 for no expiry. Reverts with `Unauthorized` for
    /// any sender but the registrar, `InvalidAccess` for access 0 or above 2,
    /// `ConsentAlreadyExists` when the id is taken, and `InvalidSignature`
    /// unless `signature` is the patient's signature of the EIP-712 `Grant`
    /// message with these arguments.
    function grantConsent(
        bytes32 consentId,
        address patient,
        address grantee,
        uint8 access,
        bytes32 scopeHash,
        uint64 expiresAt,
        bytes calldata signature
    ) external {
        if (msg.sender != registrar) revert Unauthorized();
        if (access == 0 || access > MAX_ACCESS) revert InvalidAccess(access);
        if (consents[consentId].grantedBlock != 0) revert ConsentAlreadyExists(consentId);
        bytes32 digest = grantDigest(consentId, patient, grantee, access, scopeHash, expiresAt);
        if (patient == address(0) || recoverSigner(digest, signature) != patient) revert InvalidSignature();

        consents[consentId] = Consent({
            patient: patient,
            grantee: grantee,
            access: access,
            scopeHash: scopeHash,
            expiresAt: expiresAt,
            grantedBlock: block.number,
            revokedBlock: 0
        });
        emit ConsentGranted(consentId, patient, grantee, access, scopeHash, expiresAt);
    }

    /// @notice Revokes consent `consentId`, signed by the patient who granted
    /// it. Reverts with `Unauthorized` for any sender but the registrar,
    /// `UnknownConsent` when no such consent was granted,
    /// `ConsentAlreadyRevoked` on a second revocation, and `InvalidSignature`
    /// unless `signature` is the patient's signature of the EIP-712 `Revoke`
    /// message.
    function revokeConsent(bytes32 consentId, bytes calldata signature) external {
        if (msg.sender != registrar) revert Unauthorized();
        Consent storage consent = consents[consentId];
        if (consent.grantedBlock == 0) revert UnknownConsent(consentId);
        if (consent.revokedBlock != 0) revert ConsentAlreadyRevoked(consentId);
        if (recoverSigner(revokeDigest(consentId, consent.patient), signature) != consent.patient) {
            revert InvalidSignature();
        }

        consent.revokedBlock = block.number;
        emit ConsentRevoked(consentId, consent.patient);
    }

    /// @notice Returns consent `consentId`. `exists` is false (and every other
    /// field zero) when it was never granted; `revokedBlock` is 0 while it
    /// is not revoked.
    function getConsent(bytes32 consentId)
        external
        view
        returns (
            bool exists,
            address patient,
            address grantee,
            uint8 access,
            bytes32 scopeHash,
            uint64 expiresAt,
            uint256 grantedBlock,
            uint256 revokedBlock
        )
    {
        Consent storage consent = consents[consentId];
        return (
            consent.grantedBlock != 0,
            consent.patient,
            consent.grantee,
            consent.access,
            consent.scopeHash,
            consent.expiresAt,
            consent.grantedBlock,
            consent.revokedBlock
        );
    }

    /// @notice Returns whether consent `consentId` is granted, not revoked and
    /// not expired at the current block's timestamp.
    function isActive(bytes32 consentId) external view returns (bool) {
        Consent storage consent = consents[consentId];
        bool unexpired = consent.expiresAt == 0 || block.timestamp < consent.expiresAt;
        return consent.grantedBlock != 0 && consent.revokedBlock == 0 && unexpired;
    }

    /// @notice The EIP-712 domain separator: name "MediTrustAl ConsentRegistry",
    /// version "1", this chain and this contract.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    /// @notice The EIP-712 digest a patient signs to grant a consent.
    function grantDigest(
        bytes32 consentId,
        address patient,
        address grantee,
        uint8 access,
        bytes32 scopeHash,
        uint64 expiresAt
    ) public view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(GRANT_TYPEHASH, consentId, patient, grantee, access, scopeHash, expiresAt));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice The EIP-712 digest a patient signs to revoke a consent.
    function revokeDigest(bytes32 consentId, address patient) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(REVOKE_TYPEHASH, consentId, patient));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @dev Recovers the signer of a 65-byte `r ‖ s ‖ v` signature, or returns
    /// the zero address for a malformed one (wrong length, high `s`, `v`
    /// other than 27 or 28).
    function recoverSigner(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
