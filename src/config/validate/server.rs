//! Validation of `[server]`, `[admin]` and `[log]`.

use super::*;

pub(super) fn validate_server(s: FileServer, p: &KeyPath, base: &Path) -> VResult<ServerConfig> {
    let FileServer {
        listen,
        threads,
        grace_period,
        client_max_body_size,
        trusted_proxies,
        tls,
        debug_headers,
        rate_limit_headers,
        watch_config,
        path_normalization,
        trust_forwarded_host,
        client_keepalive_timeout,
        client_header_timeout,
        client_body_timeout,
        client_send_timeout,
        max_request_header_size,
        max_connections,
        h2c,
        preserve_header_case,
        error_pages,
        https_redirect,
        hsts,
    } = s;
    if https_redirect && tls.is_empty() {
        return err(
            p.key("https_redirect"),
            "redirects to the TLS listener: add a [[server.tls]] listener",
        );
    }
    let hsts = hsts
        .map(|d| within(p.key("hsts"), d.0, Duration::ZERO, 2 * 366 * DAY))
        .transpose()?;
    if !(1..=1_000_000).contains(&max_connections) {
        return err(p.key("max_connections"), "must be between 1 and 1000000");
    }
    let keepalive = client_keepalive_timeout.0;
    if !keepalive.is_zero() {
        within(p.key("client_keepalive_timeout"), keepalive, SEC, HOUR)?;
    }
    within(
        p.key("client_header_timeout"),
        client_header_timeout.0,
        SEC,
        HOUR,
    )?;
    within(
        p.key("client_body_timeout"),
        client_body_timeout.0,
        SEC,
        HOUR,
    )?;
    within(
        p.key("client_send_timeout"),
        client_send_timeout.0,
        SEC,
        HOUR,
    )?;
    let header_size = max_request_header_size.0;
    if !(1024..=1024 * 1024).contains(&header_size) {
        return err(
            p.key("max_request_header_size"),
            format!("{header_size} bytes: must be between 1KiB and 1MiB"),
        );
    }
    let mut seen = HashSet::new();
    let mut addrs = Vec::new();
    for (i, l) in listen.iter().enumerate() {
        let a = listen_addr(p.key("listen").index(i), l)?;
        if !seen.insert(a) {
            return err(p.key("listen").index(i), format!("{a} is listed twice"));
        }
        addrs.push(a);
    }
    let mut tls_out = Vec::new();
    for (i, t) in tls.into_iter().enumerate() {
        let tp = p.key("tls").index(i);
        let a = listen_addr(tp.key("listen"), &t.listen)?;
        if !seen.insert(a) {
            return err(tp.key("listen"), format!("{a} is already a listener"));
        }
        tls_out.push(validate_tls_listener(t, a, &tp, base)?);
    }
    if addrs.is_empty() && tls_out.is_empty() {
        return err(p.key("listen"), "no listener: give at least one address");
    }
    if threads > 1024 {
        return err(p.key("threads"), "at most 1024 (0 = one per core)");
    }
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let nets = networks(&p.key("trusted_proxies"), &trusted_proxies)?;
    if client_max_body_size.0 == 0 {
        return err(p.key("client_max_body_size"), "must be greater than 0");
    }
    Ok(ServerConfig {
        error_pages: super::pages::validate_pages(error_pages, &p.key("error_pages"), base)?,
        https_redirect,
        hsts,
        listen: addrs,
        threads,
        grace_period: within(p.key("grace_period"), grace_period.0, Duration::ZERO, HOUR)?,
        client_max_body_size: client_max_body_size.0,
        trusted_proxies: nets,
        tls: tls_out,
        debug_headers,
        rate_limit_headers,
        watch_config,
        path_normalization,
        trust_forwarded_host,
        client_keepalive_timeout: keepalive,
        client_header_timeout: client_header_timeout.0,
        client_body_timeout: client_body_timeout.0,
        client_send_timeout: client_send_timeout.0,
        max_request_header_size: header_size,
        max_connections,
        h2c,
        preserve_header_case,
    })
}

