//! Rules for new passwords, applied at registration, password change and
//! password reset.
//!
//! bcrypt reads at most 72 bytes and, in the `bcrypt` crate 0.19, repeats
//! the key cyclically with a NUL after it. So a password over 72 bytes
//! would match the hash of its prefix, and one with a NUL inside (`"a\0a"`)
//! can match the hash of a shorter one (`"a"`). Rejecting both keeps the
//! rule that two different passwords never verify against one hash.

use secrecy::{ExposeSecret, SecretString};

use crate::error::IdentityError;

/// Minimum length in characters.
pub const MIN_CHARS: usize = 8;

/// Maximum length in bytes of UTF-8 (bcrypt's input limit).
pub const MAX_BYTES: usize = 72;

/// Passwords at the top of published breach-frequency lists that meet the
/// length rule, compared without case. A short list: it stops the guesses
/// an online attacker tries first, not a dictionary attack.
const COMMON_PASSWORDS: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "87654321",
    "password",
    "password1",
    "password123",
    "passw0rd",
    "qwertyuiop",
    "qwerty123",
    "1q2w3e4r",
    "1qaz2wsx",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "abc12345",
    "abcd1234",
    "admin123",
    "letmein1",
    "trustno1",
    "starwars",
    "whatever",
    "superman",
    "meditrustal",
];

/// Checks the rules that need no account context: length in characters
/// and bytes, no control characters, not one repeated character, not a
/// common password. Errors: [`IdentityError::Invalid`] on `field`.
pub fn check_rules(password: &SecretString, field: &'static str) -> Result<(), IdentityError> {
    let text = password.expose_secret();
    let invalid = |message: String| IdentityError::Invalid { field, message };

    if text.chars().count() < MIN_CHARS {
        return Err(invalid(format!("use at least {MIN_CHARS} characters")));
    }
    if text.len() > MAX_BYTES {
        return Err(invalid(format!("use at most {MAX_BYTES} bytes of UTF-8")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(
            "remove control characters such as NUL or tab".into(),
        ));
    }
    let mut chars = text.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(invalid("use more than one distinct character".into()));
    }
    let lowercase = text.to_lowercase();
    if COMMON_PASSWORDS.contains(&lowercase.as_str()) {
        return Err(invalid(
            "this password is among the most common ones; choose another".into(),
        ));
    }
    Ok(())
}

/// Checks that a new password does not contain the username or the local
/// part of the email address (either of at least 3 characters), compared
/// without case. Errors: [`IdentityError::Invalid`] on `field`.
pub fn check_context(
    password: &SecretString,
    field: &'static str,
    username: &str,
    email: &str,
) -> Result<(), IdentityError> {
    let text = password.expose_secret().to_lowercase();
    let local_part = email.split('@').next().unwrap_or_default();
    for (part, name) in [(username, "username"), (local_part, "email address")] {
        let part = part.to_lowercase();
        if part.chars().count() >= 3 && text.contains(&part) {
            return Err(IdentityError::Invalid {
                field,
                message: format!("do not include your {name}"),
            });
        }
    }
    Ok(())
}

/// Whether a password typed at login can be checked at all: at most
/// [`MAX_BYTES`] bytes and no NUL. Anything else is wrong by definition,
/// because no accepted password looks like it.
pub fn is_verifiable(password: &SecretString) -> bool {
    let text = password.expose_secret();
    text.len() <= MAX_BYTES && !text.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(password: &str) -> Option<String> {
        match check_rules(&SecretString::from(password), "password") {
            Ok(()) => None,
            Err(IdentityError::Invalid { field, message }) => {
                assert_eq!(field, "password");
                Some(message)
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn accepts_reasonable_passwords() {
        for password in [
            "correct horse battery",
            "Tr0ub4dor&3",
            &"\u{00e9}t".repeat(24),
            "\u{00e9}t\u{00e9} \u{00e0} Paris",
        ] {
            assert_eq!(message(password), None, "{password:?}");
        }
    }

    #[test]
    fn length_counts_characters_then_bytes() {
        assert_eq!(
            message("\u{00e9}t\u{00e9}abc").as_deref(),
            Some("use at least 8 characters")
        );
        assert_eq!(
            message(&"\u{00e9}".repeat(37)).as_deref(),
            Some("use at most 72 bytes of UTF-8")
        );
        assert_eq!(message(&"ab".repeat(36)), None);
    }

    #[test]
    fn rejects_control_characters_including_nul() {
        for password in ["abc\0defgh", "abcd\tefgh", "abcdefg\n"] {
            assert_eq!(
                message(password).as_deref(),
                Some("remove control characters such as NUL or tab"),
                "{password:?}"
            );
        }
    }

    #[test]
    fn rejects_repeated_and_common_passwords() {
        assert_eq!(
            message("aaaaaaaaaa").as_deref(),
            Some("use more than one distinct character")
        );
        for password in ["password", "PassWord1", "12345678", "qwertyuiop"] {
            assert_eq!(
                message(password).as_deref(),
                Some("this password is among the most common ones; choose another"),
                "{password:?}"
            );
        }
    }

    #[test]
    fn context_rejects_username_and_email_local_part() {
        let check = |password: &str| {
            check_context(
                &SecretString::from(password),
                "new_password",
                "Alice_01",
                "alice.w@example.org",
            )
        };

        assert_eq!(
            check("my alice_01 secret"),
            Err(IdentityError::Invalid {
                field: "new_password",
                message: "do not include your username".into()
            })
        );
        assert_eq!(
            check("xxALICE.Wxx"),
            Err(IdentityError::Invalid {
                field: "new_password",
                message: "do not include your email address".into()
            })
        );
        assert_eq!(check("correct horse battery"), Ok(()));
    }

    #[test]
    fn only_short_nul_free_passwords_are_verifiable() {
        assert!(is_verifiable(&SecretString::from("x".repeat(72))));
        assert!(!is_verifiable(&SecretString::from("x".repeat(73))));
        assert!(!is_verifiable(&SecretString::from("abc\0abc")));
    }
}
