//! Tells Cargo to rebuild when a migration changes, and exports a hash of
//! the migration files as `MEDITRUSTAL_MIGRATIONS_HASH`.
//!
//! `embed_migrations!` reads the directory at compile time but does not
//! register it with Cargo, so without this a new migration folder would
//! not be embedded until some source file changed. The hash names the test
//! template database, so a changed migration gets a new template.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

const MIGRATIONS_DIR: &str = "../../migrations";

fn main() -> Result<(), Box<dyn Error>> {
    // A directory makes Cargo rescan everything under it on each build.
    println!("cargo:rerun-if-changed={MIGRATIONS_DIR}");

    let mut files = Vec::new();
    collect_files(Path::new(MIGRATIONS_DIR), &mut files)?;
    files.sort();

    let mut hash = Fnv1a64::new();
    for path in &files {
        let relative = path.strip_prefix(MIGRATIONS_DIR)?;
        hash.write(relative.to_string_lossy().as_bytes());
        hash.write(&[0]);
        hash.write(&fs::read(path)?);
        hash.write(&[0]);
    }
    println!(
        "cargo:rustc-env=MEDITRUSTAL_MIGRATIONS_HASH={:016x}",
        hash.finish()
    );
    Ok(())
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// FNV-1a, 64-bit: stable across Rust releases, unlike `DefaultHasher`.
/// It only has to tell migration sets apart, not resist attackers.
struct Fnv1a64(u64);

impl Fnv1a64 {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
