// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title MedicalRecordRegistry
/// @notice Anchors medical record hashes. Only the registrar (the deployer)
/// writes; anyone reads. Record content never reaches the chain, only a hash
/// that commits to it.
contract MedicalRecordRegistry {
    struct Record {
        string patientDid;
        string recordType;
        uint256 timestamp;
        uint256 blockNumber;
    }

    /// @notice The only account allowed to add records. A storage variable
    /// rather than `immutable`, so the runtime code on chain equals the
    /// compiler's `deployedBytecode` and a deployment can be checked against
    /// the committed artifact by code hash.
    address public registrar;

    mapping(bytes32 => Record) private records;

    event RecordAdded(bytes32 indexed recordHash, string patientDid, string recordType, uint256 timestamp);

    error Unauthorized();
    error RecordAlreadyExists(bytes32 recordHash);

    constructor() {
        registrar = msg.sender;
    }

    /// @notice Anchors `recordHash` with the patient's DID, the record type
    /// and the record's creation time in Unix seconds. Reverts with
    /// `Unauthorized` for any sender but the registrar and
    /// `RecordAlreadyExists` when the hash is already anchored.
    function addRecord(bytes32 recordHash, string calldata patientDid, string calldata recordType, uint256 timestamp)
        external
    {
        if (msg.sender != registrar) revert Unauthorized();
        if (records[recordHash].blockNumber != 0) revert RecordAlreadyExists(recordHash);

        records[recordHash] =
            Record({patientDid: patientDid, recordType: recordType, timestamp: timestamp, blockNumber: block.number});
        emit RecordAdded(recordHash, patientDid, recordType, timestamp);
    }

    /// @notice Returns the entry anchored under `recordHash`. `exists` is
    /// false (and every other field zero or empty) when none is.
    function getRecord(bytes32 recordHash)
        external
        view
        returns (bool exists, string memory patientDid, string memory recordType, uint256 timestamp, uint256 blockNumber)
    {
        Record storage record = records[recordHash];
        return (record.blockNumber != 0, record.patientDid, record.recordType, record.timestamp, record.blockNumber);
    }
}
