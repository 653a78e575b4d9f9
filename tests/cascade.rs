//! When one backend falls, the others stay standing (issue 28): backends of finite capacity
//! (`support/capacity_backend.py`: 4 workers of 50 ms, a crash when holding more than 16)
//! under open-loop load (`support/openloop.py`), brace with its defaults in front.
//!
//! Margins are generous: these run in a debug build on a shared 2-core machine. The figures
//! the issue asks for are measured by `bash benches/load/cascade` on a release build.

mod support;

use serde_json::Value;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

const SUPPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support");

/// A capacity backend process; killed when dropped.
struct Capacity {
    child: Child,
    port: u16,
    stats: u16,
}

impl Capacity {
    fn start() -> Capacity {
        Capacity::start_on(0)
    }

    /// A capacity backend on `port` (0: one the OS chooses).
    fn start_on(port: u16) -> Capacity {
        let mut child = Command::new("python3")
            .arg(format!("{SUPPORT}/capacity_backend.py"))
            .args(["--workers", "4", "--service-ms", "50", "--crash-over", "16"])
            .args(["--down", "5", "--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the capacity backend");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 4, "capacity backend said {line:?}");
        Capacity {
            child,
            port: f[1].parse().unwrap(),
            stats: f[3].parse().unwrap(),
        }
    }

    fn stats(&self) -> Value {
        let r = get(([127, 0, 0, 1], self.stats).into(), "/");
        serde_json::from_str(&r.text()).unwrap()
    }

    fn crashes(&self) -> u64 {
        self.stats()["crashes"].as_u64().unwrap()
    }

    fn served(&self) -> u64 {
        self.stats()["served"].as_u64().unwrap()
    }
}

impl Drop for Capacity {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Open-loop load on `path` of brace: `rate` requests/s for `seconds`, a 2 s client deadline;
/// `kill` = (pid, at seconds) kills that process during the run. Returns the JSON summary.
fn load(brace: &Brace, path: &str, rate: u32, seconds: u32, kill: Option<(u32, u32)>) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(format!("{SUPPORT}/openloop.py"))
        .arg("--url")
        .arg(format!("http://{}{path}", brace.addr()))
        .args([
            "--rate",
            &rate.to_string(),
            "--seconds",
            &seconds.to_string(),
        ])
        .args(["--deadline", "2"]);
    if let Some((pid, at)) = kill {
        cmd.args(["--kill-pid", &pid.to_string(), "--kill-at", &at.to_string()]);
    }
    let out = cmd.output().expect("python3 runs the load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pool(backends: &[Capacity], extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("\"127.0.0.1:{}\"", b.port))
        .collect();
    format!(
        "[upstream.app]\nbackends = [{}]\n{extra}\n",
        list.join(", ")
    )
}

fn n(v: &Value, phase: &str, key: &str) -> f64 {
    v[phase][key].as_f64().unwrap_or(0.0)
}

/// Every 503 a client got was a shed answer with Retry-After, not an error.
fn every_503_is_a_shed(v: &Value, phase: &str) {
    let s503 = v[phase]["statuses"]["503"].as_f64().unwrap_or(0.0);
    assert_eq!(
        s503,
        n(v, phase, "shed"),
        "{phase}: 503s without Retry-After: {v}"
    );
}

#[test]
fn when_one_of_three_dies_the_survivors_never_crash() {
    let b: Vec<Capacity> = (0..3).map(|_| Capacity::start()).collect();
    let brace = Brace::start(&format!(
        "[[route]]\nname = \"all\"\nupstream = \"app\"\n\n{}",
        pool(&b, "")
    ));
    let pid = b[2].child.id();
    let v = load(&brace, "/", 200, 10, Some((pid, 4)));
    eprintln!("{v}");
    assert_eq!(b[0].crashes() + b[1].crashes(), 0, "survivors crashed: {v}");
    // Two survivors serve 160/s; the release build keeps 90% of that (the benchmark). Here,
    // in a debug build beside other tests, at least 60%.
    assert!(
        n(&v, "after", "ok_per_s") >= 96.0,
        "goodput after the kill: {v}"
    );
    assert!(
        n(&v, "before", "ok") >= 0.99 * n(&v, "before", "sent"),
        "{v}"
    );
    every_503_is_a_shed(&v, "after");
    // Shedding was reported and counted, and never held against a survivor.
    let m = brace.metrics();
    assert!(metric_sum(&m, "brace_requests_shed_total{") > 0.0, "{v}");
    for s in &b[..2] {
        let label = format!("backend=\"127.0.0.1:{}\"", s.port);
        for line in m
            .lines()
            .filter(|l| l.starts_with("brace_upstream_requests_total{") && l.contains(&label))
        {
            if !line.contains("outcome=\"success\"") {
                assert!(line.ends_with(" 0"), "a survivor was blamed: {line}");
            }
        }
        let limit = brace.metric(&format!(
            "brace_upstream_concurrency_limit{{backend=\"127.0.0.1:{}\",upstream=\"app\"}}",
            s.port
        ));
        assert!((2.0..=16.0).contains(&limit), "limit {limit}");
    }
}