fn validate_tls_listener(
    t: FileTls,
    listen: SocketAddr,
    p: &KeyPath,
    base: &Path,
) -> VResult<TlsConfig> {
    let FileTls {
        listen: _,
        cert,
        key,
        certs,
        client_auth,
        client_ca,
        client_cert_header,
    } = t;
    let mut out = Vec::new();
    match (cert, key) {
        (Some(c), Some(k)) => out.push(cert_key(p, ("cert", "key"), base, &c, &k)?),
        (None, None) => {}
        (Some(_), None) => return err(p.key("key"), "cert needs key"),
        (None, Some(_)) => return err(p.key("cert"), "key needs cert"),
    }
    for (i, FileCertKey { cert, key }) in certs.into_iter().enumerate() {
        out.push(cert_key(
            &p.key("certs").index(i),
            ("cert", "key"),
            base,
            &cert,
            &key,
        )?);
    }
    if out.is_empty() {
        return err(
            p.key("cert"),
            "no certificate: give cert and key, or certs = [{ cert, key }, ...]",
        );
    }
    let client_ca = client_ca
        .map(|f| pem_certs(p.key("client_ca"), base, &f))
        .transpose()?;
    if client_auth != ClientAuthMode::None && client_ca.is_none() {
        return err(
            p.key("client_ca"),
            "client_auth = \"optional\" or \"required\" needs client_ca (the roots client certificates must chain to)",
        );
    }
    let header = client_cert_header.unwrap_or_else(|| "X-Client-Cert-Subject".into());
    if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
        return err(
            p.key("client_cert_header"),
            format!("\"{header}\" is not a header name"),
        );
    }
    Ok(TlsConfig {
        listen,
        certs: out,
        client_auth,
        client_ca,
        client_cert_header: header.to_ascii_lowercase(),
    })
}

pub(super) fn validate_admin(
    a: FileAdmin,
    p: &KeyPath,
    server: &ServerConfig,
) -> VResult<AdminConfig> {
    let FileAdmin {
        listen,
        token,
        hosts,
    } = a;
    let mut names = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let plain = crate::host::Listener {
            tls: false,
            port: None,
        };
        match crate::host::normalise(h, plain) {
            Some(n) if n.as_str() == n.name() => names.push(n.as_str().to_owned()),
            _ => {
                return err(
                    p.key("hosts").index(i),
                    format!("\"{h}\" is not a host name"),
                )
            }
        }
    }
    let addr = listen_addr(p.key("listen"), &listen)?;
    let clash = server
        .listen
        .iter()
        .chain(server.tls.iter().map(|t| &t.listen))
        .any(|l| {
            l.port() == addr.port()
                && (l.ip() == addr.ip() || l.ip().is_unspecified() || addr.ip().is_unspecified())
        });
    if clash {
        return err(
            p.key("listen"),
            format!(
                "{addr} overlaps a proxy listener; the admin endpoints must have their own port"
            ),
        );
    }
    if let Some(t) = &token {
        if t.trim().is_empty() {
            return err(
                p.key("token"),
                "empty token; remove the key or set a secret",
            );
        }
    }
    if !addr.ip().is_loopback() && token.is_none() {
        return err(
            p.key("listen"),
            format!(
                "{addr} is reachable from other hosts: set admin.token, or listen on 127.0.0.1"
            ),
        );
    }
    Ok(AdminConfig {
        listen: addr,
        token,
        hosts: names,
    })
}

pub(super) fn validate_log(l: FileLog, p: &KeyPath, base: &Path) -> VResult<LogConfig> {
    let FileLog {
        level,
        access_log,
        format,
    } = l;
    // A bare word is a target name to EnvFilter ("loud" = everything from target "loud"), so a
    // lone word must be a level; filters with `=` or `,` are checked by EnvFilter itself.
    let directive = level.contains('=') || level.contains(',');
    let bare_level = matches!(
        level.trim().to_ascii_lowercase().as_str(),
        "off" | "error" | "warn" | "info" | "debug" | "trace"
    );
    if !(bare_level || directive) || tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return err(
            p.key("level"),
            format!("invalid level \"{level}\": expected error, warn, info, debug, trace or a filter like \"info,brace=debug\""),
        );
    }
    let access_log = match access_log.as_str() {
        "off" => AccessLog::Off,
        "stdout" => AccessLog::Stdout,
        "" => {
            return err(
                p.key("access_log"),
                "empty: use \"off\", \"stdout\" or a file path",
            )
        }
        path => AccessLog::File(base.join(path)),
    };
    Ok(LogConfig {
        level,
        access_log,
        format,
    })
}

