//! Certificates made at test time with the `openssl` command (installed by the README's test
//! command): CAs, and certificates signed by them for given names.

use std::path::Path;
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not installed: run the README's test command, which installs it");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name` (name.pem, name.key).
pub fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A certificate `name` (name.pem, name.key) for `san` ("DNS:x,IP:y"), signed by CA `by`,
/// with subject `/CN=name`.
pub fn cert(dir: &Path, name: &str, san: &str, by: &str) {
    cert_with_subject(dir, name, &format!("/CN={name}"), san, by);
}

/// As [`cert`], with the subject given (`/CN=alice/O=Acme`).
pub fn cert_with_subject(dir: &Path, name: &str, subject: &str, san: &str, by: &str) {
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{by}.pem"),
            "-CAkey",
            &format!("{by}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A temporary directory of certificates.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, f: &str) -> std::path::PathBuf {
        self.dir.path().join(f)
    }
    pub fn ca(&self, name: &str) {
        ca(self.dir.path(), name);
    }
    pub fn cert(&self, name: &str, san: &str, by: &str) {
        cert(self.dir.path(), name, san, by);
    }
}
