//! Who is calling: the `Authorization: Bearer <token>` extractor and the form a
//! session token is stored in, and the client address a request came from.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use coffer_core::{ErrorCode, b64};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::Session;

/// The stored form of a session token: SHA-256 of its bytes. `None` if the text
/// is not a token this accelerator could have issued.
pub fn token_hash(token: &str) -> Option<[u8; 32]> {
    let bytes: [u8; 32] = b64::decode_array(token)?;
    Some(Sha256::digest(bytes).into())
}

/// A request made with a live session (`Authorization: Bearer <token>`).
#[derive(Clone)]
pub struct Authed {
    /// The session and its user.
    pub session: Session,
    /// The token's hash, to revoke or keep this very session.
    pub token_hash: [u8; 32],
}

impl Authed {
    /// Checks a bearer token against the records.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let hash = token_hash(token).ok_or_else(ApiError::unauthorized)?;
        let now = now_ms();
        let session = state.records.session(&hash, now).await?.ok_or_else(ApiError::unauthorized)?;
        Ok(Authed { session, token_hash: hash })
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Found already where the body was budgeted (crate::budget).
        if let Some(authed) = parts.extensions.get::<Authed>() {
            return Ok(authed.clone());
        }
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "sign in first: send the session token as `Authorization: Bearer <token>`",
            )
        })?;
        Authed::from_token(state, token.trim()).await
    }
}

/// The address a request came from: the peer the accept loop saw or, when that
/// peer is a trusted proxy ([`crate::config::Limits::trusted_proxies`]), the client its
/// `X-Forwarded-For` names — the rightmost address in it that is not itself a
/// trusted proxy, since each proxy appends the one it heard from and a client can
/// write anything to the left. `None` for a request that did not come through the
/// accept loop, such as one a test hands the router.
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    /// Where a request from `peer` with these headers came from.
    pub fn of(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
        if !trusted.contains(&peer) {
            return peer;
        }
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).map(str::trim).collect();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(address) if trusted.contains(&address) => continue,
                Ok(address) => return address,
                // Garbage where an address should be: stop believing the header there.
                Err(_) => return peer,
            }
        }
        peer
    }
}

impl axum::extract::FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        let trusted = &state.config.limits.trusted_proxies;
        Ok(ClientAddress(peer.map(|peer| ClientAddress::of(peer, &parts.headers, trusted))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (proxy, inner, client) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("203.0.113.7"));
        let headers = |values: &[&str]| {
            let mut map = axum::http::HeaderMap::new();
            for v in values {
                map.append("x-forwarded-for", v.parse().unwrap());
            }
            map
        };
        let trusted = [proxy, inner];
        // The client wrote a lie on the left; each proxy appended what it heard from.
        let forwarded = headers(&["198.51.100.1, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(ClientAddress::of(proxy, &forwarded, &trusted), client);
        assert_eq!(ClientAddress::of(client, &forwarded, &trusted), client, "an untrusted peer is itself");
        assert_eq!(ClientAddress::of(proxy, &headers(&[]), &trusted), proxy, "no header: the proxy");
        assert_eq!(ClientAddress::of(proxy, &headers(&["junk"]), &trusted), proxy, "garbage: the proxy");
        assert_eq!(ClientAddress::of(proxy, &headers(&["10.0.0.2"]), &trusted), proxy, "only proxies: the proxy");
        assert_eq!(ClientAddress::of(proxy, &forwarded, &[]), proxy, "no trusted proxies: the header is ignored");
    }
}
