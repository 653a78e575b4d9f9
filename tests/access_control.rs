//! Per-route access control: client networks (`allow`/`deny` → 403, after
//! `trusted_proxies`) and HTTP Basic authentication against an htpasswd file (→ 401). A
//! refused request reaches neither a backend nor the cache, and blames no backend.

mod support;
use std::path::Path;
use support::*;

/// `GET path` with extra header lines, on a new connection.
fn get_with(b: &Brace, path: &str, headers: &str) -> Response {
    send(
        b.addr(),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .unwrap()
}

fn decisions(b: &Brace, route: &str, decision: &str) -> f64 {
    b.metric(&format!(
        "brace_access_decisions_total{{decision=\"{decision}\",route=\"{route}\"}}"
    ))
}

/// A deny list written in IPv4-mapped IPv6 form (`::ffff:9.9.9.0/120`) denies those IPv4
/// clients: clients are matched by their plain IPv4 address, and before this the entry
/// never matched (a deny that failed open). Trusted proxies in that form are believed too.
#[test]
fn a_network_in_ipv4_mapped_form_means_its_ipv4_network() {
    let app = Upstream::start("app");
    let b = Brace::start_with(
        &format!(
            "[[route]]\nname = \"main\"\nupstream = \"pool\"\ndeny = [\"::ffff:9.9.9.0/120\"]\n\
             [upstream.pool]\nbackends = [\"{}\"]\n{TOUCHY}",
            app.addr
        ),
        "trusted_proxies = [\"::ffff:127.0.0.1\"]",
    );
    let from = |ip: &str| get_with(&b, "/", &format!("X-Forwarded-For: {ip}\r\n")).status;
    assert_eq!(from("9.9.9.9"), 403);
    assert_eq!(from("9.9.8.9"), 200);
    assert_eq!(app.count(), 1);
    assert_no_backend_blamed(&b);
}

#[test]
fn allow_and_deny_use_the_client_address_after_trusted_proxies() {
    let app = Upstream::start("app");
    let b = Brace::start_with(
        &format!(
            "[cache]\nmax_size = \"1MiB\"\n\n\
             [[route]]\nname = \"office\"\nupstream = \"pool\"\n\
             allow = [\"10.0.0.0/8\", \"192.168.1.7\"]\ndeny = [\"10.9.0.0/16\"]\n\
             [route.cache]\ndefault_ttl = \"60s\"\n\n\
             [upstream.pool]\nbackends = [\"{}\"]\n{TOUCHY}",
            app.addr
        ),
        "trusted_proxies = [\"127.0.0.1\"]",
    );
    let from = |ip: &str| get_with(&b, "/page", &format!("X-Forwarded-For: {ip}\r\n"));
    // Allowed: stored in the cache on the way.
    let r = from("10.1.2.3");
    assert_eq!(r.status, 200);
    assert_eq!(from("192.168.1.7").status, 200);
    assert_eq!(app.count(), 1, "the second was a cache hit");
    // Denied, though in 10/8; not allowed; the peer itself (no X-Forwarded-For) is not allowed.
    for ip in ["10.9.1.1", "192.168.1.8", "172.16.0.1", "::1"] {
        let r = from(ip);
        assert_eq!(r.status, 403, "{ip}");
        assert_eq!(r.text(), "brace: access denied\n");
        assert_eq!(r.header("x-cache-status"), None, "{ip} got a cached answer");
    }
    assert_eq!(get_with(&b, "/page", "").status, 403);
    assert_eq!(app.count(), 1, "a denied request reached the backend");
    assert_eq!(decisions(&b, "office", "denied"), 5.0);
    assert_eq!(decisions(&b, "office", "allowed"), 2.0);
    // Counted when the request is logged, just after its answer went out.
    b.wait_metric("brace_requests_total{code=\"403\",route=\"office\"}", 5.0);
    assert_no_backend_blamed(&b);
}

#[test]
fn an_untrusted_peer_cannot_claim_an_allowed_address() {
    let app = Upstream::start("app");
    // Loopback is trusted by default; here the peer is not a trusted proxy.
    let b = Brace::start_with(
        &simple_config("allow = [\"10.0.0.0/8\"]", &[&app], ""),
        "trusted_proxies = []",
    );
    for headers in [
        "X-Forwarded-For: 10.1.2.3\r\n",
        "X-Real-IP: 10.1.2.3\r\n",
        "Forwarded: for=10.1.2.3\r\n",
        "X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-For: 10.1.2.4\r\n",
    ] {
        assert_eq!(get_with(&b, "/", headers).status, 403, "{headers}");
    }
    assert_eq!(app.count(), 0);
}

/// A bcrypt hash (`htpasswd -B`) of `password`.
fn bcrypt(password: &str) -> String {
    bcrypt::hash(password, 5).unwrap()
}

/// An argon2id PHC string of `password`.
fn argon2id(password: &str) -> String {
    use base64::Engine as _;
    let params = argon2::Params::new(19456, 2, 1, Some(32)).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = b"brace-test-salt1";
    let mut out = [0u8; 32];
    a.hash_password_into(password.as_bytes(), salt, &mut out)
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m=19456,t=2,p=1${}${}",
        b64.encode(salt),
        b64.encode(out)
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let c = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {c}\r\n")
}

fn write_users(dir: &Path, lines: &[String]) {
    std::fs::write(dir.join("users"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn basic_auth_checks_bcrypt_and_argon2_users_and_keeps_credentials_from_the_app() {
    let app = Upstream::with_mode("app", Mode::Echo);
    let dir = tempfile::tempdir().unwrap();
    write_users(
        dir.path(),
        &[
            "# staff".into(),
            format!("alice:{}", bcrypt("wonder land")),
            format!("bob:{}", argon2id("builder")),
        ],
    );
    let users = dir.path().join("users");
    let body = format!(
        "[[route]]\nname = \"staff\"\npath_prefix = \"/staff/\"\nupstream = \"pool\"\n\
         basic_auth = {{ realm = \"Staff only\", users = {:?} }}\n\n\
         [[route]]\nname = \"passthrough\"\npath_prefix = \"/api/\"\nupstream = \"pool\"\n\
         basic_auth = {{ users = {:?} }}\nforward_authorization = true\n\n\
         [[route]]\nname = \"open\"\nupstream = \"pool\"\n\n\
         [upstream.pool]\nbackends = [\"{}\"]\n{TOUCHY}",
        users.display().to_string(),
        users.display().to_string(),
        app.addr
    );
    let mut b = Brace::start(&body);

    let refused = [
        String::new(),
        basic("alice", "wrong"),
        basic("alice", "wonder land "),
        basic("carol", "wonder land"),
        basic("bob", "wonder land"),
        "Authorization: Basic !!!notbase64\r\n".into(),
        "Authorization: Basic bm9jb2xvbg==\r\n".into(), // "nocolon"
        "Authorization: Bearer d29uZGVyIGxhbmQ=\r\n".into(),
        "Authorization: Basic\r\n".into(),
    ];
    for h in &refused {
        let r = get_with(&b, "/staff/x", h);
        assert_eq!(r.status, 401, "{h}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"Staff only\", charset=\"UTF-8\""),
            "{h}"
        );
        assert_eq!(r.text(), "brace: authentication required\n");
    }
    assert_eq!(app.count(), 0, "a refused request reached the backend");
    assert_eq!(decisions(&b, "staff", "unauthorized"), refused.len() as f64);

    // The right credentials, the scheme in any case; the app never sees them.
    let alice = basic("alice", "wonder land");
    for h in [
        alice.clone(),
        alice.replace("Basic", "bAsIc"),
        basic("bob", "builder"),
    ] {
        let r = get_with(&b, "/staff/x", &h);
        assert_eq!(r.status, 200, "{h}");
        assert!(!app.head().contains("authorization"), "{}", app.head());
    }
    // Repeated requests with the same credentials stay allowed (their check is remembered).
    for _ in 0..20 {
        assert_eq!(get_with(&b, "/staff/x", &alice).status, 200);
    }
    assert_eq!(decisions(&b, "staff", "allowed"), 23.0);
    // With forward_authorization the app gets them; the open route checks nothing.
    assert_eq!(get_with(&b, "/api/x", &alice).status, 200);
    assert!(
        app.head().contains("authorization: basic"),
        "{}",
        app.head()
    );
    assert_eq!(get_with(&b, "/api/x", "").status, 401);
    assert_eq!(get_with(&b, "/open", "").status, 200);
    assert_no_backend_blamed(&b);

    // The users file is read again on reload: alice removed, bob kept.
    write_users(dir.path(), &[format!("bob:{}", argon2id("builder"))]);
    assert_eq!(b.reload().status, 200);
    assert_eq!(get_with(&b, "/staff/x", &alice).status, 401);
    assert_eq!(
        get_with(&b, "/staff/x", &basic("bob", "builder")).status,
        200
    );
    // A broken users file is refused by the reload, and the running users stay.
    write_users(
        dir.path(),
        &["bob:{SHA}fEqNCco3Yq9h5ZUglD3CZJT4lBs=".into()],
    );
    let r = b.reload();
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("SHA-1 password hashes are not accepted"),
        "{}",
        r.text()
    );
    assert_eq!(
        get_with(&b, "/staff/x", &basic("bob", "builder")).status,
        200
    );
    let log = b.stderr();
    assert!(!log.contains("wonder land"), "a password reached the log");
}

#[test]
fn access_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let sha = file("sha", "bob:{SHA}fEqNCco3Yq9h5ZUglD3CZJT4lBs=\n");
    let md5 = file("md5", "bob:$apr1$abc$0123456789abcdefghijkl\n");
    let plain = file("plain", "bob:builder\n");
    let empty = file("empty", "# nobody\n");
    let twice = file(
        "twice",
        &format!("bob:{}\nbob:{}\n", bcrypt("a"), bcrypt("b")),
    );
    let bad_bcrypt = file("bad", "bob:$2y$05$short\n");
    let missing = dir.path().join("missing").display().to_string();
    let cases = [
        (
            "allow = [\"10.0.0.0/33\"]",
            "route[0].allow[0]: invalid network",
        ),
        ("deny = [\"nope\"]", "route[0].deny[0]: invalid network"),
        (
            &*format!("basic_auth = {{ users = {sha:?} }}"),
            "SHA-1 password hashes are not accepted",
        ),
        (
            &*format!("basic_auth = {{ users = {md5:?} }}"),
            "MD5 password hashes are not accepted",
        ),
        (
            &*format!("basic_auth = {{ users = {plain:?} }}"),
            "plain text or DES crypt",
        ),
        (
            &*format!("basic_auth = {{ users = {empty:?} }}"),
            "has no users",
        ),
        (
            &*format!("basic_auth = {{ users = {twice:?} }}"),
            "listed twice",
        ),
        (
            &*format!("basic_auth = {{ users = {bad_bcrypt:?} }}"),
            "invalid bcrypt hash",
        ),
        (
            &*format!("basic_auth = {{ users = {missing:?} }}"),
            "cannot read",
        ),
        (
            &*format!("basic_auth = {{ realm = \"a\\\"b\", users = {sha:?} }}"),
            "route[0].basic_auth.realm",
        ),
        (
            &*format!("basic_auth = {{ user = {sha:?} }}"),
            "unknown field",
        ),
    ];
    for (line, want) in cases {
        let (code, _, err, _) = check(&format!(
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n{line}\n[upstream.u]\nbackends = [\"127.0.0.1:1\"]\n"
        ));
        assert_eq!(code, 1, "{line}");
        assert!(err.contains(want), "{line}: {err}");
    }
}

#[test]
fn a_flood_of_wrong_passwords_is_refused_and_the_right_one_still_gets_in() {
    let app = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), &[format!("alice:{}", bcrypt("wonder land"))]);
    let users = dir.path().join("users").display().to_string();
    let b = Brace::start(&simple_config(
        &format!("basic_auth = {{ users = {users:?} }}"),
        &[&app],
        TOUCHY,
    ));
    // 8 clients on one address, 240 guesses, each a different password (none remembered):
    // checked on the blocking pool, at most 4 at once and 4 waiting from that address.
    let addr = b.addr();
    let guesses: Vec<std::thread::JoinHandle<Vec<u16>>> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                (0..30)
                    .map(|i| {
                        let h = basic("alice", &format!("guess-{t}-{i}"));
                        send(
                            addr,
                            format!("GET / HTTP/1.1\r\nHost: x\r\n{h}Connection: close\r\n\r\n")
                                .as_bytes(),
                        )
                        .map_or(0, |r| r.status)
                    })
                    .collect()
            })
        })
        .collect();
    // The right password, from another address, gets in while the flood is under way.
    let other = format!(
        "X-Forwarded-For: 198.51.100.1\r\n{}",
        basic("alice", "wonder land")
    );
    assert_eq!(get_with(&b, "/", &other).status, 200);
    let statuses: Vec<u16> = guesses
        .into_iter()
        .flat_map(|g| g.join().unwrap())
        .collect();
    assert_eq!(statuses.len(), 240);
    // Each guess is refused: checked (401) or, beyond the flood's own queue, at once (429).
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    assert_eq!(app.count(), 1, "a guess reached the backend");
    let refused = decisions(&b, "main", "unauthorized") + decisions(&b, "main", "throttled");
    assert_eq!(refused, 240.0);
    assert_no_backend_blamed(&b);
}

