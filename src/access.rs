//! Per-route access control: client networks (`allow`/`deny`, answered 403) and HTTP Basic
//! authentication against an htpasswd file (`basic_auth`, answered 401). Checked in
//! `request_filter` right after routing (networks) and after rate limits (passwords, so a
//! password guesser spends its bucket first), before the cache and any backend.
//!
//! Passwords are checked with the `bcrypt` and `argon2` crates, on tokio's blocking pool: a
//! bcrypt check takes milliseconds, which would stall every connection of a pingora worker
//! thread. At most [`CONCURRENT_CHECKS`] run at once per route; a result is remembered for
//! [`REMEMBER`] by the exact credentials, so a client sending the same header on every
//! request pays one check, not one per request. An unknown user costs a check against a
//! dummy hash, so the timing does not tell which users exist.

use crate::config::{AccessConfig, BasicAuthConfig, PasswordHash};
use crate::metrics::Metrics;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Password checks running at once, per route.
pub const CONCURRENT_CHECKS: usize = 4;
/// Password checks one client address may have waiting or running at once, per route;
/// beyond, its requests get 429 at once, so a guessing flood waits behind itself and not
/// in front of other users.
pub const CHECKS_PER_CLIENT: u32 = 4;
/// How long a checked credential's result is remembered.
pub const REMEMBER: Duration = Duration::from_secs(60);
/// Credentials longer than this are checked every time, not remembered (a memory bound).
const REMEMBER_MAX_LEN: usize = 512;

crate::label_set! {
    /// The `decision` label of `brace_access_decisions_total`.
    pub enum Decision {
        Allowed => "allowed",
        /// The client's address is denied, or not allowed: 403.
        Denied => "denied",
        /// Missing or wrong credentials: 401.
        Unauthorized => "unauthorized",
        /// Too many password checks waiting from this client address: 429.
        Throttled => "throttled",
    }
}

/// What a request's credentials come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    Allowed,
    /// Missing or wrong: 401.
    Refused,
    /// Not checked: this client address has [`CHECKS_PER_CLIENT`] checks waiting: 429.
    Throttled,
}

/// A route's access rules, built with the snapshot.
pub struct RouteAccess {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    basic: Option<Basic>,
    decisions: crate::metrics::ByLabel<Decision>,
}

struct Basic {
    challenge: http::HeaderValue,
    users: std::collections::HashMap<String, PasswordHash>,
    /// Checked for an unknown user: a bcrypt hash as costly as the file's first one.
    dummy: PasswordHash,
    forward_authorization: bool,
    checks: Arc<tokio::sync::Semaphore>,
    /// Checks waiting or running per client address.
    waiting: WaitingMap,
    /// Credentials (the base64 text) → whether they were right.
    remembered: moka::sync::Cache<Arc<[u8]>, bool>,
}

impl RouteAccess {
    /// `None` when the route has no access rules (nothing to check, nothing counted).
    pub fn new(route: &str, access: &AccessConfig, metrics: &Metrics) -> Option<Arc<RouteAccess>> {
        if access.allow.is_empty() && access.deny.is_empty() && access.basic_auth.is_none() {
            return None;
        }
        let basic = access.basic_auth.as_ref().map(|b| Basic::new(b, access));
        Some(Arc::new(RouteAccess {
            allow: access.allow.clone(),
            deny: access.deny.clone(),
            basic,
            decisions: crate::metrics::ByLabel::new(&metrics.access_decisions_total, &[route]),
        }))
    }

    /// The client's network may use this route: not in `deny`, and in `allow` when `allow`
    /// is set. An unknown client address passes only when there is no `allow`.
    pub fn network_allows(&self, client: Option<IpAddr>) -> bool {
        let ok = match client {
            Some(ip) => {
                let ip = ip.to_canonical();
                !self.deny.iter().any(|n| n.contains(&ip))
                    && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
            }
            None => self.allow.is_empty(),
        };
        if !ok {
            self.decisions.get(Decision::Denied).inc();
        }
        ok
    }

