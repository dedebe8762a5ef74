//! The gateway's HTTP face: routes by the providers' paths, the trial's token from whichever
//! header (or query) the provider's clients send it in, and replies as JSON or SSE.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::{Method, Request, Response, StatusCode};

use super::Shared;
use super::call::{self, Incoming, Reply, ReplyBody};
use crate::model::serve::{self, GeminiMethod, GeminiRoute, ServeErrorKind};
use crate::model::{Api, Wire};

/// The largest request body accepted (requests carry whole conversations, screenshots
/// included).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What a request asks for.
#[derive(Debug, PartialEq)]
enum Endpoint {
    /// A model call in `wire` (Gemini's model and streaming are in the path).
    Call(Wire),
    /// A token count: Anthropic's `count_tokens`, Gemini's `countTokens`.
    CountTokens(Wire),
    /// The model list, in the format of `api`.
    Models(Api),
}

/// Which endpoint a method and path are, if any.
fn route(method: &Method, path: &str, anthropic_headers: bool) -> Option<Endpoint> {
    let path = path.trim_end_matches('/');
    if method == Method::GET {
        return match path {
            "/v1/models" | "/models" if anthropic_headers => Some(Endpoint::Models(Api::Anthropic)),
            "/v1/models" | "/models" => Some(Endpoint::Models(Api::OpenAi)),
            "/v1beta/models" => Some(Endpoint::Models(Api::Gemini)),
            _ => None,
        };
    }
    if method != Method::POST {
        return None;
    }
    match path {
        "/v1/messages" => Some(Endpoint::Call(Wire::Anthropic)),
        "/v1/messages/count_tokens" => Some(Endpoint::CountTokens(Wire::Anthropic)),
        "/v1/chat/completions" | "/chat/completions" => Some(Endpoint::Call(Wire::OpenAiChat)),
        "/v1/responses" | "/responses" => Some(Endpoint::Call(Wire::OpenAiResponses)),
        _ => match GeminiRoute::parse(path)?.method {
            GeminiMethod::GenerateContent | GeminiMethod::StreamGenerateContent => {
                Some(Endpoint::Call(Wire::Gemini))
            }
            GeminiMethod::CountTokens => Some(Endpoint::CountTokens(Wire::Gemini)),
        },
    }
}

/// The format an answer to an unroutable or unauthorised request is given in: the one its
/// path suggests.
fn wire_of_path(path: &str, anthropic_headers: bool) -> Wire {
    if path.starts_with("/v1beta") || path.contains(":generateContent") {
        Wire::Gemini
    } else if path.starts_with("/v1/messages") || anthropic_headers {
        Wire::Anthropic
    } else if path.contains("responses") {
        Wire::OpenAiResponses
    } else {
        Wire::OpenAiChat
    }
}

/// The token a client sent: Anthropic's `x-api-key`, a bearer token (OpenAI, and Anthropic's
/// `ANTHROPIC_AUTH_TOKEN`), Gemini's `x-goog-api-key` or `?key=`.
fn token_of<B>(request: &Request<B>) -> Option<String> {
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    header("x-api-key")
        .or_else(|| header("x-goog-api-key"))
        .or_else(|| {
            header("authorization").and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .map(|t| t.trim().to_string())
            })
        })
        .or_else(|| {
            request.uri().query().and_then(|query| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("key="))
                    .map(str::to_string)
            })
        })
}

/// Whether the query asks for SSE (`alt=sse`, Gemini's streaming as events).
fn wants_sse<B>(request: &Request<B>) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"))
}

/// The hyper service of one connection.
#[derive(Clone)]
pub(super) struct Service {
    shared: Arc<Shared>,
}

impl Service {
    pub(super) fn new(shared: Arc<Shared>) -> Service {
        Service { shared }
    }
}

impl hyper::service::Service<Request<Body>> for Service {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn call(&self, request: Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { Ok(handle(&shared, request).await) })
    }
}

