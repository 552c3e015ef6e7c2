use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use meditrustal_identity::{Claims, IssuedToken, Role, SessionId, TokenError, TokenIssuer, UserId};
use pasetors::claims::{Claims as PasetoClaims, ClaimsValidationRules};
use pasetors::footer::Footer;
use pasetors::token::UntrustedToken;
use pasetors::version4::V4;
use pasetors::Public;
use secrecy::SecretString;
use uuid::Uuid;

use crate::error::TokenSetupError;
use crate::keys::{SigningKey, VerifyingKey};

/// Value of the `iss` claim in every token.
pub const ISSUER: &str = "meditrustal";

/// Default value of the `aud` claim.
pub const DEFAULT_AUDIENCE: &str = "meditrustal-api";

/// Default token lifetime, in seconds (15 minutes).
pub const DEFAULT_LIFETIME_SECS: u64 = 900;

/// Maximum configurable token lifetime, in seconds (one day). A bearer
/// token cannot be revoked before it expires, so its lifetime bounds how
/// long a leaked token stays usable.
pub const MAX_LIFETIME_SECS: u64 = 86_400;

/// Maximum audience length, in bytes.
const MAX_AUDIENCE_BYTES: usize = 256;

/// Maximum token length that is parsed at all, in bytes. Issued tokens stay
/// under 1 KiB even with the longest audience and key id, so this only
/// stops oversized input before it is decoded.
const MAX_TOKEN_BYTES: usize = 4096;

/// Name of the custom payload claim that carries the role.
const ROLE_CLAIM: &str = "role";

/// Name of the custom payload claim that carries the session id.
const SESSION_CLAIM: &str = "sid";

/// Name of the footer claim that carries the key id.
const KEY_ID_CLAIM: &str = "kid";

/// Maximum footer length that is parsed, in bytes. Issued footers are
/// `{"kid":"..."}` with a key id of at most 64 characters, 73 bytes.
const MAX_FOOTER_BYTES: usize = 256;

/// Audience and lifetime of access tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenConfig {
    /// Value of the `aud` claim written and required: 1 to 256 bytes.
    pub audience: String,
    /// Lifetime of issued tokens, in seconds: 1 to [`MAX_LIFETIME_SECS`].
    /// Verification also rejects tokens whose `exp` lies more than this
    /// after their `iat`.
    pub lifetime_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            audience: DEFAULT_AUDIENCE.to_owned(),
            lifetime_secs: DEFAULT_LIFETIME_SECS,
        }
    }
}

impl TokenConfig {
    fn validate(&self) -> Result<(), TokenSetupError> {
        if self.audience.is_empty() || self.audience.len() > MAX_AUDIENCE_BYTES {
            return Err(TokenSetupError::InvalidAudience);
        }
        if self.lifetime_secs == 0 || self.lifetime_secs > MAX_LIFETIME_SECS {
            return Err(TokenSetupError::InvalidLifetime {
                lifetime_secs: self.lifetime_secs,
                max_secs: MAX_LIFETIME_SECS,
            });
        }
        Ok(())
    }

    fn max_lifetime(&self) -> TimeDelta {
        // validate() bounds lifetime_secs to MAX_LIFETIME_SECS, far below i64::MAX.
        TimeDelta::seconds(i64::try_from(self.lifetime_secs).unwrap_or(i64::MAX))
    }
}

/// Verifies v4.public access tokens with public keys only, so a service
/// given a `PasetoVerifier` can check tokens but cannot mint them.
pub struct PasetoVerifier {
    keys: HashMap<String, VerifyingKey>,
    rules: ClaimsValidationRules,
    max_lifetime: TimeDelta,
}

