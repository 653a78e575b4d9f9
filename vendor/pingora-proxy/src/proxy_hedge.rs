// brace: hedged requests (not in upstream pingora).
//
// A request without a body, to an HTTP/1 upstream, for which `ProxyHttp::hedge_after` gives a
// delay: its header is sent, and if no response header has come by the delay a second
// attempt (`ProxyHttp::hedge_peer`) is sent on another connection. The first response header
// wins: it is pushed back into its session (`push_back_task`), so the usual exchange
// (`proxy_to_h1_upstream` with `sent`) reads it first and goes on; the other session is
// dropped, which closes its connection. An attempt that fails while the other is still out
// ends alone (`ProxyHttp::hedge_ended`) and the other goes on.

use crate::*;

/// The attempt that goes on after the race: its session, whether its connection was reused,
/// its peer, and whether its request header was sent.
pub(crate) struct Hedged {
    pub session: HttpSessionV1,
    pub reused: bool,
    pub peer: Box<HttpPeer>,
    pub sent: bool,
}

/// The race ended the request: the attempt that failed last (its session, peer, and whether
/// its connection may be reused), for `error_while_proxy`.
pub(crate) struct HedgeFailed {
    pub session: HttpSessionV1,
    pub peer: Box<HttpPeer>,
    pub reuse: bool,
    pub error: Box<Error>,
}

impl<SV, C> HttpProxy<SV, C>
where
    C: custom::Connector,
{
    /// True when a request may be hedged: it has no body and is not an upgrade, and the
    /// client is no custom session or subrequest.
    pub(crate) fn may_hedge(session: &mut Session) -> bool {
        session.subrequest_ctx.is_none()
            && !session.downstream_session.is_custom()
            && !session.downstream_session.is_upgrade_req()
            && session.as_mut().is_body_empty()
    }

    /// The race: `first` (connected to `peer`) gets the request; after `delay` without an
    /// answer, a hedge may join it. Returns the attempt that carries the request on.
    pub(crate) async fn proxy_hedged_h1(
        &self,
        session: &mut Session,
        mut first: HttpSessionV1,
        reused: bool,
        peer: Box<HttpPeer>,
        delay: Duration,
        ctx: &mut SV::CTX,
    ) -> std::result::Result<Hedged, HedgeFailed>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        macro_rules! fail {
            ($s:expr, $peer:expr, $reuse:expr, $e:expr) => {
                return Err(HedgeFailed {
                    session: $s,
                    peer: $peer,
                    reuse: $reuse,
                    error: $e,
                })
            };
        }
        if let Err(e) = self.send_h1_header(session, &mut first, &peer, ctx).await {
            let reuse = e.esource() != &ErrorSource::Upstream;
            fail!(first, peer, reuse, e);
        }
        let on_time = tokio::select! {
            res = first.read_response_task() => Some(res),
            _ = tokio::time::sleep(delay) => None,
        };
        match on_time {
            Some(Ok(task)) => {
                first.push_back_task(task);
                return Ok(Hedged { session: first, reused, peer, sent: true });
            }
            Some(Err(e)) => fail!(first, peer, false, e.into_up()),
            None => {}
        }
        let alone = |first, peer| Ok(Hedged { session: first, reused, peer, sent: true });
        let Some(peer2) = self.inner.hedge_peer(session, ctx).await else {
            return alone(first, peer);
        };
        // The hedge's connection is made while the first attempt may still answer.
        let connected = tokio::select! {
            res = first.read_response_task() => Err(res),
            conn = self.client_upstream.get_http_session(&*peer2) => Ok(conn),
        };
        let (second, reused2) = match connected {
            Err(res) => {
                self.inner.hedge_ended(session, ctx, true, None);
                return match res {
                    Ok(task) => {
                        first.push_back_task(task);
                        alone(first, peer)
                    }
                    Err(e) => fail!(first, peer, false, e.into_up()),
                };
            }
            Ok(Ok((ClientSession::H1(s), reused2))) => (s, reused2),
            Ok(Ok((_, _))) => {
                let e = Error::explain(InternalError, "a hedge's connection is not HTTP/1");
                self.inner.hedge_ended(session, ctx, true, Some(&e));
                return alone(first, peer);
            }
            Ok(Err(mut e)) => {
                e.as_up();
                self.inner.hedge_ended(session, ctx, true, Some(&e));
                return alone(first, peer);
            }
        };
        let mut second = second;
        if let Err(e) = self.send_h1_header(session, &mut second, &peer2, ctx).await {
            self.inner.hedge_ended(session, ctx, true, Some(&e));
            return alone(first, peer);
        }
        // Both are out: the first response header wins; a failure leaves the other alone.
        enum Race {
            First(Result<HttpTask>),
            Second(Result<HttpTask>),
            Client(Box<Error>),
        }
        loop {
            let race = tokio::select! {
                res = first.read_response_task() => Race::First(res),
                res = second.read_response_task() => Race::Second(res),
                res = session.downstream_session.read_body_or_idle(true) => match res {
                    Err(e) => Race::Client(e.into_down()),
                    Ok(_) => continue,
                },
            };
            return match race {
                Race::First(Ok(task)) => {
                    self.inner.hedge_ended(session, ctx, true, None);
                    first.push_back_task(task);
                    alone(first, peer)
                }
                Race::First(Err(e)) => {
                    let e = e.into_up();
                    self.inner.hedge_ended(session, ctx, false, Some(&e));
                    Ok(Hedged { session: second, reused: reused2, peer: peer2, sent: true })
                }
                Race::Second(Ok(task)) => {
                    self.inner.hedge_ended(session, ctx, false, None);
                    second.push_back_task(task);
                    Ok(Hedged { session: second, reused: reused2, peer: peer2, sent: true })
                }
                Race::Second(Err(e)) => {
                    self.inner.hedge_ended(session, ctx, true, Some(&e.into_up()));
                    alone(first, peer)
                }
                Race::Client(e) => {
                    // The client left: the hedge is cancelled, the first attempt reports it.
                    self.inner.hedge_ended(session, ctx, true, None);
                    fail!(first, peer, false, e)
                }
            };
        }
    }

    /// Builds the request header for `client` and sends it; an error from before the send is
    /// not the upstream's (`esource` is not `Upstream`).
    async fn send_h1_header(
        &self,
        session: &mut Session,
        client: &mut HttpSessionV1,
        peer: &HttpPeer,
        ctx: &mut SV::CTX,
    ) -> Result<()>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        client.read_timeout = peer.options.read_timeout;
        client.header_deadline = peer.options.header_deadline;
        client.write_timeout = peer.options.write_timeout;
        let req = self.h1_upstream_request(session, peer, ctx).await?;
        client
            .write_request_header(Box::new(req))
            .await
            .map(|_| ())
            .map_err(|e| e.into_up())
    }
}
