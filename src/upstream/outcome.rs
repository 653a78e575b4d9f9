//! What happened to one request sent to a backend. Fed to metrics now; to the breaker and
//! outlier detection in later stages. A closed set, so it is safe as a metric label.

use pingora::{Error, ErrorSource, ErrorType};

crate::label_set! {
    pub enum Outcome {
        /// The backend answered with a status below 500.
        Success => "success",
        /// The backend answered 5xx.
        Http5xx => "http_5xx",
        /// The backend answered 503 (or 429) with a `Retry-After` that brace honoured: it
        /// asked for a pause (`upstream::pause`). Not a failure for breakers and outlier
        /// detection; the adaptive limit and the latency estimate take it as an overload.
        Backpressure => "backpressure",
        /// The backend ended a gRPC call with a `grpc-status` in its upstream's
        /// `grpc_failure` (by default unknown, internal, unavailable, data_loss). Counted as a
        /// 5xx by breakers (`failure_on = ["5xx"]`) and outlier detection.
        GrpcError => "grpc_error",
        /// No connection could be made (refused, unreachable, reset during connect).
        ConnectError => "connect_error",
        /// Connect, read or write timed out.
        Timeout => "timeout",
        /// TLS to the backend: its certificate chain is not trusted (unknown issuer,
        /// expired, not yet valid, revoked, bad signature).
        TlsUntrusted => "tls_untrusted",
        /// TLS to the backend: its certificate is not for the name brace expects (`sni`).
        TlsNameMismatch => "tls_name_mismatch",
        /// TLS to the backend: the handshake did not finish within `connect_timeout`.
        TlsTimeout => "tls_timeout",
        /// TLS to the backend failed otherwise (no common protocol or cipher, a client
        /// certificate refused, not TLS at all).
        TlsError => "tls_error",
        /// The connection broke or the backend spoke bad HTTP after connecting.
        Error => "error",
        /// The client went away before the exchange finished: not the backend's fault.
        ClientAbort => "client_abort",
        /// The client broke the rules while the request was under way (a body over
        /// `client_max_body_size`, a malformed body): brace refused it; not the backend's fault.
        ClientError => "client_error",
        /// The client stopped sending its request body (`client_body_timeout`, or a stall
        /// longer than the upstream's `read_timeout`): answered 408; not the backend's fault.
        ClientTimeout => "client_timeout",
        /// brace ran out of a resource of its own before reaching the backend (open files,
        /// memory, local ports): answered 503; not the backend's fault.
        LocalError => "local_error",
        /// A hedged request's other attempt answered first (or the client left during the
        /// race), and brace closed this one: not the backend's fault.
        Cancelled => "cancelled",
    }
}

impl Outcome {
    /// True for the client's side of the exchange. The one place that decides blame: these
    /// never feed ejection, breakers or health, so no client can knock a backend out.
    pub fn is_client(self) -> bool {
        matches!(
            self,
            Outcome::ClientAbort | Outcome::ClientError | Outcome::ClientTimeout
        )
    }

    /// True when the backend is not to blame: the client's outcomes and brace's own
    /// resource failures never feed ejection, breakers, health or the latency estimate.
    pub fn blames_nobody(self) -> bool {
        self.is_client() || matches!(self, Outcome::LocalError | Outcome::Cancelled)
    }

    /// The outcome of an upgraded (101) connection's end: only a backend that broke the
    /// connection is at fault; a tunnel closed for idling (`upgrade_idle_timeout`) or by
    /// either side in order served its purpose.
    pub fn after_upgrade(self) -> Outcome {
        match self {
            Outcome::Error | Outcome::ConnectError => self,
            o if o.is_client() => o,
            _ => Outcome::Success,
        }
    }

    /// True when a breaker with this `failure_on` counts the outcome as a failure (client
    /// outcomes never are).
    pub fn fails(self, on: &crate::config::FailureOn) -> bool {
        match self {
            Outcome::ConnectError
            | Outcome::TlsUntrusted
            | Outcome::TlsNameMismatch
            | Outcome::TlsError => on.connect_error,
            Outcome::Timeout | Outcome::TlsTimeout => on.timeout,
            Outcome::Error => on.error,
            Outcome::Http5xx | Outcome::GrpcError => on.http_5xx,
            Outcome::Success
            | Outcome::Backpressure
            | Outcome::ClientAbort
            | Outcome::ClientError
            | Outcome::ClientTimeout
            | Outcome::LocalError
            | Outcome::Cancelled => false,
        }
    }

    /// Classifies a finished exchange from the upstream status (if any arrived) and the error.
    pub fn classify(status: Option<u16>, error: Option<&Error>) -> Outcome {
        if let Some(e) = error {
            if let Some(o) = Self::from_error(e) {
                return o;
            }
        }
        match status {
            Some(s) if s >= 500 => Outcome::Http5xx,
            Some(_) => Outcome::Success,
            None => Outcome::Error,
        }
    }

