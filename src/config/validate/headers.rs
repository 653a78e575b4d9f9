//! Validation of `request_headers` / `response_headers = { set = { NAME = "value" }, remove =
//! [NAME] }`: header names, no framing or connection fields, values of visible characters
//! with only the known `{variables}`.

use super::*;
use crate::config::headers::{HeaderRules, Part, Template, FORBIDDEN};

pub(super) fn validate_rules(r: Option<FileHeaderRules>, p: &KeyPath) -> VResult<HeaderRules> {
    let Some(FileHeaderRules { set, remove }) = r else {
        return Ok(HeaderRules::default());
    };
    let name = |at: KeyPath, n: &str| -> VResult<http::HeaderName> {
        let Ok(h) = http::HeaderName::from_bytes(n.as_bytes()) else {
            return err(at, format!("\"{n}\" is not a header name"));
        };
        if FORBIDDEN.contains(&h.as_str()) {
            return err(
                at,
                format!("\"{n}\" frames the message or the connection: brace writes it itself"),
            );
        }
        Ok(h)
    };
    let mut out = HeaderRules::default();
    for (n, v) in set {
        let at = p.key("set").key(&n);
        let h = name(at.clone(), &n)?;
        out.set.push((h, template(&v).map_err(|why| (at, why))?));
    }
    for (i, n) in remove.iter().enumerate() {
        out.remove.push(name(p.key("remove").index(i), n)?);
    }
    Ok(out)
}

fn template(v: &str) -> Result<Template, String> {
    if !v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(format!("{v:?}: a value is visible ASCII, spaces and tabs"));
    }
    let mut parts = Vec::new();
    let mut rest = v;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_owned()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("{v:?}: a '{{' without its '}}'"));
        };
        parts.push(match &rest[open + 1..open + close] {
            "client_ip" => Part::ClientIp,
            "request_id" => Part::RequestId,
            "host" => Part::Host,
            "scheme" => Part::Scheme,
            other => {
                return Err(format!(
                    "{{{other}}} is not a variable: {{client_ip}}, {{request_id}}, {{host}} or {{scheme}}"
                ))
            }
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(Template(parts))
}
