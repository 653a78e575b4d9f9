//! Which requests may be sent to a backend again after it got them: idempotent methods, and
//! POST or PATCH with an `Idempotency-Key` where the upstream opts in.

use super::ctx::Ctx;

/// True when the request may be sent again after the backend got it: an idempotent method,
/// or, where the upstream opts in (`retry.idempotency_key`), a POST or PATCH that carries an
/// `Idempotency-Key` (the IETF httpapi draft), whose backend promises to apply it once.
pub fn replayable(req: &pingora::http::RequestHeader, ctx: &Ctx) -> bool {
    if req.method.is_idempotent() {
        return true;
    }
    let opted_in = ctx.target().is_some_and(|p| p.config.retry.idempotency_key);
    opted_in
        && matches!(req.method, http::Method::POST | http::Method::PATCH)
        && idempotency_key(&req.headers)
}

/// Exactly one `Idempotency-Key` field with a usable key: the draft's quoted string
/// (`"8e03978e"`) or the bare form many APIs take (`8e03978e`), 1 to 255 visible characters.
/// Empty, repeated or list-like keys do not count: a backend could not tell them apart.
fn idempotency_key(h: &http::HeaderMap) -> bool {
    static KEY: http::HeaderName = http::HeaderName::from_static("idempotency-key");
    let mut all = h.get_all(&KEY).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return false;
    };
    let v = v.as_bytes();
    let key = v
        .strip_prefix(b"\"")
        .and_then(|k| k.strip_suffix(b"\""))
        .unwrap_or(v);
    (1..=255).contains(&key.len())
        && key
            .iter()
            .all(|b| (0x21..=0x7e).contains(b) && *b != b',' && *b != b'"')
}

#[cfg(test)]
mod tests {
    use super::idempotency_key;

    fn key(values: &[&str]) -> bool {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append("idempotency-key", http::HeaderValue::from_str(v).unwrap());
        }
        idempotency_key(&h)
    }

    #[test]
    fn usable_idempotency_keys() {
        assert!(key(&["\"8e03978e-40d5-43e8-bc93-6894a57f9324\""]));
        assert!(key(&["8e03978e-40d5"]));
        assert!(!key(&[]));
        assert!(!key(&[""]));
        assert!(!key(&["\"\""]));
        assert!(!key(&["a", "b"]), "two fields");
        assert!(!key(&["a, b"]), "a list");
        assert!(!key(&["a b"]));
        assert!(!key(&[&"k".repeat(256)]));
        assert!(key(&[&"k".repeat(255)]));
    }
}
