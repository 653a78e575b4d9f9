//! Who may talk to the admin listener from a browser. Two rules, as Prometheus, Consul and
//! Docker's APIs learned to apply them:
//! - **Host.** The API and the status page answer only a `Host` that names this listener: an
//!   IP literal, `localhost`, or a name in `[admin] hosts`. A page that rebinds its own name
//!   to 127.0.0.1 (DNS rebinding) sends its own name, and is refused. `/metrics`, `/healthz`
//!   and `/readyz` answer any `Host`: scrapers and orchestrators address them by service name
//!   and they reveal nothing a rebinding page could use.
//! - **Origin.** A request that changes state is refused when its `Origin` names another
//!   origin (or `null`), or `Sec-Fetch-Site` says `cross-site`, whatever its content type: a
//!   form post from another page needs no preflight. A request with neither (curl, scripts)
//!   is not a browser's and keeps working; the token rules apply to all.

use pingora::http::RequestHeader;
use std::net::Ipv4Addr;

/// Endpoints that answer any `Host`.
pub fn any_host(path: &str) -> bool {
    matches!(path, "/metrics" | "/healthz" | "/readyz")
}

/// `Err` with the reason when `Host` does not name this listener.
pub fn host(req: &RequestHeader, allowed: &[String]) -> Result<(), String> {
    let Some(raw) = req.headers.get(http::header::HOST) else {
        return Ok(()); // HTTP/1.0 without Host: not a browser
    };
    let plain = crate::host::Listener {
        tls: false,
        port: None,
    };
    let name = raw
        .to_str()
        .ok()
        .and_then(|h| crate::host::normalise(h, plain))
        .ok_or_else(|| "invalid Host".to_string())?;
    let name = name.name();
    let literal = name.starts_with('[') || name.parse::<Ipv4Addr>().is_ok();
    if literal || name == "localhost" || allowed.iter().any(|a| a == name) {
        Ok(())
    } else {
        Err(format!(
            "Host \"{name}\" does not name the admin listener; add it to [admin] hosts"
        ))
    }
}

/// `Err` with the reason when a browser sent this request from another origin.
pub fn same_origin(req: &RequestHeader) -> Result<(), String> {
    let field = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    if field("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Err("a cross-site request (Sec-Fetch-Site)".into());
    }
    let Some(origin) = field("origin") else {
        return Ok(());
    };
    let host = field("host").unwrap_or("");
    let own = origin
        .strip_prefix("http://")
        .is_some_and(|a| !host.is_empty() && a.eq_ignore_ascii_case(host));
    if own {
        Ok(())
    } else {
        Err(format!("a request from another origin ({origin})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/api/reload", None).unwrap();
        for (k, v) in fields {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn the_api_answers_only_hosts_that_name_the_listener() {
        let allowed = vec!["brace-admin.internal".to_string()];
        for h in [
            "127.0.0.1:9901",
            "[::1]:9901",
            "localhost:9901",
            "LOCALHOST.",
            "brace-admin.internal",
            "10.1.2.3",
        ] {
            assert!(host(&req(&[("host", h)]), &allowed).is_ok(), "{h}");
        }
        assert!(
            host(&req(&[]), &allowed).is_ok(),
            "no Host: HTTP/1.0, not a browser"
        );
        for h in [
            "evil.test:9901",
            "127.0.0.1.evil.test",
            "localhost:9901:1",
            "a b",
        ] {
            assert!(host(&req(&[("host", h)]), &allowed).is_err(), "{h}");
        }
    }

    #[test]
    fn a_change_from_another_origin_is_refused_and_one_from_no_browser_is_not() {
        let own = [
            ("host", "127.0.0.1:9901"),
            ("origin", "http://127.0.0.1:9901"),
        ];
        assert!(same_origin(&req(&own)).is_ok());
        assert!(
            same_origin(&req(&[("host", "127.0.0.1:9901")])).is_ok(),
            "curl"
        );
        for (origin, site) in [
            ("http://127.0.0.1:8080", ""),
            ("null", ""),
            ("https://127.0.0.1:9901", ""),
            ("http://127.0.0.1:9901.evil.test", ""),
            ("", "cross-site"),
            ("", "Cross-Site"),
        ] {
            let mut f = vec![("host", "127.0.0.1:9901")];
            if !origin.is_empty() {
                f.push(("origin", origin));
            }
            if !site.is_empty() {
                f.push(("sec-fetch-site", site));
            }
            assert!(same_origin(&req(&f)).is_err(), "{origin} {site}");
        }
    }
}
