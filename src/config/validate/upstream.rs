//! Validation of `[upstream.NAME]`: backends, balance, TLS, DNS and the breaker (health
//! check, outlier and retry are `resilience`'s).

use super::resilience::{validate_health, validate_outlier, validate_retry};
use super::*;

/// The most idle connections one upstream keeps (nginx's `keepalive` is commonly 16 to 1000).
const MAX_KEEPALIVE: usize = 10_000;

pub(super) fn validate_upstream(
    u: FileUpstream,
    p: &KeyPath,
    base: &Path,
) -> VResult<UpstreamConfig> {
    let FileUpstream {
        backends,
        resolve,
        resolver,
        srv,
        connect_timeout,
        read_timeout,
        first_byte_timeout,
        upgrade_idle_timeout,
        keepalive,
        keepalive_timeout,
        balance,
        hash_key,
        backup,
        slow_start,
        panic_threshold,
        health_check,
        outlier,
        retry,
        circuit_breaker,
        max_in_flight,
        tls,
        protocol,
        grpc_failure,
        adaptive,
        sticky,
    } = u;
    let alpn = match &tls {
        Some(FileUpstreamTls::Options(o)) => Some(o.alpn.clone()),
        Some(FileUpstreamTls::On(true)) => Some(FileUpstreamTlsOptions::default().alpn),
        _ => None,
    };
    let protocol = match (protocol, alpn) {
        (FileProtocol::Http1, None) => Protocol::Http1,
        (FileProtocol::H2c, None) => Protocol::H2,
        (FileProtocol::H2c, Some(_)) => return err(
            p.key("protocol"),
            "h2c is cleartext HTTP/2; over TLS, offer HTTP/2 by ALPN: tls = { alpn = [\"h2\"] }",
        ),
        (FileProtocol::Http1, Some(a)) => {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            match a.as_slice() {
                ["http/1.1"] => Protocol::Http1,
                ["h2"] => Protocol::H2,
                ["h2", "http/1.1"] => Protocol::H2OrHttp1,
                _ => {
                    return err(
                        p.key("tls").key("alpn"),
                        format!("{a:?}: give [\"http/1.1\"], [\"h2\"] or [\"h2\", \"http/1.1\"]"),
                    )
                }
            }
        }
    };
    let mut grpc = Vec::new();
    for (i, name) in grpc_failure.iter().enumerate() {
        match GRPC_CODES.iter().position(|c| c == name) {
            Some(0) => return err(p.key("grpc_failure").index(i), "\"ok\" is not a failure"),
            Some(code) => grpc.push(code as u8),
            None => {
                return err(
                    p.key("grpc_failure").index(i),
                    format!(
                        "\"{name}\" is not a gRPC status code name ({})",
                        GRPC_CODES[1..].join(", ")
                    ),
                )
            }
        }
    }
    let tls = match tls {
        None | Some(FileUpstreamTls::On(false)) => None,
        Some(FileUpstreamTls::On(true)) => {
            Some(validate_tls(FileUpstreamTlsOptions::default(), p, base)?)
        }
        Some(FileUpstreamTls::Options(o)) => Some(validate_tls(o, &p.key("tls"), base)?),
    };
    let balance = validate_balance(balance, hash_key.as_deref(), p)?;
    if !(0.0..=1.0).contains(&panic_threshold) {
        return err(
            p.key("panic_threshold"),
            format!("{panic_threshold} is outside 0.0..=1.0"),
        );
    }
    let health_check = match health_check {
        Some(h) => Some(validate_health(h, &p.key("health_check"))?),
        None => None,
    };
    // Passive ejection is on without a table, with the table's defaults (nginx ejects on
    // failures by default too); `consecutive_failures = 0` turns it off.
    let outlier = validate_outlier(outlier.unwrap_or_default(), &p.key("outlier"))?;
    let retry = validate_retry(retry, &p.key("retry"))?;
    let circuit_breaker = match circuit_breaker {
        Some(b) => Some(validate_breaker(b, &p.key("circuit_breaker"))?),
        None => None,
    };
    if backends.is_empty() && srv.is_none() {
        return err(
            p.key("backends"),
            "no backends: give at least one \"host:port\" (or an srv name)",
        );
    }
    let dynamic = resolve.is_some() || srv.is_some();
    if !dynamic && resolver.is_some() {
        return err(
            p.key("resolver"),
            "only used with resolve (or srv): set resolve = \"30s\" to re-resolve host names",
        );
    }
    let resolver = match resolver {
        None => None,
        Some(r) => Some(
            match (r.parse::<SocketAddr>(), r.parse::<std::net::IpAddr>()) {
                (Ok(a), _) => a,
                (_, Ok(ip)) => SocketAddr::new(ip, 53),
                _ => {
                    return err(
                        p.key("resolver"),
                        format!(
                            "\"{r}\": expected a DNS server's IP or IP:PORT, e.g. \"127.0.0.1:53\""
                        ),
                    )
                }
            },
        ),
    };
    if let Some(name) = &srv {
        if !dns_name_ok(name) {
            return err(
                p.key("srv"),
                format!("\"{name}\" is not a DNS name, e.g. \"_http._tcp.app.service.consul\""),
            );
        }
    }
    let mut names = Vec::new();
    let mut out = Vec::with_capacity(backends.len());
    let mut seen = HashSet::new();
    for (i, b) in backends.into_iter().enumerate() {
        let bp = p.key("backends").index(i);
        let (addr, weight, ap) = match b {
            FileBackend::Addr(a) => (a, 1, bp.clone()),
            FileBackend::Full(FileBackendFull { addr, weight }) => (addr, weight, bp.key("addr")),
        };
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .map(str::to_ascii_lowercase);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return err(
                bp.key("weight"),
                format!("weight {weight} is out of range 1..={MAX_WEIGHT}"),
            );
        }
        if let (true, Some(h)) = (dynamic, &host) {
            // Resolved while brace runs, not now: the name may not resolve here (a compose
            // service name) or not yet.
            let port = addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .filter(|p| *p != 0);
            let (Some(port), true) = (port, dns_name_ok(h)) else {
                return err(
                    ap,
                    format!("invalid backend \"{addr}\": expected \"host:port\""),
                );
            };
            let name = DnsName {
                host: h.clone(),
                port,
                weight: NonZeroU32::new(weight as u32).expect("checked above"),
            };
            if names.contains(&name) {
                return err(
                    bp,
                    format!("backend {addr} is listed twice in this upstream"),
                );
            }
            names.push(name);
            continue;
        }
        let addr = socket_addr(ap, &addr)?;
        if !seen.insert(addr) {
            return err(
                bp,
                format!("backend {addr} is listed twice in this upstream"),
            );
        }
        out.push(BackendAddr {
            addr,
            weight: NonZeroU32::new(weight as u32).expect("checked above"),
            host,
        });
    }
    let dns = if dynamic {
        let every = resolve.map_or(Duration::from_secs(30), |d| d.0);
        Some(DnsConfig {
            names,
            srv: srv.map(|s| s.trim_end_matches('.').to_ascii_lowercase()),
            every: within(p.key("resolve"), every, SEC, DAY)?,
            resolver,
        })
    } else {
        None
    };
    // Idle connections are kept in pools sized from this at start, per worker thread.
    if keepalive > MAX_KEEPALIVE {
        return err(p.key("keepalive"), format!("at most {MAX_KEEPALIVE}"));
    }
    Ok(UpstreamConfig {
        backends: out,
        dns,
        connect_timeout: within(p.key("connect_timeout"), connect_timeout.0, MS, 5 * MINUTE)?,
        read_timeout: within(p.key("read_timeout"), read_timeout.0, MS, HOUR)?,
        first_byte_timeout: first_byte_timeout
            .map(|d| within(p.key("first_byte_timeout"), d.0, MS, HOUR))
            .transpose()?,
        upgrade_idle_timeout: within(
            p.key("upgrade_idle_timeout"),
            upgrade_idle_timeout.0,
            SEC,
            24 * HOUR,
        )?,
        keepalive,
        keepalive_timeout: within(p.key("keepalive_timeout"), keepalive_timeout.0, MS, HOUR)?,
        backup,
        slow_start: within(p.key("slow_start"), slow_start.0, Duration::ZERO, HOUR)?,
        panic_threshold,
        health_check,
        outlier,
        retry,
        circuit_breaker,
        max_in_flight,
        tls,
        protocol,
        grpc_failure: grpc,
        adaptive: super::adaptive::validate_adaptive(adaptive, &p.key("adaptive"))?,
        sticky: sticky
            .map(|s| super::sticky::validate_sticky(s, &p.key("sticky"), &balance))
            .transpose()?,
        balance,
    })
}

