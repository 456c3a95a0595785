//! A blocking HTTP client over `wasi:http/outgoing-handler` for molten skills.
//!
//! The host decides what a request may reach and adds secrets itself; a refused request comes
//! back as an [`Error`] naming the host's reason, which a skill can pass on to the model.

pub mod graph;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

/// A response with its whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The URL or a header cannot be sent.
    Invalid(String),
    /// The host refused or failed the request; the code is `wasi:http`'s.
    Host(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Invalid(m) => write!(f, "invalid request: {m}"),
            Error::Host(code) => write!(f, "{code}"),
        }
    }
}

impl std::error::Error for Error {}

fn host_error(code: ErrorCode) -> Error {
    Error::Host(match code {
        ErrorCode::HttpRequestDenied => {
            "the host refused the request: this destination is not granted to the skill".into()
        }
        ErrorCode::DestinationIpProhibited => {
            "the host refused the request: the address is internal (loopback, private or metadata)"
                .into()
        }
        ErrorCode::ConnectionLimitReached => {
            "the host refused the request: the skill's rate limit is reached; try later".into()
        }
        ErrorCode::HttpResponseBodySize(_) => "the response is larger than the host allows".into(),
        ErrorCode::ConnectionRefused => "the server refused the connection".into(),
        ErrorCode::ConnectionTimeout | ErrorCode::HttpResponseTimeout => {
            "the server did not answer in time".into()
        }
        ErrorCode::LoopDetected => "too many redirects".into(),
        other => format!("the request failed: {other:?}"),
    })
}

/// Sends a request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::Invalid(format!("`{url}` has no scheme")))?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(Error::Invalid(format!("scheme `{other}` is not http(s)"))),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_owned()),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| Error::Invalid(format!("header `{name}`: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| Error::Invalid(what.to_owned());
    request
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("path"))?;
    let outgoing = request.body().map_err(|()| invalid("body"))?;
    let pending = outgoing_handler::handle(request, None).map_err(host_error)?;
    // A refused request closes the body stream; its reason arrives with the response, so a
    // failed write is reported only if the response has none.
    let mut write_error = None;
    {
        let stream = outgoing.write().map_err(|()| invalid("body stream"))?;
        for chunk in body.unwrap_or_default().chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                write_error = Some(Error::Host(format!("sending the body failed: {e:?}")));
                break;
            }
        }
    }
    if let Err(code) = OutgoingBody::finish(outgoing, None) {
        write_error.get_or_insert(host_error(code));
    }
    let response = loop {
        match pending.get() {
            Some(result) => {
                break result
                    .map_err(|()| Error::Host("the response was already taken".into()))?
                    .map_err(host_error)?
            }
            None => pending.subscribe().block(),
        }
    };
    if let Some(e) = write_error {
        return Err(e);
    }
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|()| invalid("response body"))?;
    let mut body = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| invalid("response stream"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Error::Host(format!(
                        "reading the response failed: {}",
                        e.to_debug_string()
                    )))
                }
            }
        }
    }
    let _ = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        headers,
        body,
    })
}
