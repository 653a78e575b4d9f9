//! Backends found by DNS, against a real DNS server (dnsmasq) whose answers change during the
//! test: a new address is used, a removed one drained, a failed lookup keeps the last answer,
//! SRV records give ports and weights.

mod support;
use std::time::Duration;
use support::dns::{pair, Dnsmasq};
use support::*;

fn config(dns: &Dnsmasq, backends: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"main\"\nupstream = \"app\"\n\n[upstream.app]\nbackends = [{backends}]\nresolve = \"1s\"\nresolver = \"{}\"\nbalance = \"round_robin\"\n{extra}\n",
        dns.addr()
    )
}

fn served_by(b: &Brace) -> String {
    let r = b.get("/");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-upstream").unwrap_or_default().to_owned()
}

#[test]
fn a_new_address_is_used_and_one_that_left_is_drained() {
    let slow = || {
        script(|head, _| {
            if head.starts_with("get /slow ") {
                std::thread::sleep(Duration::from_secs(5)); // allowed: a slow backend on purpose
            }
            (200, String::new(), b"ok".to_vec())
        })
    };
    let (two, three, port) = pair(slow);
    let dns = Dnsmasq::start("127.0.0.2 app.test\n", &[]);
    let b = Brace::start(&config(&dns, &format!("\"app.test:{port}\""), ""));
    // Resolved before the first request: only .2.
    for _ in 0..4 {
        assert_eq!(served_by(&b), "two");
    }
    // A second address appears: it gets traffic.
    dns.set_hosts("127.0.0.2 app.test\n127.0.0.3 app.test\n");
    wait_for("127.0.0.3 to be used", Duration::from_secs(10), || {
        served_by(&b) == "three"
    });

    // A request in flight to .2 when .2 leaves DNS finishes; no new request goes there.
    let addr = b.addr();
    let before_slow = two.count();
    let slow_req = std::thread::spawn(move || {
        // Round robin: of two requests one lands on .2; both are slow.
        let a = std::thread::spawn(move || get(addr, "/slow"));
        let c = get(addr, "/slow");
        (a.join().unwrap(), c)
    });
    wait_for("a slow request to reach .2", Duration::from_secs(5), || {
        two.count() > before_slow
    });
    dns.set_hosts("127.0.0.3 app.test\n");
    wait_for(
        "127.0.0.2 to leave the pool",
        Duration::from_secs(10),
        || {
            let v = upstreams(&b);
            v["upstreams"]["app"]["backends"]
                .as_array()
                .map_or(0, |a| a.len())
                == 1
        },
    );
    // Removed while the slow request is still at .2 (it takes 5 s; removal within ~2 s).
    assert!(
        !slow_req.is_finished(),
        "the slow request ended before .2 left DNS"
    );
    let before = two.count();
    for _ in 0..6 {
        assert_eq!(served_by(&b), "three");
    }
    assert_eq!(two.count(), before, "a drained backend got a new request");
    let (r1, r2) = slow_req.join().unwrap();
    assert_eq!((r1.status, r2.status), (200, 200));
    // An address leaving DNS is not a failure of that backend.
    assert_no_backend_blamed(&b);

    assert!(b.metric("brace_dns_lookups_total{result=\"ok\",upstream=\"app\"}") >= 3.0);
    let m = b.metrics();
    assert!(
        !m.contains(&format!("backend=\"127.0.0.2:{port}\"")),
        "series of a removed backend remain"
    );
    assert!(m.contains(&format!("backend=\"127.0.0.3:{port}\"")));
    drop(three);
}

