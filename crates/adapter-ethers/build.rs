//! Rebuilds the crate when a committed contract artifact changes, because
//! `abigen!` in `src/bindings.rs` reads them at compile time.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../contracts/out/UserRegistry.json");
    println!("cargo:rerun-if-changed=../../contracts/out/MedicalRecordRegistry.json");
    println!("cargo:rerun-if-changed=../../contracts/out/AuditAnchorRegistry.json");
}
