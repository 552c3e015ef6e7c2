//! Operator commands that change accounts outside the API: `meditrustal
//! admin create` and `meditrustal admin promote`. Admin accounts are made
//! only here, never over HTTP.

use std::io::BufRead;
use std::sync::Arc;

use anyhow::Context;
use meditrustal_adapter_postgres::{PgSessionStore, PgUserAdminStore};
use meditrustal_identity::{AdminService, Registration, User};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::app;
use crate::config::Settings;
use crate::keys::Keys;

/// Environment variable that `meditrustal admin create` reads the new
/// admin's password from; without it, the first line of standard input is
/// read.
pub const ADMIN_PASSWORD_ENV: &str = "MEDITRUSTAL_ADMIN_PASSWORD";

/// The fields of a new admin account.
pub struct NewAdmin {
    /// Username, 3 to 32 characters.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Optional display name.
    pub full_name: Option<String>,
    /// Password, 8 to 72 bytes.
    pub password: SecretString,
}

/// Creates an admin account with its custodial key and chain registration
/// job, under the same validation as a sign-up. The running server's outbox
/// worker registers it on chain.
pub async fn create_admin(
    settings: &Settings,
    keys: Keys,
    admin: NewAdmin,
) -> anyhow::Result<User> {
    let pool = app::pool(settings)?;
    let identity =
        app::identity_service(settings, &keys.signing_key, pool, Arc::new(keys.master)).await?;
    let registration = Registration {
        username: admin.username,
        email: admin.email,
        password: admin.password,
        full_name: admin.full_name,
        role: "ADMIN".to_owned(),
    };

    let user = identity
        .create_admin(registration)
        .await
        .context("cannot create the admin account")?;
    tracing::info!(user.id = %user.id, "admin account created");
    Ok(user)
}

/// Makes the existing user `username` an admin.
///
/// NOTE: the user's `UserRegistry` entry on chain keeps the role it was
/// registered with, because the contract has no role update.
pub async fn promote(settings: &Settings, username: &str) -> anyhow::Result<User> {
    let pool = app::pool(settings)?;
    let admin = AdminService::new(
        Arc::new(PgUserAdminStore::new(pool.clone())),
        Arc::new(PgSessionStore::new(pool)),
    );

    admin
        .promote(username)
        .await
        .with_context(|| format!("cannot promote user {username:?}"))
}

/// Reads the new admin's password from [`ADMIN_PASSWORD_ENV`], or else from
/// the first line of `input` without its line ending.
pub fn read_password(input: &mut impl BufRead) -> anyhow::Result<SecretString> {
    password_from(std::env::var(ADMIN_PASSWORD_ENV).ok(), input)
}

fn password_from(
    from_env: Option<String>,
    input: &mut impl BufRead,
) -> anyhow::Result<SecretString> {
    if let Some(password) = from_env {
        return Ok(SecretString::from(password));
    }
    let mut line = Zeroizing::new(String::new());
    input
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!(
            "no password given: set {ADMIN_PASSWORD_ENV} or write the password on standard input"
        );
    }
    Ok(SecretString::from(password.to_owned()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn password_comes_from_first_line_of_input() {
        let mut input = "correct horse battery\r\nsecond line\n".as_bytes();

        let password = password_from(None, &mut input).unwrap();

        assert_eq!(password.expose_secret(), "correct horse battery");
    }

    #[test]
    fn environment_password_wins_over_input() {
        let mut input = "from stdin\n".as_bytes();

        let password = password_from(Some("from env".into()), &mut input).unwrap();

        assert_eq!(password.expose_secret(), "from env");
    }

    #[test]
    fn empty_input_is_rejected() {
        let mut input = "\n".as_bytes();

        let error = password_from(None, &mut input).unwrap_err();

        assert_eq!(
            error.to_string(),
            "no password given: set MEDITRUSTAL_ADMIN_PASSWORD or write the password on standard input"
        );
    }
}
