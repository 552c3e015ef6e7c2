//! Contract bindings generated from the committed artifacts in
//! `contracts/out/`, which `node contracts/compile.js` writes. The paths are
//! relative to this crate's `CARGO_MANIFEST_DIR`.

use ethers::contract::abigen;

abigen!(UserRegistry, "../../contracts/out/UserRegistry.json");
abigen!(
    MedicalRecordRegistry,
    "../../contracts/out/MedicalRecordRegistry.json"
);
abigen!(ConsentRegistry, "../../contracts/out/ConsentRegistry.json");
abigen!(
    AuditAnchorRegistry,
    "../../contracts/out/AuditAnchorRegistry.json"
);
abigen!(
    BatchAnchorRegistry,
    "../../contracts/out/BatchAnchorRegistry.json"
);

/// The event-only batch anchor, a gas baseline that only tests deploy. Its
/// own module, because its call and event names repeat
/// `BatchAnchorRegistry`'s.
pub(crate) mod baseline {
    use ethers::contract::abigen;

    abigen!(
        EventOnlyBatchAnchor,
        "../../contracts/out/EventOnlyBatchAnchor.json"
    );
}
