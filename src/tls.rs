//! Client-facing TLS: each `[[server.tls]]` listener's certificates, chosen by the client's
//! SNI name, and its client-certificate authentication, both replaced in place by a reload.
//!
//! pingora builds one rustls `ServerConfig` per listener at start. brace gives it a
//! certificate resolver and a client-certificate verifier that read the listener's current
//! [`Certs`] and [`ClientAuth`] at each handshake. A reload builds the new ones first (a
//! broken or mismatched pair fails the reload, which keeps what is served), then stores them;
//! an open connection keeps the certificate it was handed, so nothing is dropped.

use crate::config::{ClientAuthMode, TlsConfig};
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// One TLS listener: what it serves now.
pub struct Listener {
    pub listen: SocketAddr,
    certs: ArcSwap<Certs>,
    clients: ArcSwap<ClientAuth>,
}

/// A listener's certificates by the names they are valid for.
struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com`, under `example.com`: it covers one label, as RFC 6125 §6.4.3 says.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first certificate: for a client that sends no SNI or names none of them.
    default: Arc<CertifiedKey>,
    /// Each certificate's subject and expiry (Unix seconds), for the metric.
    expiry: Vec<(String, i64)>,
}

/// Whether a client certificate is asked for, what it must chain to, and where its subject
/// goes upstream.
struct ClientAuth {
    verifier: Arc<dyn ClientCertVerifier>,
    required: bool,
    header: http::HeaderName,
}

/// What a listener will serve, built from its config; in force once [`Listener::apply`]d.
pub struct Loaded {
    certs: Certs,
    clients: ClientAuth,
}

/// What the handshake made of the client's certificate, attached to its connection
/// (pingora's `SslDigest` extension). As nginx does, a missing or untrusted certificate does
/// not fail the handshake: each request on the connection is answered 400 saying why, counted
/// and logged like any refused request, rather than a TLS alert nobody sees.
#[derive(Debug)]
pub enum ClientCert {
    Verified {
        /// The subject as RFC 4514 writes it (`CN=alice,O=Acme`), as nginx's
        /// `$ssl_client_s_dn`.
        subject: http::HeaderValue,
        /// The listener's `client_cert_header` at the time of the handshake.
        header: http::HeaderName,
    },
    /// None was presented and the listener requires one.
    Missing,
    /// One was presented and does not verify against `client_ca` (the reason, for the log).
    Untrusted(String),
}

/// Builds what `cfg` says to serve; an error names the listener. The pairs were checked at
/// validation; this fails only if a key cannot be used for signing.
pub fn load(cfg: &TlsConfig) -> Result<Loaded, String> {
    build(cfg).map_err(|e| format!("server.tls {}: {e}", cfg.listen))
}

fn build(cfg: &TlsConfig) -> Result<Loaded, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut expiry: Vec<(String, i64)> = Vec::new();
    let mut default = None;
    for ck in &cfg.certs {
        let chain: Vec<_> = ck
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.clone()))
            .collect();
        let key = PrivateKeyDer::try_from(ck.key.clone())
            .map_err(|e| format!("{}: {e}", ck.key_file.display()))?;
        let certified = Arc::new(
            CertifiedKey::from_der(chain, key, &provider)
                .map_err(|e| format!("{}: {e}", ck.cert_file.display()))?,
        );
        let (_, leaf) = x509_parser::parse_x509_certificate(&ck.chain[0])
            .map_err(|e| format!("{}: {e}", ck.cert_file.display()))?;
        // The first certificate to claim a name serves it.
        for name in names(&leaf) {
            match name.strip_prefix("*.") {
                Some(parent) => wildcard.entry(parent.to_owned()),
                None => exact.entry(name),
            }
            .or_insert_with(|| certified.clone());
        }
        let subject = common_name(&leaf);
        let not_after = leaf.validity().not_after.timestamp();
        match expiry.iter_mut().find(|(s, _)| *s == subject) {
            // Two certificates for one subject (RSA and ECDSA): the earlier expiry matters.
            Some((_, t)) => *t = (*t).min(not_after),
            None => expiry.push((subject, not_after)),
        }
        default.get_or_insert(certified);
    }
    let default = default.ok_or("no certificate")?;
    let verifier = match (&cfg.client_auth, &cfg.client_ca) {
        (ClientAuthMode::None, _) | (_, None) => WebPkiClientVerifier::no_client_auth(),
        (_, Some((file, roots))) => {
            let mut store = rustls::RootCertStore::empty();
            for r in roots {
                store
                    .add(CertificateDer::from(r.clone()))
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", file.display()))?
        }
    };
    let header = http::HeaderName::from_bytes(cfg.client_cert_header.as_bytes())
        .map_err(|e| format!("client_cert_header: {e}"))?;
    Ok(Loaded {
        certs: Certs {
            exact,
            wildcard,
            default,
            expiry,
        },
        clients: ClientAuth {
            verifier,
            required: cfg.client_auth == ClientAuthMode::Required,
            header,
        },
    })
}

impl Listener {
    pub fn new(listen: SocketAddr, loaded: Loaded, metrics: &Metrics) -> Arc<Listener> {
        let l = Listener {
            listen,
            certs: ArcSwap::from_pointee(loaded.certs),
            clients: ArcSwap::from_pointee(loaded.clients),
        };
        l.record_expiry(metrics, &[]);
        Arc::new(l)
    }

    /// Serves `loaded` from the next handshake on.
    pub fn apply(&self, loaded: Loaded, metrics: &Metrics) {
        let old = self.certs.swap(Arc::new(loaded.certs));
        self.clients.store(Arc::new(loaded.clients));
        self.record_expiry(metrics, &old.expiry);
    }

    /// `brace_tls_certificate_expiry_timestamp_seconds` for what is served now; the series of
    /// certificates no longer served are removed.
    fn record_expiry(&self, metrics: &Metrics, before: &[(String, i64)]) {
        let listener = self.listen.to_string();
        let g = &metrics.tls_certificate_expiry;
        for (subject, _) in before {
            let _ = g.remove_label_values(&[&listener, subject]);
        }
        for (subject, t) in &self.certs.load().expiry {
            g.with_label_values(&[&listener, subject]).set(*t);
        }
    }

    /// pingora's settings for this listener: HTTP/2 offered by ALPN, the certificate and
    /// client certificate decided by this listener at each handshake.
    pub fn settings(
        self: &Arc<Self>,
    ) -> Result<pingora::listeners::tls::TlsSettings, pingora::BError> {
        let mut s = pingora::listeners::tls::TlsSettings::with_callbacks(Box::new(Handshake(
            self.clone(),
        )))?;
        s.set_cert_resolver(Arc::new(Resolver(self.clone())));
        s.set_client_cert_verifier(Arc::new(Verifier(self.clone())));
        s.enable_h2();
        Ok(s)
    }
}

/// The names a certificate serves: its DNS subject alternative names, else (an old-style
/// certificate without them) its common name; lowercase.
fn names(c: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let san: Vec<String> = c
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if !san.is_empty() {
        return san;
    }
    c.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn common_name(c: &x509_parser::certificate::X509Certificate<'_>) -> String {
    c.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| c.subject().to_string(), str::to_owned)
}

/// A distinguished name as RFC 4514 writes it: the last RDN first, `,` between RDNs, `+`
/// inside one, special characters escaped with `\`, and every byte outside printable ASCII
/// as `\XX`, so the value is always a valid header value.
fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    use std::fmt::Write as _;
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for (i, rdn) in name
        .iter()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match x509_parser::objects::oid2abbrev(attr.attr_type(), registry) {
                Ok(abbrev) => out.push_str(abbrev),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            let value = attr.as_str().map(str::as_bytes).unwrap_or(attr.as_slice());
            let last = value.len().saturating_sub(1);
            for (k, &b) in value.iter().enumerate() {
                let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
                    || (k == 0 && matches!(b, b' ' | b'#'))
                    || (k == last && b == b' ');
                if special {
                    out.push('\\');
                    out.push(b as char);
                } else if (0x20..0x7f).contains(&b) {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "\\{b:02X}");
                }
            }
        }
    }
    out
}

#[derive(Debug)]
struct Resolver(Arc<Listener>);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls listener {}", self.listen)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.0.certs.load();
        let Some(sni) = hello.server_name() else {
            return Some(certs.default.clone());
        };
        let sni = sni.to_ascii_lowercase();
        let found = certs.exact.get(&sni).or_else(|| {
            sni.split_once('.')
                .and_then(|(_, parent)| certs.wildcard.get(parent))
        });
        Some(found.unwrap_or(&certs.default).clone())
    }
}

#[derive(Debug)]
struct Verifier(Arc<Listener>);

/// Asks for a certificate when the listener's current settings say so, and checks that the
/// client holds its key (the handshake's signatures, by the listener's verifier). Whether the
/// chain is trusted is decided once the handshake completes ([`Handshake`]), so that a client
/// without a good certificate gets a 400 that says why. The hint of acceptable roots is left
/// empty (it would have to outlive a reload); TLS lets a client then send any certificate.
impl ClientCertVerifier for Verifier {
    fn offer_client_auth(&self) -> bool {
        self.0.clients.load().verifier.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let c = self.0.clients.load();
        c.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let c = self.0.clients.load();
        c.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clients.load().verifier.supported_verify_schemes()
    }
}

/// After a handshake: the client's certificate chain is verified against the listener's
/// `client_ca` and the verdict becomes a [`ClientCert`] on the connection.
struct Handshake(Arc<Listener>);

#[async_trait::async_trait]
impl pingora::listeners::TlsAccept for Handshake {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let c = self.0.clients.load();
        let chain = tls.peer_cert_chain_der().unwrap_or_default();
        let verdict = match chain.split_first() {
            None if c.required => ClientCert::Missing,
            None => return None,
            Some((leaf, rest)) => verdict(&c, leaf, rest),
        };
        Some(Arc::new(verdict))
    }
}

fn verdict(c: &ClientAuth, leaf: &CertificateDer<'_>, rest: &[CertificateDer<'_>]) -> ClientCert {
    if let Err(e) = c.verifier.verify_client_cert(leaf, rest, UnixTime::now()) {
        return ClientCert::Untrusted(e.to_string());
    }
    let subject = x509_parser::parse_x509_certificate(leaf)
        .ok()
        .and_then(|(_, cert)| http::HeaderValue::from_str(&rfc4514(cert.subject())).ok());
    match subject {
        Some(subject) => ClientCert::Verified {
            subject,
            header: c.header.clone(),
        },
        None => ClientCert::Untrusted("the certificate's subject cannot be read".into()),
    }
}

/// The client certificate verified on this request's connection, if any.
pub fn client_cert(digest: Option<&pingora::protocols::Digest>) -> Option<&ClientCert> {
    digest?.ssl_digest.as_ref()?.extension.get::<ClientCert>()
}