impl PasetoVerifier {
    /// Builds a verifier that accepts tokens signed by any of `keys`,
    /// chosen by the token's `kid`. Errors: [`TokenSetupError::NoVerifyingKeys`],
    /// [`TokenSetupError::DuplicateKeyId`], and the [`TokenConfig`] errors
    /// [`TokenSetupError::InvalidAudience`] and [`TokenSetupError::InvalidLifetime`].
    pub fn new(
        keys: impl IntoIterator<Item = VerifyingKey>,
        config: &TokenConfig,
    ) -> Result<Self, TokenSetupError> {
        config.validate()?;

        let mut by_kid = HashMap::new();
        for key in keys {
            let kid = key.kid().as_str().to_owned();
            if by_kid.contains_key(&kid) {
                return Err(TokenSetupError::DuplicateKeyId(kid));
            }
            by_kid.insert(kid, key);
        }
        if by_kid.is_empty() {
            return Err(TokenSetupError::NoVerifyingKeys);
        }

        // `new()` requires `exp`, `nbf` and `iat`, and checks all three
        // against the current time with no leeway.
        let mut rules = ClaimsValidationRules::new();
        rules.validate_issuer_with(ISSUER);
        rules.validate_audience_with(&config.audience);

        Ok(Self {
            keys: by_kid,
            rules,
            max_lifetime: config.max_lifetime(),
        })
    }

    /// Verifies a token and returns its claims. Every failure is
    /// [`TokenError::Invalid`], whichever check failed.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }

        // Parsing as `UntrustedToken<Public, V4>` rejects any header other
        // than `v4.public.`, so v2, v3 and local tokens stop here.
        let untrusted =
            UntrustedToken::<Public, V4>::try_from(token).map_err(|_| TokenError::Invalid)?;
        let key = self.key_for(&untrusted).ok_or(TokenError::Invalid)?;

        let trusted = pasetors::public::verify(key.public(), &untrusted, &self.rules, None, None)
            .map_err(|_| TokenError::Invalid)?;
        let payload = trusted.payload_claims().ok_or(TokenError::Invalid)?;
        self.read_claims(payload).ok_or(TokenError::Invalid)
    }

    /// Picks the verification key named by the footer's `kid`. The footer
    /// is still unverified here, but the signature covers it, so a forged
    /// `kid` only selects a key that then fails to verify the signature.
    ///
    /// The footer is parsed with serde_json directly: pasetors'
    /// `Footer::parse_bytes` compiles a regular expression on every call,
    /// which cost more CPU than the Ed25519 check itself. The length cap
    /// takes the place of its limit on the number of keys.
    fn key_for(&self, untrusted: &UntrustedToken<Public, V4>) -> Option<&VerifyingKey> {
        let footer = untrusted.untrusted_footer();
        if footer.len() > MAX_FOOTER_BYTES {
            return None;
        }
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(footer).ok()?;
        let kid = claims.get(KEY_ID_CLAIM)?.as_str()?;
        self.keys.get(kid)
    }

    /// Converts verified registered claims into domain claims, rejecting
    /// values this service never issues.
    fn read_claims(&self, payload: &PasetoClaims) -> Option<Claims> {
        let user_id = parse_user_id(string_claim(payload, "sub")?)?;
        let role = parse_role(string_claim(payload, ROLE_CLAIM)?)?;
        let session_id = SessionId(parse_uuid(string_claim(payload, SESSION_CLAIM)?)?);
        string_claim(payload, "jti")?;
        let issued_at = parse_time(string_claim(payload, "iat")?)?;
        let expires_at = parse_time(string_claim(payload, "exp")?)?;

        if expires_at - issued_at > self.max_lifetime {
            return None;
        }
        Some(Claims {
            user_id,
            role,
            session_id,
            issued_at,
            expires_at,
        })
    }
}

impl fmt::Debug for PasetoVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("PasetoVerifier")
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

/// Issues PASETO v4.public access tokens signed with Ed25519 and verifies
/// them against the current key and any previous public keys.
pub struct PasetoTokens {
    signing: SigningKey,
    footer: Footer,
    audience: String,
    lifetime_secs: u64,
    verifier: PasetoVerifier,
}

impl PasetoTokens {
    /// Builds an issuer that signs with `signing` and verifies tokens signed
    /// by it or by any of the `previous` keys (keys retired by a rotation
    /// whose tokens may not have expired yet). Errors: those of
    /// [`PasetoVerifier::new`].
    pub fn new(
        signing: SigningKey,
        previous: impl IntoIterator<Item = VerifyingKey>,
        config: TokenConfig,
    ) -> Result<Self, TokenSetupError> {
        let keys = std::iter::once(signing.verifying_key()).chain(previous);
        let verifier = PasetoVerifier::new(keys, &config)?;

        // pasetors reserves `kid` in `Footer::add_additional`, and its
        // `key_id` setter needs the `paserk` feature, so the footer is parsed
        // from JSON. Key id rules keep the id free of characters JSON escapes.
        let mut footer = Footer::new();
        let footer_json = serde_json::json!({ KEY_ID_CLAIM: signing.kid().as_str() });
        footer
            .parse_string(&footer_json.to_string())
            .map_err(|error| TokenSetupError::Key(format!("token footer: {error}")))?;

        Ok(Self {
            signing,
            footer,
            audience: config.audience,
            lifetime_secs: config.lifetime_secs,
            verifier,
        })
    }

