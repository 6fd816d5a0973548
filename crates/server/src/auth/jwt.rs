//! Access tokens: HS256 JWTs that live 15 minutes and name their login session (`sid`), so
//! that revoking the session ends them too.
//!
//! WebSocket tickets: HS256 JWTs signed with the same secret but with their own audience
//! (`<audience>-ws`), so that neither kind is ever accepted as the other. A ticket lives
//! [`TICKET_TTL_SECS`], names the conversation it opens and the session or API key it was
//! asked with; browsers put it in the WebSocket URL, where a long-lived token must not go.

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

/// How long a WebSocket ticket may be redeemed.
pub const TICKET_TTL_SECS: u64 = 30;

/// Clock skew tolerated on `exp`, for access tokens and tickets alike.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct TicketClaims {
    /// The user.
    sub: Uuid,
    /// The login session the ticket was asked with (absent when asked with an API key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    /// The API key the ticket was asked with (absent when asked with a session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<Uuid>,
    /// The conversation the ticket opens.
    cid: Uuid,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: Uuid,
}

/// What a ticket was asked with, to be checked again when it is redeemed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketSource {
    Session(Uuid),
    ApiKey(Uuid),
}

/// A verified WebSocket ticket.
#[derive(Debug)]
pub struct Ticket {
    pub user: Uuid,
    pub source: TicketSource,
    pub conversation: Uuid,
    /// Unique per ticket: what makes it single-use.
    pub jti: Uuid,
    /// Unix time after which the ticket is refused anyway (expiry plus leeway): how long its
    /// `jti` must be remembered.
    pub refused_after: i64,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ticket_validation: Validation,
    issuer: String,
    audience: String,
    ticket_audience: String,
    ttl_secs: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

impl JwtKeys {
    pub fn new(secret: &[u8], config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let ticket_audience = format!("{}-ws", config.audience);
        let mut ticket_validation = validation.clone();
        ticket_validation.set_audience(&[&ticket_audience]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ticket_validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ticket_audience,
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

    /// A WebSocket ticket for `conversation`, valid [`TICKET_TTL_SECS`].
    pub fn issue_ticket(
        &self,
        user_id: Uuid,
        source: TicketSource,
        conversation: Uuid,
    ) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let (sid, key) = match source {
            TicketSource::Session(id) => (Some(id), None),
            TicketSource::ApiKey(id) => (None, Some(id)),
        };
        let claims = TicketClaims {
            sub: user_id,
            sid,
            key,
            cid: conversation,
            iss: self.issuer.clone(),
            aud: self.ticket_audience.clone(),
            iat: now,
            exp: now + i64::try_from(TICKET_TTL_SECS)?,
            jti: Uuid::now_v7(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks a ticket like an access token, against the tickets' audience. Whether it was
    /// used already is for the caller to know.
    pub fn verify_ticket(&self, token: &str) -> Result<Ticket, TokenError> {
        let claims =
            jsonwebtoken::decode::<TicketClaims>(token, &self.decoding, &self.ticket_validation)
                .map(|data| data.claims)
                .map_err(|err| match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                })?;
        let source = match (claims.sid, claims.key) {
            (Some(id), None) => TicketSource::Session(id),
            (None, Some(id)) => TicketSource::ApiKey(id),
            _ => return Err(TokenError::Invalid),
        };
        Ok(Ticket {
            user: claims.sub,
            source,
            conversation: claims.cid,
            jti: claims.jti,
            refused_after: claims.exp.saturating_add(LEEWAY_SECS as i64),
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

    #[test]
    fn a_ticket_names_user_source_and_conversation_and_lives_30_seconds() -> anyhow::Result<()> {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let (user, key, conversation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let before = Utc::now().timestamp();
        let ticket =
            k.verify_ticket(&k.issue_ticket(user, TicketSource::ApiKey(key), conversation)?)?;
        assert_eq!(
            (ticket.user, ticket.source, ticket.conversation),
            (user, TicketSource::ApiKey(key), conversation)
        );
        let lifetime = ticket.refused_after - before - LEEWAY_SECS as i64;
        assert!((29..=30).contains(&lifetime), "{lifetime}");
        Ok(())
    }

    #[test]
    fn tickets_and_access_tokens_are_never_taken_for_each_other() -> anyhow::Result<()> {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let access = k.issue(user, session)?;
        let ticket = k.issue_ticket(user, TicketSource::Session(session), Uuid::now_v7())?;
        assert_eq!(k.verify_ticket(&access).err(), Some(TokenError::Invalid));
        assert_eq!(k.verify(&ticket).err(), Some(TokenError::Invalid));
        Ok(())
    }
}
