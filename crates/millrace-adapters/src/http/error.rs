//! [`HttpError`]: every way an HTTP request of this adapter can fail.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use reqwest::{StatusCode, Url};

/// The longest body or JSON excerpt kept in an error, in bytes (cut at a char boundary).
const SNIPPET_MAX: usize = 200;

/// An HTTP request (or the decoding of its response) failed.
///
/// [`is_transient`](HttpError::is_transient) tells whether trying again may help: server errors
/// (5xx, plus `408 Request Timeout` and `429 Too Many Requests`), timeouts and broken
/// connections are transient and are retried by [`paginated`](super::paginated) and
/// [`fetch_json`](super::fetch_json) per their [`HttpOptions`](super::HttpOptions); every other
/// error (a 4xx such as 404, a body that is not the expected JSON) is permanent and reported at
/// once.
///
/// ```
/// use millrace::adapters::http::HttpError;
/// use millrace::adapters::http::reqwest::{StatusCode, Url};
///
/// let err = HttpError::Status {
///     url: Url::parse("http://127.0.0.1:8080/items/7").unwrap(),
///     status: StatusCode::NOT_FOUND,
///     body_snippet: "no such item".to_owned(),
/// };
/// assert!(!err.is_transient());
/// assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
/// assert_eq!(
///     err.to_string(),
///     "HTTP 404 Not Found from http://127.0.0.1:8080/items/7: \"no such item\"; \
///      the request was rejected (a 4xx is never retried): check the URL, its parameters \
///      and the credentials"
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HttpError {
    /// The server answered with a status that is not a success (2xx).
    Status {
        /// The requested URL.
        url: Url,
        /// The status received.
        status: StatusCode,
        /// The start of the response body (at most 200 bytes, lossy UTF-8).
        body_snippet: String,
    },
    /// No complete response (headers and body) arrived within the per-request timeout.
    Timeout {
        /// The requested URL.
        url: Url,
        /// The per-request timeout that elapsed.
        after: Duration,
    },
    /// The connection could not be established (refused, DNS, TLS handshake).
    Connect {
        /// The requested URL.
        url: Url,
        /// The client's error.
        source: reqwest::Error,
    },
    /// The connection broke during the exchange: closed or reset before the response was
    /// complete, or a body that could not be read.
    Transport {
        /// The requested URL.
        url: Url,
        /// The client's error.
        source: reqwest::Error,
    },
    /// The response body is not the JSON the caller expected.
    Decode {
        /// The requested URL.
        url: Url,
        /// The start of the offending JSON or body (at most 200 bytes).
        snippet: String,
        /// The decoder's error.
        source: serde_json::Error,
    },
    /// A page of a [`paginated`](super::paginated) source does not have the shape its
    /// [`PageStyle`](super::PageStyle) describes (no item array where expected, a cursor that is
    /// neither a string nor a number, an unparsable `Link` target).
    Page {
        /// The page's URL.
        url: Url,
        /// What is wrong, in words.
        reason: String,
    },
    /// A URL given to this adapter could not be parsed.
    InvalidUrl {
        /// The text that was given.
        url: String,
        /// The parser's error.
        source: url::ParseError,
    },
    /// The request could not be built (for example an invalid header value set by the closure
    /// that makes requests).
    Build {
        /// The client's error.
        source: reqwest::Error,
    },
}

