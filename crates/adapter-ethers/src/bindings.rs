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