#[test]
fn nothing_is_shed_while_the_backends_keep_up() {
    let b: Vec<Capacity> = (0..3).map(|_| Capacity::start()).collect();
    let brace = Brace::start(&format!(
        "[[route]]\nname = \"all\"\nupstream = \"app\"\n\n{}",
        pool(&b, "")
    ));
    // Half of the 240/s the three can serve.
    let v = load(&brace, "/", 120, 5, None);
    assert_eq!(n(&v, "all", "ok"), n(&v, "all", "sent"), "{v}");
    assert_eq!(
        metric_sum(&brace.metrics(), "brace_requests_shed_total{"),
        0.0
    );
}

#[test]
fn the_critical_route_stays_whole_while_the_sheddable_one_absorbs_the_shedding() {
    let b: Vec<Capacity> = (0..3).map(|_| Capacity::start()).collect();
    let brace = Brace::start(&format!(
        "[[route]]\nname = \"checkout\"\npath_prefix = \"/checkout\"\nupstream = \"app\"\npriority = \"critical\"\n\n\
         [[route]]\nname = \"feed\"\npath_prefix = \"/feed\"\nupstream = \"app\"\npriority = \"sheddable\"\n\n{}",
        pool(&b, "")
    ));
    let pid = b[2].child.id();
    let critical = {
        let brace = &brace;
        std::thread::scope(|s| {
            let feed = s.spawn(move || load(brace, "/feed", 100, 10, None));
            let critical = load(brace, "/checkout", 100, 10, Some((pid, 4)));
            let feed = feed.join().unwrap();
            eprintln!("feed {feed}\ncritical {critical}");
            assert!(
                n(&feed, "all", "shed") > 0.0,
                "the sheddable route shed: {feed}"
            );
            critical
        })
    };
    assert_eq!(b[0].crashes() + b[1].crashes(), 0);
    // The bar is 99% (the benchmark); here 97%, for a debug build on a busy machine.
    let after = n(&critical, "after", "ok") / n(&critical, "after", "sent");
    assert!(
        after >= 0.97,
        "critical success after the kill {after}: {critical}"
    );
    let m = brace.metrics();
    assert!(metric_sum(&m, "brace_requests_shed_total{priority=\"sheddable\"") > 0.0);
}

#[test]
fn a_backend_that_comes_back_gets_its_traffic_back() {
    let mut b: Vec<Capacity> = (0..3).map(|_| Capacity::start()).collect();
    // Ejections of 1 s, so the test need not wait out the default 30 s.
    let brace = Brace::start(&format!(
        "[[route]]\nname = \"all\"\nupstream = \"app\"\n\n{}",
        pool(
            &b,
            "[upstream.app.outlier]\nbase_ejection = \"1s\"\nmax_ejection = \"1s\""
        )
    ));
    let port = b[2].port;
    let pid = b[2].child.id();
    // Killed 2 s into 6 s of load: the two others carry it (and shed what they cannot).
    let v = load(&brace, "/", 150, 6, Some((pid, 2)));
    assert_eq!(b[0].crashes() + b[1].crashes(), 0, "{v}");
    b[2] = Capacity::start_on(port);
    // Back on its port: once its ejection ends it is tried, and its limit grows back.
    std::thread::scope(|s| {
        let brace = &brace;
        let run = s.spawn(move || load(brace, "/", 150, 12, None));
        // Its fair share of 12 s at 150/s is 600: at least a quarter of it, while the load runs.
        wait_for(
            "the returning backend to serve 150 requests",
            Duration::from_secs(60),
            || b[2].served() >= 150,
        );
        run.join().unwrap();
    });
    let limit = brace.metric(&format!(
        "brace_upstream_concurrency_limit{{backend=\"127.0.0.1:{port}\",upstream=\"app\"}}"
    ));
    assert!(
        limit >= 4.0,
        "the returning backend's limit grew back: {limit}"
    );
    assert_eq!(b[0].crashes() + b[1].crashes() + b[2].crashes(), 0);
}