impl HttpError {
    /// Whether trying the same request again may succeed: 5xx, 408 and 429 statuses, timeouts,
    /// failed connects and broken connections. A redirect loop, a 4xx, a decoding error, a bad
    /// page shape or a bad URL are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => is_transient_status(*status),
            HttpError::Timeout { .. } | HttpError::Connect { .. } => true,
            HttpError::Transport { source, .. } => !source.is_redirect(),
            HttpError::Decode { .. }
            | HttpError::Page { .. }
            | HttpError::InvalidUrl { .. }
            | HttpError::Build { .. } => false,
        }
    }

    /// The URL of the failed request, where there is one.
    pub fn url(&self) -> Option<&Url> {
        match self {
            HttpError::Status { url, .. }
            | HttpError::Timeout { url, .. }
            | HttpError::Connect { url, .. }
            | HttpError::Transport { url, .. }
            | HttpError::Decode { url, .. }
            | HttpError::Page { url, .. } => Some(url),
            HttpError::Build { source } => source.url(),
            HttpError::InvalidUrl { .. } => None,
        }
    }

    /// The HTTP status, for [`HttpError::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Classifies a client error for a request to `url` made with `timeout`.
    pub(crate) fn from_reqwest(url: &Url, source: reqwest::Error, timeout: Duration) -> Self {
        let url = url.clone();
        if source.is_timeout() {
            HttpError::Timeout {
                url,
                after: timeout,
            }
        } else if source.is_connect() {
            HttpError::Connect { url, source }
        } else if source.is_builder() {
            HttpError::Build { source }
        } else {
            HttpError::Transport { url, source }
        }
    }

    pub(crate) fn decode(url: &Url, text: &[u8], source: serde_json::Error) -> Self {
        HttpError::Decode {
            url: url.clone(),
            snippet: snippet(text),
            source,
        }
    }
}

/// 5xx, `408 Request Timeout` and `429 Too Many Requests`.
///
/// The last two are 4xx by number but say "the same request may work later"; treating them as
/// permanent would turn a server's back-pressure into lost items.
fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The first [`SNIPPET_MAX`] bytes of `bytes`, lossy UTF-8, cut at a char boundary.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SNIPPET_MAX * 2)]);
    let text = text.trim();
    if text.len() <= SNIPPET_MAX {
        return text.to_owned();
    }
    let mut end = SNIPPET_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status {
                url,
                status,
                body_snippet,
            } => {
                write!(f, "HTTP {status} from {url}: {body_snippet:?}; ")?;
                if is_transient_status(*status) {
                    f.write_str(
                        "the server failed or is overloaded (transient, retried per the \
                         HttpOptions): retry later, raise the retry budget or check the \
                         service's health",
                    )
                } else {
                    f.write_str(
                        "the request was rejected (a 4xx is never retried): check the URL, \
                         its parameters and the credentials",
                    )
                }
            }
            HttpError::Timeout { url, after } => write!(
                f,
                "no complete response from {url} within {after:?} (transient, retried): raise \
                 the timeout with `HttpOptions::timeout` or check the service's latency"
            ),
            HttpError::Connect { url, source } => write!(
                f,
                "could not connect to {url}: {source} (transient, retried): check that the \
                 service is running and that host and port are right"
            ),
            HttpError::Transport { url, source } => write!(
                f,
                "the connection to {url} broke before the response was complete: {source} \
                 (transient, retried): the server closed or reset it; check its logs if this \
                 persists"
            ),
            HttpError::Decode {
                url,
                snippet,
                source,
            } => write!(
                f,
                "the response from {url} is not the expected JSON: {source}, in {snippet:?}: \
                 check that the item type matches the service's schema"
            ),
            HttpError::Page { url, reason } => write!(
                f,
                "the page at {url} does not have the expected shape: {reason}: check the \
                 PageStyle (parameter name and JSON pointers) against a response of the service"
            ),
            HttpError::InvalidUrl { url, source } => write!(
                f,
                "{url:?} is not a valid URL: {source}: pass an absolute http(s) URL such as \
                 \"http://127.0.0.1:8080/items\""
            ),
            HttpError::Build { source } => write!(
                f,
                "could not build the request: {source}: check the closure that makes requests \
                 (header values, URL)"
            ),
        }
    }
}

impl StdError for HttpError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            HttpError::Connect { source, .. }
            | HttpError::Transport { source, .. }
            | HttpError::Build { source } => Some(source),
            HttpError::Decode { source, .. } => Some(source),
            HttpError::InvalidUrl { source, .. } => Some(source),
            HttpError::Status { .. } | HttpError::Timeout { .. } | HttpError::Page { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_cuts_at_char_boundary() {
        let long = "é".repeat(150); // 300 bytes
        let s = snippet(long.as_bytes());
        assert!(s.ends_with('…'));
        assert_eq!(s.chars().count(), 101);
        assert_eq!(snippet(b"  short \n"), "short");
    }

    #[test]
    fn transient_statuses() {
        assert!(is_transient_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_transient_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_transient_status(StatusCode::NOT_FOUND));
        assert!(!is_transient_status(StatusCode::BAD_REQUEST));
    }
}
