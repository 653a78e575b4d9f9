//! What happened to one request sent to a backend. Fed to metrics now; to the breaker and
//! outlier detection in later stages. A closed set, so it is safe as a metric label.

use pingora::{Error, ErrorSource, ErrorType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered with a status below 500.
    Success = 0,
    /// The backend answered 5xx.
    Http5xx,
    /// No connection could be made (refused, unreachable, reset during connect).
    ConnectError,
    /// Connect, read or write timed out.
    Timeout,
    /// The connection broke or the backend spoke bad HTTP after connecting.
    Error,
    /// The client went away before the exchange finished: not the backend's fault.
    ClientAbort,
}

impl Outcome {
    pub const COUNT: usize = 6;
    pub const ALL: [Outcome; Self::COUNT] = [
        Outcome::Success,
        Outcome::Http5xx,
        Outcome::ConnectError,
        Outcome::Timeout,
        Outcome::Error,
        Outcome::ClientAbort,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Http5xx => "http_5xx",
            Outcome::ConnectError => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::ClientAbort => "client_abort",
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
            return Some(Outcome::ClientAbort);
        }
        Some(match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
                Outcome::Timeout
            }
            ConnectRefused | ConnectNoRoute | ConnectError | BindError | ConnectProxyFailure
            | SocketError | TLSHandshakeFailure => Outcome::ConnectError,
            HTTPStatus(_) => return None,
            _ => Outcome::Error,
        })
    }
}