async fn handle(shared: &Shared, request: Request<Body>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let anthropic_headers = request.headers().contains_key("anthropic-version")
        || request.headers().contains_key("x-api-key");
    let wire = wire_of_path(&path, anthropic_headers);
    let Some(endpoint) = route(request.method(), &path, anthropic_headers) else {
        let message = format!(
            "helios's model gateway has no endpoint `{} {path}`",
            request.method()
        );
        return respond(
            Reply::error(wire, ServeErrorKind::NotFound, &message),
            false,
        );
    };
    let Some(slot) = token_of(&request).and_then(|token| shared.slot(&token)) else {
        let message = "helios's model gateway does not know this API key: it is not a token \
                       of a running trial of this run (a trial's token stops working when \
                       the trial ends)";
        return respond(Reply::error(wire, ServeErrorKind::Auth, message), false);
    };
    let sse = wants_sse(&request);
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let message = format!("cannot read the request body: {e}");
            return respond(
                Reply::error(wire, ServeErrorKind::BadRequest, &message),
                false,
            );
        }
    };
    match endpoint {
        Endpoint::Models(api) => {
            let model = slot.model_id().rsplit('/').next().unwrap_or_default();
            respond(
                Reply {
                    status: 200,
                    body: ReplyBody::Json(serve::models_list(api, &[model])),
                },
                false,
            )
        }
        Endpoint::CountTokens(wire) => respond(count_tokens(wire, &path, &body), false),
        Endpoint::Call(wire) => {
            let reply = slot
                .call(Incoming {
                    wire,
                    path: &path,
                    body: &body,
                })
                .await;
            // Gemini streams as events only with `alt=sse`; otherwise as one JSON array.
            respond(reply, wire == Wire::Gemini && !sse)
        }
    }
}

/// A token count, estimated from the request (see [`serve::count_tokens_estimate`]).
fn count_tokens(wire: Wire, path: &str, body: &[u8]) -> Reply {
    let decoded = wire.decode_count_tokens(path, body);
    match decoded {
        Ok(decoded) => {
            let tokens = serve::count_tokens_estimate(&decoded.request);
            match wire.encode_count_tokens(tokens) {
                Some(body) => Reply {
                    status: 200,
                    body: ReplyBody::Json(body),
                },
                None => Reply::error(wire, ServeErrorKind::NotFound, "no token count here"),
            }
        }
        Err(e) => Reply::error(wire, e.kind(), &e.to_string()),
    }
}

/// The HTTP response of a reply. `events_as_array`: a stream sent as one JSON array of its
/// events' bodies (Gemini's `streamGenerateContent` without `alt=sse`).
fn respond(reply: Reply, events_as_array: bool) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let (content_type, bytes) = match reply.body {
        ReplyBody::Json(body) => ("application/json", Bytes::from(body.to_string())),
        ReplyBody::Events { events, .. } if events_as_array => {
            let items: Vec<serde_json::Value> = events
                .iter()
                .filter_map(|event| serde_json::from_str(&event.data).ok())
                .collect();
            (
                "application/json",
                Bytes::from(serde_json::Value::Array(items).to_string()),
            )
        }
        ReplyBody::Events { events, .. } => ("text/event-stream", call::event_bytes(&events)),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(bytes))
        .expect("a status and a content type make a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_the_providers_paths() {
        let post = Method::POST;
        let cases = [
            ("/v1/messages", true, Some(Endpoint::Call(Wire::Anthropic))),
            (
                "/v1/messages/count_tokens",
                true,
                Some(Endpoint::CountTokens(Wire::Anthropic)),
            ),
            (
                "/v1/chat/completions",
                false,
                Some(Endpoint::Call(Wire::OpenAiChat)),
            ),
            (
                "/v1/responses",
                false,
                Some(Endpoint::Call(Wire::OpenAiResponses)),
            ),
            (
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                false,
                Some(Endpoint::Call(Wire::Gemini)),
            ),
            (
                "/v1beta/models/gemini-2.5-pro:countTokens",
                false,
                Some(Endpoint::CountTokens(Wire::Gemini)),
            ),
            ("/v1/embeddings", false, None),
            ("/v1beta/models/x:embedContent", false, None),
        ];
        for (path, anthropic, expected) in cases {
            assert_eq!(route(&post, path, anthropic), expected, "{path}");
        }
        assert_eq!(
            route(&Method::GET, "/v1/models", true),
            Some(Endpoint::Models(Api::Anthropic))
        );
        assert_eq!(
            route(&Method::GET, "/v1/models", false),
            Some(Endpoint::Models(Api::OpenAi))
        );
        assert_eq!(route(&Method::DELETE, "/v1/messages", true), None);
    }

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_token_is_read_where_each_providers_clients_send_it() {
        let cases = [
            request("/v1/messages", &[("x-api-key", "t1")]),
            request("/v1/chat/completions", &[("authorization", "Bearer t1")]),
            request(
                "/v1beta/models/m:generateContent",
                &[("x-goog-api-key", "t1")],
            ),
            request("/v1beta/models/m:generateContent?alt=sse&key=t1", &[]),
        ];
        for case in &cases {
            assert_eq!(token_of(case).as_deref(), Some("t1"), "{}", case.uri());
        }
        assert_eq!(token_of(&request("/v1/messages", &[])), None);
        assert_eq!(
            token_of(&request("/v1/messages", &[("authorization", "Basic abc")])),
            None
        );
        assert!(wants_sse(&cases[3]));
        assert!(!wants_sse(&cases[2]));
    }
}