    /// The outcome an error stands for; `None` when the error is not about the exchange.
    pub fn from_error(e: &Error) -> Option<Outcome> {
        use ErrorType::*;
        if e.esource() == &ErrorSource::Downstream {
            return Some(match e.etype() {
                ReadTimedout | HTTPStatus(408) => Outcome::ClientTimeout,
                HTTPStatus(code) if (400..500).contains(code) => Outcome::ClientError,
                _ => Outcome::ClientAbort,
            });
        }
        if local_resource(e) {
            return Some(Outcome::LocalError);
        }
        Some(match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => Outcome::Timeout,
            TLSHandshakeTimedout => Outcome::TlsTimeout,
            TLSHandshakeFailure | InvalidCert => tls_failure(e),
            ConnectRefused | ConnectNoRoute | ConnectError | BindError | ConnectProxyFailure
            | SocketError => Outcome::ConnectError,
            // brace's own 4xx mid-request (413 for a streamed body, 408) is about the client.
            HTTPStatus(408) => Outcome::ClientTimeout,
            HTTPStatus(code) if (400..500).contains(code) => Outcome::ClientError,
            HTTPStatus(_) => return None,
            // TLS 1.3 settles a refused client certificate after the handshake: the backend's
            // alert arrives with the first read.
            _ if format!("{e}").contains("received fatal alert") => Outcome::TlsError,
            _ => Outcome::Error,
        })
    }
}

/// True when the error's root cause is brace's own resource running out: open files
/// (EMFILE, ENFILE), memory or buffers (ENOMEM, ENOBUFS), local ports (EADDRNOTAVAIL).
fn local_resource(e: &Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOMEM: i32 = 12;
    const ENOBUFS: i32 = 105;
    const EADDRNOTAVAIL: i32 = 99;
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|c| matches!(c, EMFILE | ENFILE | ENOMEM | ENOBUFS | EADDRNOTAVAIL))
}

/// What a failed TLS handshake says about the backend, from rustls's error (pingora keeps it
/// as text: "invalid peer certificate: certificate not valid for name ...", "...:
/// UnknownIssuer", "...: certificate expired: ...").
fn tls_failure(e: &Error) -> Outcome {
    let text = format!("{e}");
    if !text.contains("invalid peer certificate") {
        return Outcome::TlsError;
    }
    if text.contains("NotValidForName") || text.contains("certificate not valid for name") {
        Outcome::TlsNameMismatch
    } else {
        Outcome::TlsUntrusted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_falls_on_the_right_side() {
        let status = |c| Error::explain(ErrorType::HTTPStatus(c), "test");
        assert_eq!(
            Outcome::from_error(&status(413)),
            Some(Outcome::ClientError)
        );
        assert_eq!(Outcome::from_error(&status(503)), None);
        let down = Error::new(ErrorType::ReadTimedout).into_down();
        assert_eq!(Outcome::from_error(&down), Some(Outcome::ClientTimeout));
        let down = Error::new(ErrorType::ConnectionClosed).into_down();
        assert_eq!(Outcome::from_error(&down), Some(Outcome::ClientAbort));
        let up = Error::new(ErrorType::ReadTimedout).into_up();
        assert_eq!(Outcome::from_error(&up), Some(Outcome::Timeout));
        // Out of file descriptors while connecting: brace's own trouble, nobody to blame.
        let emfile = Error::because(
            ErrorType::ConnectError,
            "connecting",
            std::io::Error::from_raw_os_error(24),
        )
        .into_up();
        assert_eq!(Outcome::from_error(&emfile), Some(Outcome::LocalError));
        assert!(Outcome::LocalError.blames_nobody() && !Outcome::LocalError.is_client());
        let refused = Error::because(
            ErrorType::ConnectRefused,
            "connecting",
            std::io::Error::from_raw_os_error(111),
        );
        assert_eq!(Outcome::from_error(&refused), Some(Outcome::ConnectError));
        assert!(Outcome::ClientError.is_client() && Outcome::ClientAbort.is_client());
        assert!(Outcome::ALL.iter().filter(|o| o.is_client()).count() == 3);
    }

    /// The attempt a hedge beat is nobody's failure: no breaker counts it, whatever it is
    /// set to count.
    #[test]
    fn a_cancelled_attempt_blames_nobody() {
        let all = crate::config::FailureOn {
            connect_error: true,
            timeout: true,
            error: true,
            http_5xx: true,
        };
        assert!(Outcome::Cancelled.blames_nobody());
        assert!(!Outcome::Cancelled.is_client());
        assert!(!Outcome::Cancelled.fails(&all));
        assert!(Outcome::Timeout.fails(&all));
        assert_eq!(Outcome::Cancelled.as_str(), "cancelled");
    }
}