    /// Whether the request's `Authorization` is right (always, without `basic_auth`), for
    /// a request from `client`. Counts the decision for the route.
    pub async fn credentials(
        &self,
        authorization: Option<&http::HeaderValue>,
        client: Option<IpAddr>,
    ) -> Credentials {
        let c = match &self.basic {
            None => Credentials::Allowed,
            Some(b) => b.check(authorization, client).await,
        };
        self.decisions
            .get(match c {
                Credentials::Allowed => Decision::Allowed,
                Credentials::Refused => Decision::Unauthorized,
                Credentials::Throttled => Decision::Throttled,
            })
            .inc();
        c
    }

    /// `WWW-Authenticate` for a 401.
    pub fn challenge(&self) -> Option<&http::HeaderValue> {
        self.basic.as_ref().map(|b| &b.challenge)
    }

    /// True when `Authorization` must be removed before the request goes upstream: it held
    /// brace's credentials, which are not the app's business.
    pub fn strips_authorization(&self) -> bool {
        self.basic
            .as_ref()
            .is_some_and(|b| !b.forward_authorization)
    }
}

impl Basic {
    fn new(b: &BasicAuthConfig, access: &AccessConfig) -> Basic {
        // The realm is validated as a quoted-string's content (no `"`, `\` or controls).
        let challenge =
            http::HeaderValue::from_str(&format!("Basic realm=\"{}\", charset=\"UTF-8\"", b.realm))
                .unwrap_or_else(|_| http::HeaderValue::from_static("Basic"));
        let cost = b
            .users
            .iter()
            .find_map(|(_, h)| match h {
                PasswordHash::Bcrypt(h) => h.parse::<bcrypt::HashParts>().ok(),
                PasswordHash::Argon2(_) => None,
            })
            .map_or(5, |p| p.get_cost());
        let dummy =
            PasswordHash::Bcrypt(bcrypt::hash("brace: no such user", cost).unwrap_or_default());
        Basic {
            challenge,
            users: b.users.iter().cloned().collect(),
            dummy,
            forward_authorization: access.forward_authorization,
            checks: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_CHECKS)),
            waiting: WaitingMap::default(),
            remembered: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(REMEMBER)
                .build(),
        }
    }

    async fn check(
        &self,
        authorization: Option<&http::HeaderValue>,
        client: Option<IpAddr>,
    ) -> Credentials {
        let verdict = |ok| {
            if ok {
                Credentials::Allowed
            } else {
                Credentials::Refused
            }
        };
        let Some(creds) = authorization.and_then(|v| basic_credentials(v.as_bytes())) else {
            return Credentials::Refused;
        };
        // Looked up by the borrowed bytes: a remembered client allocates nothing.
        if let Some(ok) = self.remembered.get(creds) {
            return verdict(ok);
        }
        let Some((user, password)) = decode(creds) else {
            return Credentials::Refused;
        };
        let Some(_turn) = Waiting::enter(&self.waiting, client) else {
            return Credentials::Throttled;
        };
        let hash = self.users.get(&user).cloned();
        let dummy = self.dummy.clone();
        let Ok(_permit) = self.checks.acquire().await else {
            return Credentials::Refused;
        };
        let ok = tokio::task::spawn_blocking(move || match hash {
            Some(h) => verify(&h, password.as_bytes()),
            None => {
                // As long as a real check, so the timing does not tell the user is unknown.
                verify(&dummy, password.as_bytes());
                false
            }
        })
        .await
        .unwrap_or(false);
        if creds.len() <= REMEMBER_MAX_LEN {
            self.remembered.insert(Arc::from(creds), ok);
        }
        verdict(ok)
    }
}

/// Password checks waiting or running, per client address (entries at zero are removed).
/// Locked when a check starts and ends, never for a remembered answer.
type WaitingMap = Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, u32>>>;

/// A client address's place among the password checks; given up when dropped.
struct Waiting {
    map: WaitingMap,
    client: IpAddr,
}