/// A reload while a request waits in the queue loses nothing: the pool's queue and its
/// backends' limits are carried into the new config, and the waiter is admitted when the
/// request ahead of it ends.
#[test]
fn a_reload_in_the_middle_keeps_the_waiting_request() {
    let up = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(1500)));
    let body = |read_timeout: &str| {
        format!(
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"{}\"]\nread_timeout = \"{read_timeout}\"\n\
             [upstream.u.adaptive]\ninitial_limit = 1\nmin_limit = 1\nmax_limit = 1\nqueue_timeout = \"20s\"\nmax_queue = 10\n",
            up.addr
        )
    };
    let brace = Brace::start(&body("30s"));
    std::thread::scope(|s| {
        let first = s.spawn(|| brace.get("/first").status);
        brace.wait_metric(
            &format!(
                "brace_upstream_in_flight{{backend=\"{}\",upstream=\"u\"}}",
                up.addr
            ),
            1.0,
        );
        let second = s.spawn(|| brace.get("/second").status);
        brace.wait_metric("brace_upstream_queue_length{upstream=\"u\"}", 1.0);
        brace.rewrite(&body("31s"));
        assert_eq!(brace.reload().status, 200);
        assert_eq!(first.join().unwrap(), 200);
        assert_eq!(
            second.join().unwrap(),
            200,
            "the waiter was admitted after the reload"
        );
    });
    assert_eq!(up.count(), 2);
    let m = brace.metrics();
    assert_eq!(metric_sum(&m, "brace_requests_shed_total{"), 0.0);
}

/// Traces mark the requests that waited in the queue (`queued`) and those shed (`shed`), each
/// with the upstream, on the request's server span.
#[test]
fn queued_and_shed_requests_are_marked_in_their_traces() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use support::otel::*;
    let c = Collector::start();
    let up = Upstream::with_mode("slow", Mode::Delay(Duration::from_millis(1500)));
    let b = start(
        &format!("http://{}", c.addr),
        "",
        &format!(
            "[[route]]\nname = \"r\"\nupstream = \"u\"\n[upstream.u]\nbackends = [\"{}\"]\n\
             [upstream.u.adaptive]\ninitial_limit = 1\nmin_limit = 1\nmax_limit = 1\nqueue_timeout = \"20s\"\nmax_queue = 1\n",
            up.addr
        ),
    );
    std::thread::scope(|s| {
        let first = s.spawn(|| b.get("/first").status);
        b.wait_metric(
            &format!(
                "brace_upstream_in_flight{{backend=\"{}\",upstream=\"u\"}}",
                up.addr
            ),
            1.0,
        );
        let second = s.spawn(|| b.get("/second").status);
        b.wait_metric("brace_upstream_queue_length{upstream=\"u\"}", 1.0);
        assert_eq!(b.get("/third").status, 503, "the queue is full");
        assert_eq!(first.join().unwrap(), 200);
        assert_eq!(second.join().unwrap(), 200);
    });
    let mut servers = Vec::new();
    wait_for("three server spans", Duration::from_secs(15), || {
        servers = c
            .spans()
            .into_iter()
            .filter(|s| s.kind == SpanKind::Server as i32)
            .collect();
        servers.len() == 3
    });
    let named = |name: &str| -> Vec<String> {
        servers
            .iter()
            .filter(|s| s.events.iter().any(|e| e.name == name))
            .map(|s| {
                let e = s.events.iter().find(|e| e.name == name).unwrap();
                assert_eq!(attr(&e.attributes, "brace.upstream").as_deref(), Some("u"));
                attr(&s.attributes, "url.path").unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(named("queued").len(), 1, "{servers:#?}");
    assert_eq!(named("shed").len(), 1, "{servers:#?}");
}

/// The sum of every sample whose line starts with `prefix`.
fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
