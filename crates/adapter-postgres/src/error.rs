//! Errors of this adapter, and their translation into each port's error.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use meditrustal_audit::AuditStoreError;
use meditrustal_identity::{AuthStoreError, UniqueField, UserStoreError};
use meditrustal_ledger::OutboxError;
use meditrustal_records::{ConsentStoreError, RecordStoreError};

/// Errors from setting up or reaching the database outside a port call.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DatabaseError {
    /// Invalid pool settings. Fix the configuration.
    #[error("invalid database pool configuration: {0}")]
    Config(String),
    /// No connection could be opened, or a query failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A failed migration. The migrations applied before it stay applied.
    #[error("database migration failed: {0}")]
    Migration(String),
}

/// Failure of one unit of work run on a pooled connection.
#[derive(Debug)]
pub(crate) enum QueryError {
    /// No connection: pool timeout, refused connection, closed pool.
    Connection(String),
    /// A failed statement or transaction, with the database's reason.
    Query(DieselError),
    /// A value could not be converted between a row and its domain type.
    Conversion(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connection(message) | Self::Conversion(message) => f.write_str(message),
            Self::Query(error) => write!(f, "query failed: {error}"),
        }
    }
}

impl QueryError {
    /// Name of the constraint a failed statement violated, if any.
    fn violated_constraint(&self, kind: DatabaseErrorKind) -> Option<&str> {
        match self {
            Self::Query(DieselError::DatabaseError(error_kind, info)) if *error_kind == kind => {
                info.constraint_name()
            }
            _ => None,
        }
    }
}

impl From<DieselError> for QueryError {
    fn from(error: DieselError) -> Self {
        Self::Query(error)
    }
}

impl From<QueryError> for DatabaseError {
    fn from(error: QueryError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<QueryError> for UserStoreError {
    fn from(error: QueryError) -> Self {
        match error.violated_constraint(DatabaseErrorKind::UniqueViolation) {
            Some("users_username_key_unique") => Self::AlreadyExists(UniqueField::Username),
            Some("users_email_key_unique") => Self::AlreadyExists(UniqueField::Email),
            _ => Self::Unavailable(error.to_string()),
        }
    }
}

impl From<QueryError> for RecordStoreError {
    fn from(error: QueryError) -> Self {
        if let Some("medical_records_patient_id_fkey") =
            error.violated_constraint(DatabaseErrorKind::ForeignKeyViolation)
        {
            return Self::UnknownPatient;
        }
        match error.violated_constraint(DatabaseErrorKind::UniqueViolation) {
            // The anchor hash commits to the record id, so a taken anchor
            // hash means the same record was inserted before.
            Some("medical_records_pkey" | "medical_records_anchor_hash_unique") => {
                Self::AlreadyExists
            }
            _ => Self::Unavailable(error.to_string()),
        }
    }
}

impl From<QueryError> for AuthStoreError {
    fn from(error: QueryError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<QueryError> for ConsentStoreError {
    fn from(error: QueryError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<QueryError> for OutboxError {
    fn from(error: QueryError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<QueryError> for AuditStoreError {
    fn from(error: QueryError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::DatabaseErrorInformation;

    use super::*;

    struct Violation(&'static str);

    impl DatabaseErrorInformation for Violation {
        fn message(&self) -> &str {
            "violation"
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            Some(self.0)
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn violation(kind: DatabaseErrorKind, constraint: &'static str) -> QueryError {
        QueryError::Query(DieselError::DatabaseError(
            kind,
            Box::new(Violation(constraint)),
        ))
    }

    #[test]
    fn user_unique_violations_map_by_constraint_name() {
        let username = violation(
            DatabaseErrorKind::UniqueViolation,
            "users_username_key_unique",
        );
        let email = violation(DatabaseErrorKind::UniqueViolation, "users_email_key_unique");
        let did = violation(DatabaseErrorKind::UniqueViolation, "users_did_unique");

        assert_eq!(
            UserStoreError::from(username),
            UserStoreError::AlreadyExists(UniqueField::Username)
        );
        assert_eq!(
            UserStoreError::from(email),
            UserStoreError::AlreadyExists(UniqueField::Email)
        );
        assert_eq!(
            UserStoreError::from(did),
            UserStoreError::Unavailable("query failed: violation".into())
        );
    }

    #[test]
    fn record_violations_map_by_constraint_name() {
        let patient = violation(
            DatabaseErrorKind::ForeignKeyViolation,
            "medical_records_patient_id_fkey",
        );
        let id = violation(DatabaseErrorKind::UniqueViolation, "medical_records_pkey");
        let outbox = violation(
            DatabaseErrorKind::CheckViolation,
            "outbox_jobs_target_matches_kind",
        );

        assert_eq!(
            RecordStoreError::from(patient),
            RecordStoreError::UnknownPatient
        );
        assert_eq!(RecordStoreError::from(id), RecordStoreError::AlreadyExists);
        assert_eq!(
            RecordStoreError::from(outbox),
            RecordStoreError::Unavailable("query failed: violation".into())
        );
    }

    #[test]
    fn constraint_name_of_another_kind_is_ignored() {
        let error = violation(DatabaseErrorKind::CheckViolation, "users_email_key_unique");

        assert_eq!(
            UserStoreError::from(error),
            UserStoreError::Unavailable("query failed: violation".into())
        );
    }
}