impl Waiting {
    /// A place for `client`, or `None` when it has [`CHECKS_PER_CLIENT`] already. A request
    /// without a client address (a Unix socket) always gets one.
    fn enter(map: &WaitingMap, client: Option<IpAddr>) -> Option<Option<Waiting>> {
        let Some(client) = client else {
            return Some(None);
        };
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(client).or_default();
        if *n >= CHECKS_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(Some(Waiting {
            map: map.clone(),
            client,
        }))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

/// Whether `password` matches `hash`; a hash the library cannot read matches nothing.
fn verify(hash: &PasswordHash, password: &[u8]) -> bool {
    match hash {
        PasswordHash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
        PasswordHash::Argon2(h) => {
            use argon2::PasswordVerifier as _;
            argon2::PasswordHash::new(h).is_ok_and(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password, &parsed)
                    .is_ok()
            })
        }
    }
}

/// The credentials of an `Authorization` value `SCHEME credentials` for `scheme` (matched in
/// any case, RFC 9110 §11.1), trimmed; `None` for another scheme. Also reads the admin token.
pub fn credentials<'a>(v: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let sp = v.iter().position(|&b| b == b' ')?;
    let (given, rest) = v.split_at(sp);
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| rest.trim_ascii())
}

/// The base64 credentials of `Authorization: Basic ...`, when there are some.
fn basic_credentials(v: &[u8]) -> Option<&[u8]> {
    credentials(v, b"basic").filter(|c| !c.is_empty())
}

/// `user:password` from base64 (RFC 7617); the user may not contain `:`.
fn decode(creds: &[u8]) -> Option<(String, String)> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(creds)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_as_rfc_7617_says() {
        assert_eq!(basic_credentials(b"Basic YTpi"), Some(&b"YTpi"[..]));
        assert_eq!(basic_credentials(b"bAsIc   YTpi  "), Some(&b"YTpi"[..]));
        assert_eq!(basic_credentials(b"Bearer YTpi"), None);
        assert_eq!(basic_credentials(b"Basic "), None);
        assert_eq!(basic_credentials(b"Basic"), None);
        assert_eq!(decode(b"YTpi"), Some(("a".into(), "b".into())));
        // "a:b:c": the password may hold a colon.
        assert_eq!(decode(b"YTpiOmM="), Some(("a".into(), "b:c".into())));
        assert_eq!(decode(b"bm9jb2xvbg=="), None, "no colon");
        assert_eq!(decode(b"!!!"), None, "not base64");
    }

    fn access(allow: &[&str], deny: &[&str]) -> Arc<RouteAccess> {
        let nets = |v: &[&str]| v.iter().map(|n| n.parse().unwrap()).collect();
        let cfg = AccessConfig {
            allow: nets(allow),
            deny: nets(deny),
            basic_auth: None,
            forward_authorization: false,
        };
        RouteAccess::new("r", &cfg, &Metrics::new()).unwrap()
    }

    #[test]
    fn deny_wins_over_allow_and_an_unknown_client_passes_only_without_allow() {
        let a = access(&["10.0.0.0/8"], &["10.0.0.9/32"]);
        assert!(a.network_allows(Some("10.1.2.3".parse().unwrap())));
        assert!(!a.network_allows(Some("10.0.0.9".parse().unwrap())));
        assert!(!a.network_allows(Some("192.0.2.1".parse().unwrap())));
        assert!(!a.network_allows(None));
        let open = access(&[], &["192.0.2.0/24"]);
        assert!(open.network_allows(None));
        assert!(!open.network_allows(Some("192.0.2.77".parse().unwrap())));
    }

    #[test]
    fn an_ipv4_client_seen_on_a_dual_stack_listener_is_its_ipv4_address() {
        let a = access(&["127.0.0.1/32"], &[]);
        assert!(a.network_allows(Some("::ffff:127.0.0.1".parse().unwrap())));
        assert!(!a.network_allows(Some("::1".parse().unwrap())));
    }

    #[test]
    fn a_route_without_rules_has_no_access_check_and_the_admin_scheme_reads_any_case() {
        let cfg = AccessConfig::default();
        assert!(RouteAccess::new("r", &cfg, &Metrics::new()).is_none());
        assert_eq!(credentials(b"BEARER  t0k ", b"bearer"), Some(&b"t0k"[..]));
        assert_eq!(credentials(b"Basic x", b"bearer"), None);
    }
}