#[test]
fn a_failed_lookup_keeps_the_last_answer() {
    let (two, three, port) = pair(|| Mode::Ok);
    let dns = Dnsmasq::start("127.0.0.2 app.test\n127.0.0.3 app.test\n", &[]);
    // An odd spelling of the name (case, a trailing dot) is the same name.
    let b = Brace::start(&config(&dns, &format!("\"App.TEST.:{port}\""), ""));
    dns.stop();
    b.wait_metric(
        "brace_dns_lookups_total{result=\"failed\",upstream=\"app\"}",
        1.0,
    );
    for _ in 0..10 {
        served_by(&b);
    }
    assert!(
        two.count() >= 5 && three.count() >= 5,
        "{} {}",
        two.count(),
        three.count()
    );
    // The server returns with a smaller answer: it is taken.
    dns.set_hosts("127.0.0.3 app.test\n");
    dns.restart();
    wait_for("the new answer", Duration::from_secs(15), || {
        let v = upstreams(&b);
        v["upstreams"]["app"]["backends"]
            .as_array()
            .map_or(0, |a| a.len())
            == 1
    });
    assert_eq!(served_by(&b), "three");
    assert_no_backend_blamed(&b);
}

#[test]
fn a_name_that_does_not_resolve_yet_means_503_until_it_does() {
    let (two, _three, port) = pair(|| Mode::Ok);
    let dns = Dnsmasq::start("127.0.0.9 other.test\n", &[]);
    // brace check does not resolve names that brace resolves while it runs.
    let text = config(&dns, &format!("\"app.test:{port}\""), "");
    let (code, out, err, _) = check(&text);
    assert_eq!(code, 0, "{out}{err}");
    let mut b = Brace::start(&text);
    let r = b.get("/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_no_backend_blamed(&b);
    dns.set_hosts("127.0.0.2 app.test\n");
    wait_for("the name to resolve", Duration::from_secs(10), || {
        b.get("/").status == 200
    });
    assert!(two.count() >= 1);
    // The failure was said as what it was: the name did not exist (not "no AAAA records").
    let log = b.stderr();
    assert!(log.contains("app.test: no such name (NXDOMAIN)"), "{log}");
}

#[test]
fn srv_records_give_ports_and_weights_and_static_backends_stay() {
    let (two, three, _) = pair(|| Mode::Ok);
    let other = Upstream::start("static");
    let dns = Dnsmasq::start(
        "127.0.0.2 b2.app.test\n127.0.0.3 b3.app.test\n",
        &[
            &format!("_http._tcp.app.test,b2.app.test,{},0,3", two.addr.port()),
            &format!("_http._tcp.app.test,b3.app.test,{},0,1", three.addr.port()),
        ],
    );
    let b = Brace::start(&format!(
        "[[route]]\nname = \"main\"\nupstream = \"app\"\n\n[upstream.app]\nbackends = [\"{}\"]\nsrv = \"_http._tcp.app.test\"\nresolver = \"{}\"\nbalance = \"round_robin\"\n",
        other.addr,
        dns.addr()
    ));
    let v = upstreams(&b);
    let backends = v["upstreams"]["app"]["backends"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(backends.len(), 3, "{v}");
    let weight = |addr: std::net::SocketAddr| {
        backends
            .iter()
            .find(|x| x["addr"] == addr.to_string())
            .map(|x| x["weight"].clone())
    };
    assert_eq!(weight(two.addr), Some(serde_json::json!(3)), "{v}");
    assert_eq!(weight(three.addr), Some(serde_json::json!(1)), "{v}");
    assert_eq!(weight(other.addr), Some(serde_json::json!(1)), "{v}");
    for _ in 0..50 {
        served_by(&b);
    }
    // Smooth weighted round robin: 3:1:1 exactly over whole cycles.
    assert_eq!((two.count(), three.count(), other.count()), (30, 10, 10));
}

#[test]
fn bad_dns_settings_are_refused_with_their_key() {
    let cases = [
        (
            "backends = [\"app.test:80\"]\nresolver = \"127.0.0.1:53\"",
            "upstream.app.resolver",
        ),
        (
            "backends = [\"app.test:80\"]\nresolve = \"1s\"\nresolver = \"dns.example\"",
            "upstream.app.resolver",
        ),
        (
            "backends = [\"app.test:80\"]\nresolve = \"10ms\"",
            "upstream.app.resolve",
        ),
        (
            "backends = [\"app test:80\"]\nresolve = \"1s\"",
            "upstream.app.backends[0]",
        ),
        (
            "backends = [\"app.test\"]\nresolve = \"1s\"",
            "upstream.app.backends[0]",
        ),
        (
            "backends = []\nsrv = \"_http._tcp..test\"",
            "upstream.app.srv",
        ),
        ("backends = []", "upstream.app.backends"),
    ];
    for (upstream, want) in cases {
        let text = format!(
            "[[route]]\nname = \"main\"\nupstream = \"app\"\n\n[upstream.app]\n{upstream}\n"
        );
        let (code, _, err, _) = check(&text);
        assert_eq!(code, 1, "{upstream}");
        assert!(err.contains(want), "{upstream}: {err}");
    }
}

#[test]
fn an_address_that_appears_gets_the_pools_slow_start() {
    let (two, three, port) = pair(|| Mode::Ok);
    let dns = Dnsmasq::start("127.0.0.2 app.test\n", &[]);
    let b = Brace::start(&config(
        &dns,
        &format!("\"app.test:{port}\""),
        "slow_start = \"1h\"",
    ));
    // At start every address is there from the beginning: no ramp for .2.
    for _ in 0..4 {
        assert_eq!(served_by(&b), "two");
    }
    dns.set_hosts("127.0.0.2 app.test\n127.0.0.3 app.test\n");
    wait_for("127.0.0.3 in the pool", Duration::from_secs(10), || {
        upstreams(&b)["upstreams"]["app"]["backends"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let before = (two.count(), three.count());
    for _ in 0..400 {
        served_by(&b);
    }
    let newcomer = three.count() - before.1;
    // Round robin would give it 200; at the start of an hour's ramp it gets about a tenth of
    // its turns.
    assert!(
        (1..=100).contains(&newcomer),
        "the new address got {newcomer} of 400"
    );
    assert_eq!(two.count() - before.0 + newcomer, 400);
}

/// Each upstream's names are followed on their own: an upstream whose resolver never answers
/// (a UDP socket nobody reads; each lookup times out after seconds) does not slow another
/// upstream's lookups. Between two of the dead resolver's failed lookups, the healthy
/// upstream (`resolve = "1s"`) looks its name up several times, and follows a change.
#[test]
fn a_resolver_that_never_answers_delays_no_other_upstream() {
    let (two, three, port) = pair(|| Mode::Ok);
    let dns = Dnsmasq::start("127.0.0.2 app.test\n", &[]);
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = Brace::start(&format!(
        "{}[[route]]\nname = \"other\"\npath_prefix = \"/other/\"\nupstream = \"other\"\n\
         [upstream.other]\nbackends = [\"other.test:{port}\"]\nresolve = \"1s\"\nresolver = \"{}\"\n",
        config(&dns, &format!("\"app.test:{port}\""), ""),
        dead.local_addr().unwrap()
    ));
    assert_eq!(served_by(&b), "two");
    let failed = || b.metric("brace_dns_lookups_total{result=\"failed\",upstream=\"other\"}");
    let ok = || b.metric("brace_dns_lookups_total{result=\"ok\",upstream=\"app\"}");
    wait_for(
        "the dead resolver's first failure",
        Duration::from_secs(30),
        || failed() >= 1.0,
    );
    let before = ok();
    wait_for(
        "the dead resolver's second failure",
        Duration::from_secs(30),
        || failed() >= 2.0,
    );
    let during = ok() - before;
    assert!(
        during >= 3.0,
        "app looked up {during} times while one lookup of other timed out"
    );
    dns.set_hosts("127.0.0.3 app.test\n");
    wait_for("127.0.0.3 to be used", Duration::from_secs(10), || {
        served_by(&b) == "three"
    });
    drop((two, three, dead));
}