    /// Returns the verifier this issuer uses, which contains only public
    /// keys.
    pub fn verifier(&self) -> &PasetoVerifier {
        &self.verifier
    }

    fn build_payload(
        &self,
        claims: &Claims,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<PasetoClaims, pasetors::errors::Error> {
        let issued_at = format_time(issued_at);

        // `new()` also sets `iat`, `nbf` and `exp` from the clock. All three
        // are replaced below with the caller's times.
        let mut payload = PasetoClaims::new()?;
        payload.issuer(ISSUER)?;
        payload.audience(&self.audience)?;
        payload.subject(&claims.user_id.to_string())?;
        payload.add_additional(ROLE_CLAIM, claims.role.as_str())?;
        payload.add_additional(SESSION_CLAIM, claims.session_id.to_string())?;
        payload.issued_at(&issued_at)?;
        payload.not_before(&issued_at)?;
        payload.expiration(&format_time(expires_at))?;
        payload.token_identifier(&random_token_id()?)?;
        Ok(payload)
    }
}

impl TokenIssuer for PasetoTokens {
    /// Signs `claims` with `nbf` equal to `iat`. Times are truncated to
    /// whole seconds, so verification returns them truncated.
    fn issue(&self, claims: &Claims) -> Result<IssuedToken, TokenError> {
        let issued_at = claims.issued_at.trunc_subsecs(0);
        let expires_at = claims.expires_at.trunc_subsecs(0);
        let lifetime = expires_at - issued_at;
        if lifetime <= TimeDelta::zero() || lifetime > self.verifier.max_lifetime {
            return Err(TokenError::Issue(format!(
                "token lifetime {} s is outside 1 to {} s",
                lifetime.num_seconds(),
                self.lifetime_secs
            )));
        }

        let payload = self
            .build_payload(claims, issued_at, expires_at)
            .map_err(|error| TokenError::Issue(format!("token payload: {error}")))?;
        let token =
            pasetors::public::sign(self.signing.secret(), &payload, Some(&self.footer), None)
                .map_err(|error| TokenError::Issue(format!("token signing: {error}")))?;

        Ok(IssuedToken {
            token: SecretString::from(token),
            expires_in: lifetime.num_seconds().unsigned_abs(),
        })
    }

    fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verifier.verify(token)
    }

    fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }
}

impl fmt::Debug for PasetoTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasetoTokens")
            .field("signing", &self.signing)
            .field("audience", &self.audience)
            .field("lifetime_secs", &self.lifetime_secs)
            .field("verifier", &self.verifier)
            .finish()
    }
}

fn string_claim<'a>(payload: &'a PasetoClaims, name: &str) -> Option<&'a str> {
    payload.get_claim(name)?.as_str()
}

/// Accepts only the lowercase hyphenated form that `UserId` displays as.
fn parse_user_id(text: &str) -> Option<UserId> {
    parse_uuid(text).map(UserId)
}

/// Accepts only the lowercase hyphenated UUID form that ids display as.
fn parse_uuid(text: &str) -> Option<Uuid> {
    let id = Uuid::try_parse(text).ok()?;
    (id.hyphenated().to_string() == text).then_some(id)
}

/// Accepts only the uppercase names that `Role::as_str` returns.
fn parse_role(text: &str) -> Option<Role> {
    Role::parse(text).filter(|role| role.as_str() == text)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// Formats a time as RFC 3339 in UTC without fractional seconds. pasetors
/// 0.8 formats its own times the same way, citing the PASETO spec's advice
/// to omit fractions.
fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Draws a random UUID for the `jti` claim. It uses `getrandom` directly so
/// that a failing random source is an error, not a panic.
fn random_token_id() -> Result<String, pasetors::errors::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| pasetors::errors::Error::Csprng)?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

#[cfg(test)]
mod tests;
