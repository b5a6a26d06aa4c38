//! Outbound HTTP with a hard timeout and no redirects: the one way the worker calls
//! forward targets and provider REST APIs.

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use phone_agent_core::carrier::CarrierRequest;
use phone_agent_core::delivery::Outcome;
use phone_agent_core::limits::{Prefix, REPLY_BODY_LIMIT};
use std::time::Duration;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

/// A response with at most the first `max_body` bytes of its body (the rest is never read).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// A body we parse that was cut at the cap is unreadable, and refused as such.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// How the attempt ended, for the retry policy: the status, and the first of the
    /// `retry_after` headers present as the wait it asks for.
    pub fn outcome(&self, retry_after: &[&str]) -> Outcome {
        Outcome::Status {
            code: self.status,
            retry_after: retry_after
                .iter()
                .find_map(|name| self.header(name))
                .map(str::to_owned),
        }
    }
}

/// Why no response was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing (complete) came back within the timeout.
    Timeout,
    /// The request could not be made or the connection failed.
    Network(String),
}

impl Failure {
    /// How the attempt ended, for the retry policy.
    pub fn outcome(&self) -> Outcome {
        match self {
            Failure::Timeout => Outcome::Timeout,
            Failure::Network(_) => Outcome::NetworkError,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => write!(f, "timed out"),
            Failure::Network(e) => write!(f, "network error: {e}"),
        }
    }
}

/// Sends a carrier's call-control request (dial, transfer, hang-up) as its adapter in the
/// core built it: the one way the worker drives a carrier's REST API.
pub async fn carrier(request: &CarrierRequest, timeout: Duration) -> Result<Reply, Failure> {
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    send(
        Method::Post,
        &request.url,
        &headers,
        Some(request.body.as_bytes()),
        timeout,
        REPLY_BODY_LIMIT,
    )
    .await
}

/// Sends a carrier call-control request (hang-up, transfer): the one executor of the requests
/// the core's carrier adapters build. `Err` says what went wrong, for the log or call history.
pub async fn control(request: &CarrierRequest, timeout: Duration) -> Result<(), String> {
    match carrier(request, timeout).await {
        Ok(reply) if (200..300).contains(&reply.status) => Ok(()),
        Ok(reply) => Err(format!("refused with HTTP {}", reply.status)),
        Err(e) => Err(format!("failed: {e}")),
    }
}

/// Sends a request and reads the response within `timeout`, keeping at most `max_body` bytes
/// of its body ([`REPLY_BODY_LIMIT`] unless only an excerpt is kept): once they are in, the
/// stream is cancelled, so a target answering gigabytes costs us no more than that. Redirects
/// are not followed (a 3xx is returned as is), so a target cannot bounce us to an address we
/// would refuse.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
    max_body: usize,
) -> Result<Reply, Failure> {
    let request = build(method, url, headers, body)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let exchange = async {
        let mut response = Fetch::Request(request)
            .send_with_signal(&signal)
            .await
            .map_err(|e| Failure::Network(e.to_string()))?;
        let headers: Vec<(String, String)> = response.headers().entries().collect();
        let declared = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok());
        let mut prefix = Prefix::sized(max_body, declared);
        // No body (204, HEAD) is not streamable and reads as empty.
        if let Ok(mut stream) = response.stream() {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Failure::Network(e.to_string()))?;
                if !prefix.push(&chunk) {
                    // Dropping the stream cancels it: the rest is never downloaded.
                    break;
                }
            }
        }
        Ok(Reply {
            status: response.status_code(),
            headers,
            body: prefix.into_bytes(),
        })
    };
    let timer = Delay::from(timeout);
    futures_util::pin_mut!(exchange);
    match select(exchange, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            controller.abort();
            Err(Failure::Timeout)
        }
    }
}

/// The fetch request for [`send`] and [`open_stream`]: redirects are never followed.
fn build(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Request, Failure> {
    let request_headers = Headers::new();
    for (name, value) in headers {
        request_headers
            .set(name, value)
            .map_err(|e| Failure::Network(format!("header {name}: {e}")))?;
    }
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(request_headers)
        .with_redirect(RequestRedirect::Manual);
    if let Some(body) = body {
        init.with_body(Some(js_sys::Uint8Array::from(body).into()));
    }
    let request =
        Request::new_with_init(url, &init).map_err(|e| Failure::Network(e.to_string()))?;
    Ok(request)
}

/// A response whose body is read as it arrives (SSE, chunked audio).
pub struct Streaming {
    pub status: u16,
    pub body: worker::ByteStream,
}

/// Sends a request and returns as soon as the response head arrives (within `timeout`), with
/// the body left to stream. The caller owns the `AbortController` whose `signal` is given:
/// aborting it cancels the request, also while the body streams, so the provider sees the
/// connection go away (barge-in). Redirects are not followed, as in [`send`].
pub async fn open_stream(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    signal: &worker::AbortSignal,
    timeout: Duration,
) -> Result<Streaming, Failure> {
    let request = build(method, url, headers, body)?;
    let head = async {
        let mut response = Fetch::Request(request)
            .send_with_signal(signal)
            .await
            .map_err(|e| Failure::Network(e.to_string()))?;
        let body = response
            .stream()
            .map_err(|e| Failure::Network(e.to_string()))?;
        Ok(Streaming {
            status: response.status_code(),
            body,
        })
    };
    let timer = Delay::from(timeout);
    futures_util::pin_mut!(head);
    match select(head, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(Failure::Timeout),
    }
}
