//! Access tokens: HS256 JWTs that live 15 minutes and name their login session (`sid`), so
//! that revoking the session ends them too.

use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// The login session the token was issued for.
    pub sid: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token.
    pub jti: Uuid,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

impl JwtKeys {
    pub fn new(secret: &[u8], config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl_secs: config.access_token_ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + i64::try_from(self.ttl_secs)?,
            jti: Uuid::now_v7(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn keys(secret: &[u8]) -> JwtKeys {
        JwtKeys::new(secret, &Config::default().auth)
    }

    #[test]
    fn an_issued_token_verifies_and_names_user_and_session() -> anyhow::Result<()> {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let claims = k.verify(&k.issue(user, session)?)?;
        assert_eq!((claims.sub, claims.sid), (user, session));
        assert_eq!(claims.exp - claims.iat, 900);
        Ok(())
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() -> anyhow::Result<()> {
        let token = keys(b"0123456789abcdef0123456789abcdef").issue(Uuid::nil(), Uuid::nil())?;
        let other = keys(b"fedcba9876543210fedcba9876543210");
        assert_eq!(other.verify(&token).err(), Some(TokenError::Invalid));
        Ok(())
    }
}
