//! Conversions between column values and domain values. A stored value
//! that the domain type rejects becomes [`QueryError::Conversion`] naming
//! the row and column.

use std::fmt::Display;

use meditrustal_crypto::Digest;
use meditrustal_ledger::Address;

use crate::error::QueryError;

/// Reads a 32-byte hash column.
pub(crate) fn digest(
    bytes: &[u8],
    table: &str,
    row: impl Display,
    column: &str,
) -> Result<Digest, QueryError> {
    Digest::from_slice(bytes).map_err(|_| invalid(table, row, column, "is not 32 bytes"))
}

/// Reads an optional 32-byte hash column.
pub(crate) fn optional_digest(
    bytes: Option<&[u8]>,
    table: &str,
    row: impl Display,
    column: &str,
) -> Result<Option<Digest>, QueryError> {
    bytes
        .map(|bytes| digest(bytes, table, row, column))
        .transpose()
}

/// Reads a 20-byte address column.
pub(crate) fn address(
    bytes: &[u8],
    table: &str,
    row: impl Display,
    column: &str,
) -> Result<Address, QueryError> {
    let array: [u8; 20] = bytes
        .try_into()
        .map_err(|_| invalid(table, row, column, "is not 20 bytes"))?;
    Ok(Address::from_bytes(array))
}

/// Converts a block number to `bigint`.
pub(crate) fn block_to_column(block_number: u64) -> Result<i64, QueryError> {
    i64::try_from(block_number).map_err(|_| {
        QueryError::Conversion(format!(
            "block number {block_number} does not fit in bigint"
        ))
    })
}

/// Error for a stored value that its domain type rejects.
pub(crate) fn invalid(table: &str, row: impl Display, column: &str, problem: &str) -> QueryError {
    QueryError::Conversion(format!("{table} row {row}: column {column} {problem}"))
}
