//! `[[route]]` and `[rate_limit.NAME]` validation, in process.

use super::super::tests_support::{load, refused, text};

#[test]
fn a_route_names_what_exists_and_a_prefix_that_can_match() {
    refused(&[
        (
            "[[route]]\nname = \"r\"\nupstream = \"nope\"\n".into(),
            &["route[0].upstream", "not defined"],
        ),
        (
            text("", "rate_limits = [\"none\"]", ""),
            &["route[0].rate_limits[0]", "not defined (defined: none)"],
        ),
        (
            text("", "path_prefix = \"api\"", ""),
            &["route[0].path_prefix", "must start with '/'"],
        ),
        (
            text("", "path_prefix = \"/a?b\"", ""),
            &["the query is not part of the path"],
        ),
        (
            text("", "path_prefix = \"/a/../b\"", ""),
            &["route[0].path_prefix", "can never match"],
        ),
        (
            "[[route]]\nname = \"-bad\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"127.0.0.1:1\"]\n"
                .into(),
            &["route[0].name", "invalid route name"],
        ),
    ]);
}

#[test]
fn route_caching_needs_the_shared_store() {
    refused(&[(
        text("", "[route.cache]", ""),
        &["route[0].cache", "add a [cache] section"],
    )]);
    let c = load(&text("[cache]", "[route.cache]", "")).unwrap();
    assert!(c.routes[0].cache.is_some());
}

#[test]
fn hosts_are_host_names_and_wildcards() {
    refused(&[(
        text("", "hosts = [\"not a host\"]", ""),
        &["route[0].hosts[0]"],
    )]);
    let c = load(&text(
        "",
        "hosts = [\"A.Example.com\", \"*.example.org\"]",
        "",
    ))
    .unwrap();
    assert_eq!(c.routes[0].hosts.len(), 2);
}

#[test]
fn route_defaults_are_what_the_readme_says() {
    let c = load(&text("", "", "")).unwrap();
    let r = &c.routes[0];
    assert_eq!(r.path_prefix, "/");
    assert_eq!(r.timeout, std::time::Duration::from_secs(30));
    assert!(!r.strip_prefix && r.hedge.is_none() && r.cache.is_none());
}

#[test]
fn a_rate_limit_is_named_by_a_route_and_has_a_rate() {
    let limit = "[rate_limit.l]\nkey = \"client_ip\"\nrate = 0\nburst = 1";
    refused(&[(text(limit, "rate_limits = [\"l\"]", ""), &["rate_limit.l"])]);
    let ok = "[rate_limit.l]\nkey = \"client_ip\"\nrate = 5\nburst = 10";
    let c = load(&text(ok, "rate_limits = [\"l\"]", "")).unwrap();
    assert_eq!(c.routes[0].rate_limits, ["l"]);
}