fn validate_tls(t: FileUpstreamTlsOptions, p: &KeyPath, base: &Path) -> VResult<UpstreamTlsConfig> {
    let FileUpstreamTlsOptions {
        sni,
        ca,
        verify,
        client_cert,
        client_key,
        alpn: _,
    } = t;
    if let Some(s) = &sni {
        if s.is_empty() || rustls_pki_types::ServerName::try_from(s.as_str()).is_err() {
            return err(
                p.key("sni"),
                format!("\"{s}\" is not a host name or IP address"),
            );
        }
    }
    let ca = ca.map(|f| pem_certs(p.key("ca"), base, &f)).transpose()?;
    let client = match (client_cert, client_key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(cert_key(p, ("client_cert", "client_key"), base, &c, &k)?),
        (Some(_), None) => return err(p.key("client_key"), "client_cert needs client_key"),
        (None, Some(_)) => return err(p.key("client_cert"), "client_key needs client_cert"),
    };
    Ok(UpstreamTlsConfig {
        sni,
        ca,
        verify,
        client,
    })
}

pub(super) fn ratio(p: KeyPath, v: f64) -> VResult<f64> {
    if !(0.0..=1.0).contains(&v) {
        return err(p, format!("{v} is outside 0.0..=1.0"));
    }
    Ok(v)
}

