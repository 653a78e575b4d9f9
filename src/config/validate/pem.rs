//! Certificates and keys from PEM files: read, parsed and checked to belong together at
//! load, so `brace check` and a reload refuse what a handshake would.

use super::{err, KeyPath, VResult};
use crate::config::model::CertKey;
use std::path::{Path, PathBuf};

/// Every certificate in a PEM file (DER), at least one, each valid X.509.
pub(in crate::config::validate) fn pem_certs(
    p: KeyPath,
    base: &Path,
    file: &str,
) -> VResult<(PathBuf, Vec<Vec<u8>>)> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;
    let path = base.join(file);
    let list: Result<Vec<_>, _> = CertificateDer::pem_file_iter(&path)
        .and_then(|it| it.collect())
        .map(|v: Vec<CertificateDer>| v.into_iter().map(|c| c.to_vec()).collect());
    match list {
        Ok(l)
            if l.iter()
                .any(|c| x509_parser::parse_x509_certificate(c).is_err()) =>
        {
            err(
                p,
                format!("{}: a certificate in it is not valid X.509", path.display()),
            )
        }
        Ok(l) if !l.is_empty() => Ok((path, l)),
        Ok(_) => err(p, format!("{}: no PEM certificate in it", path.display())),
        Err(e) => err(p, format!("{}: {}", path.display(), pem_error(&e))),
    }
}

/// A PEM reading error in words (rustls-pki-types prints the markers as byte arrays).
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "cut short: no \"-----END {}-----\" line",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => {
            format!("malformed PEM line {:?}", String::from_utf8_lossy(line))
        }
        E::Base64Decode(why) => format!("invalid base64 in a PEM section ({why})"),
        E::NoItemsFound => "no PEM item of the expected kind in it".into(),
        other => other.to_string(),
    }
}

/// A certificate chain and its private key, checked to belong together (the key signs for
/// the leaf's public key), so a mismatched pair is refused here, by `brace check` and by a
/// reload, not at a client's handshake.
pub(in crate::config::validate) fn cert_key(
    p: &KeyPath,
    (cert_key_name, key_key_name): (&str, &str),
    base: &Path,
    cert: &str,
    key: &str,
) -> VResult<CertKey> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_file, chain) = pem_certs(p.key(cert_key_name), base, cert)?;
    let key_file = base.join(key);
    let der = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
        (
            p.key(key_key_name),
            format!("{}: {}", key_file.display(), pem_error(&e)),
        )
    })?;
    let certs = chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let provider = rustls::crypto::ring::default_provider();
    if let Err(e) = rustls::sign::CertifiedKey::from_der(certs, der.clone_key(), &provider) {
        return err(
            p.key(key_key_name),
            format!(
                "{} does not go with {}: {e}",
                key_file.display(),
                cert_file.display()
            ),
        );
    }
    Ok(CertKey {
        cert_file,
        key_file,
        chain,
        key: der.secret_der().to_vec(),
    })
}