pub(super) fn validate_tracing(t: FileTracing, p: &KeyPath) -> VResult<TracingConfig> {
    let FileTracing {
        otlp_endpoint,
        sample_ratio,
        service_name,
        headers,
        timeout,
        queue_size,
    } = t;
    let uri: http::Uri = match otlp_endpoint.parse() {
        Ok(u) => u,
        Err(e) => {
            return err(
                p.key("otlp_endpoint"),
                format!(
                    "\"{otlp_endpoint}\" is not a URL ({e}): use e.g. \"http://127.0.0.1:4318\""
                ),
            )
        }
    };
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => {}
        (Some("https"), _) => {
            return err(
                p.key("otlp_endpoint"),
                "https is not supported: send to an OpenTelemetry Collector next to brace over http (it can forward over TLS)",
            )
        }
        _ => {
            return err(
                p.key("otlp_endpoint"),
                format!("\"{otlp_endpoint}\": expected http://HOST:PORT[/path], e.g. \"http://127.0.0.1:4318\""),
            )
        }
    }
    // The OTLP/HTTP convention: a base URL gets the traces path.
    let endpoint = match uri.path() {
        "" | "/" => format!("{}/v1/traces", otlp_endpoint.trim_end_matches('/')),
        _ => otlp_endpoint,
    };
    if !(0.0..=1.0).contains(&sample_ratio) {
        return err(
            p.key("sample_ratio"),
            format!(
                "{sample_ratio} is not between 0 and 1 (0.01 samples one new trace in a hundred)"
            ),
        );
    }
    if service_name.trim().is_empty() {
        return err(p.key("service_name"), "must not be empty");
    }
    for (k, v) in &headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return err(p.key("headers").key(k), "not a valid header name");
        }
        if http::HeaderValue::from_str(v).is_err() {
            return err(p.key("headers").key(k), "not a valid header value");
        }
    }
    if timeout.0.is_zero() {
        return err(p.key("timeout"), "must be greater than 0");
    }
    if queue_size == 0 {
        return err(p.key("queue_size"), "must be greater than 0");
    }
    Ok(TracingConfig {
        endpoint,
        sample_ratio,
        service_name,
        headers,
        timeout: timeout.0,
        queue_size,
    })
}

pub(super) fn validate_cluster(c: FileCluster, p: &KeyPath) -> VResult<ClusterConfig> {
    let FileCluster {
        redis,
        password_env,
        instance_id,
        namespace,
        timeout,
        connect_timeout,
        heartbeat,
        expected_instances,
    } = c;
    use ::redis::IntoConnectionInfo;
    let scheme = redis.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("redis" | "rediss")) {
        return err(
            p.key("redis"),
            format!("\"{redis}\": expected redis://HOST:PORT/DB or rediss://HOST:PORT/DB"),
        );
    }
    match redis.as_str().into_connection_info() {
        Err(e) => {
            return err(
                p.key("redis"),
                format!("\"{redis}\" is not a Redis URL: {e}"),
            )
        }
        Ok(info) if info.redis_settings().password().is_some() => {
            return err(
                p.key("redis"),
                "holds a password; put it in an environment variable and name it in password_env",
            )
        }
        Ok(_) => {}
    }
    if let Some(v) = &password_env {
        if std::env::var_os(v).is_none() {
            return err(
                p.key("password_env"),
                format!("environment variable {v} is not set"),
            );
        }
    }
    let instance_id = match instance_id {
        Some(id) if !name_ok(&id) => {
            return err(
                p.key("instance_id"),
                format!(
                    "\"{id}\": use letters, digits, '_', '-', '.', starting with a letter or digit"
                ),
            )
        }
        Some(id) => id,
        None => format!("{}-{}", host_name(), std::process::id()),
    };
    if !name_ok(&namespace) {
        return err(
            p.key("namespace"),
            format!("\"{namespace}\": use letters, digits, '_', '-', '.', starting with a letter or digit"),
        );
    }
    let timeout = within(p.key("timeout"), timeout.0, MS, 10 * SEC)?;
    let connect_timeout = within(p.key("connect_timeout"), connect_timeout.0, MS, 60 * SEC)?;
    let heartbeat = within(p.key("heartbeat"), heartbeat.0, 100 * MS, 600 * SEC)?;
    if expected_instances == Some(0) {
        return err(p.key("expected_instances"), "must be at least 1");
    }
    Ok(ClusterConfig {
        redis,
        password_env,
        instance_id,
        namespace,
        timeout,
        connect_timeout,
        heartbeat,
        expected_instances,
    })
}

/// This machine's name, for the default instance id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| name_ok(s))
        .unwrap_or_else(|| "brace".into())
}

#[cfg(test)]
mod tests;