pub(super) fn validate_breaker(b: FileBreaker, p: &KeyPath) -> VResult<BreakerConfig> {
    let FileBreaker {
        consecutive_failures,
        failure_ratio,
        min_requests,
        window,
        slow_call_duration,
        slow_call_ratio,
        open_duration,
        max_open_duration,
        half_open_requests,
        failure_on,
        mode,
    } = b;
    let failure_ratio = ratio(p.key("failure_ratio"), failure_ratio)?;
    let slow_call_ratio = ratio(p.key("slow_call_ratio"), slow_call_ratio)?;
    if consecutive_failures == 0 && failure_ratio == 0.0 && slow_call_ratio == 0.0 {
        return err(p.clone(), "every trigger is off (consecutive_failures, failure_ratio and slow_call_ratio are 0): the breaker could never trip");
    }
    let window = within(p.key("window"), window.0, MS, HOUR)?;
    let open = within(p.key("open_duration"), open_duration.0, MS, DAY)?;
    within(p.key("max_open_duration"), max_open_duration.0, MS, DAY)?;
    within(p.key("slow_call_duration"), slow_call_duration.0, MS, HOUR)?;
    if max_open_duration.0 < open {
        return err(p.key("max_open_duration"), "must be at least open_duration");
    }
    if half_open_requests == 0 {
        return err(p.key("half_open_requests"), "must be at least 1");
    }
    let mut on = FailureOn::default();
    for f in failure_on {
        match f {
            FailureClass::ConnectError => on.connect_error = true,
            FailureClass::Timeout => on.timeout = true,
            FailureClass::Error => on.error = true,
            FailureClass::Http5xx => on.http_5xx = true,
        }
    }
    let mode = match mode {
        Mode::Enforce => BreakerMode::Enforce,
        Mode::Shadow => BreakerMode::Shadow,
    };
    Ok(BreakerConfig {
        consecutive_failures,
        failure_ratio,
        min_requests,
        window,
        slow_call_duration: slow_call_duration.0,
        slow_call_ratio,
        open_duration: open,
        max_open_duration: max_open_duration.0,
        half_open_requests,
        failure_on: on,
        mode,
    })
}

pub(super) fn validate_balance(
    balance: BalanceName,
    hash_key: Option<&str>,
    p: &KeyPath,
) -> VResult<Balance> {
    let b = match balance {
        BalanceName::RoundRobin => Balance::RoundRobin,
        BalanceName::LeastRequests => Balance::LeastRequests,
        BalanceName::P2c => Balance::P2c,
        BalanceName::Ewma => Balance::Ewma,
        BalanceName::Random => Balance::Random,
        BalanceName::ConsistentHash => {
            let k = hash_key.unwrap_or("client_ip");
            let Some(hk) = parse_hash_key(k) else {
                return err(
                    p.key("hash_key"),
                    format!("invalid hash_key \"{k}\": expected client_ip, path, header:NAME or cookie:NAME"),
                );
            };
            return Ok(Balance::ConsistentHash(hk));
        }
    };
    if hash_key.is_some() {
        return err(
            p.key("hash_key"),
            "hash_key applies only to balance = \"consistent_hash\"",
        );
    }
    Ok(b)
}

/// `client_ip`, `path`, `header:NAME` or `cookie:NAME`.
pub(super) fn parse_hash_key(k: &str) -> Option<HashKey> {
    Some(match k {
        "client_ip" => HashKey::ClientIp,
        "path" => HashKey::Path,
        k => match k.split_once(':')? {
            ("header", n) if http::HeaderName::from_bytes(n.as_bytes()).is_ok() => {
                HashKey::Header(n.to_ascii_lowercase())
            }
            ("cookie", n) if !n.is_empty() => HashKey::Cookie(n.to_owned()),
            _ => return None,
        },
    })
}

/// A host name as DNS spells it: dot-separated labels of letters, digits, `-` and `_`.
fn dns_name_ok(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests;