/// A password-guessing flood from one address waits behind itself: beyond a few checks
/// waiting from that address, its requests get 429 with `Retry-After` at once (counted as
/// `throttled`), while another address's user is checked and let in. Nothing reaches the
/// backend but the right user's request, and no backend is blamed.
#[test]
fn a_guessing_flood_from_one_address_waits_behind_itself() {
    let app = Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    // A costly hash, as real ones are: each check takes a while, so guesses queue.
    write_users(
        dir.path(),
        &[format!(
            "alice:{}",
            bcrypt::hash("wonder land", 10).unwrap()
        )],
    );
    let b = Brace::start(&format!(
        "[[route]]\nname = \"staff\"\nupstream = \"pool\"\n\
         basic_auth = {{ users = {:?} }}\n[upstream.pool]\nbackends = [\"{}\"]\n{TOUCHY}",
        dir.path().join("users").display().to_string(),
        app.addr
    ));
    let addr = b.addr();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(24));
    let guesses: Vec<_> = (0..24)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let head = format!(
                    "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9\r\n{}Connection: close\r\n\r\n",
                    basic("alice", &format!("guess {i}"))
                );
                barrier.wait();
                send(addr, head.as_bytes()).unwrap()
            })
        })
        .collect();
    let answers: Vec<Response> = guesses.into_iter().map(|t| t.join().unwrap()).collect();
    let throttled: Vec<&Response> = answers.iter().filter(|r| r.status == 429).collect();
    assert!(
        answers.iter().all(|r| r.status == 401 || r.status == 429),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(!throttled.is_empty(), "no guess was throttled");
    assert_eq!(throttled[0].header("retry-after"), Some("1"));
    assert_eq!(decisions(&b, "staff", "throttled"), throttled.len() as f64);
    // Another address's user is checked as usual.
    let r = get_with(
        &b,
        "/",
        &format!(
            "X-Forwarded-For: 198.51.100.1\r\n{}",
            basic("alice", "wonder land")
        ),
    );
    assert_eq!(r.status, 200);
    assert_eq!(app.count(), 1);
    assert_no_backend_blamed(&b);
}
