use super::*;
use std::time::Duration;

fn cors(origins: &[OriginPattern], credentials: bool) -> Cors {
    Cors::new(&CorsConfig {
        origins: origins.to_vec(),
        methods: vec!["GET".into(), "POST".into()],
        headers: vec!["content-type".into()],
        expose_headers: vec![],
        credentials,
        max_age: Duration::from_secs(600),
    })
}

fn allowed(c: &Cors, origin: &str) -> Option<String> {
    c.allow_origin(&HeaderValue::from_str(origin).ok()?)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[test]
fn origins_match_only_as_configured() {
    let c = cors(
        &[
            OriginPattern::Exact("https://app.example.com".into()),
            OriginPattern::Subdomain {
                scheme: "https://".into(),
                suffix: ".example.org".into(),
            },
        ],
        true,
    );
    assert_eq!(
        allowed(&c, "https://app.example.com").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed(&c, "https://a.b.example.org").as_deref(),
        Some("https://a.b.example.org")
    );
    for hostile in [
        "null",
        "https://app.example.com.evil.test",
        "https://evilapp.example.com",
        "http://app.example.com",
        "HTTPS://APP.EXAMPLE.COM",
        "https://app.example.com:443",
        "https://example.org",
        "https://.example.org",
        "https://evil.test/.example.org",
        "https://evil.test?.example.org",
        "https://x.example.org.evil.test",
        "",
    ] {
        assert_eq!(allowed(&c, hostile), None, "{hostile}");
    }
}

#[test]
fn any_origin_is_a_star_never_an_echo() {
    let c = cors(&[OriginPattern::Any], false);
    assert_eq!(allowed(&c, "https://whoever.test").as_deref(), Some("*"));
}
