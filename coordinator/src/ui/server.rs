//! The dashboard's HTTP side (axum, already in the tree through tonic): the page, its
//! event stream, the controls and the final report.

use super::{ControlError, Hub, Item};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleetload_common::wire::Command;
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

const PAGE: &str = include_str!("page.html");

/// The dashboard's server: serving until [`UiServer::close`].
pub struct UiServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl UiServer {
    /// Listen on `addr` and serve `hub`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start(addr: SocketAddr, hub: Arc<Hub>) -> std::io::Result<UiServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/", get(page))
            .route("/events", get(events))
            .route("/api/control", post(control))
            .route("/report.html", get(report))
            .with_state(hub);
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "the dashboard server stopped");
            }
        });
        Ok(UiServer { addr, stop, task })
    }

    /// Stop serving; open event streams end.
    pub async fn close(self) {
        self.stop.cancel();
        // Event streams end with the server; a viewer holding one does not hold us.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(PAGE),
    )
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn sse(item: &Item) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default()
        .event(item.event)
        .id(item.seq.to_string())
        .data(&item.data))
}

async fn events(State(hub): State<Arc<Hub>>, Query(q): Query<TokenQuery>) -> Response {
    if hub.private() && !hub.authorized(q.token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            "this dashboard needs the fleet's token (the coordinator's FLEETLOAD_TOKEN or --token-file)",
        )
            .into_response();
    }
    let (items, dropped) = viewer(&hub);
    let hello = SseEvent::default()
        .event("hello")
        .data(format!("{{\"history_dropped\":{dropped}}}"));
    let stream = tokio_stream::once(Ok(hello)).chain(items.map(|i| sse(&i)));
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What one viewer receives: the history so far, then the live events after it, until
/// it falls more than the channel's capacity behind. Then its stream ends (the page
/// reconnects and gets the history again): a viewer is dropped, never buffered for.
pub(super) fn viewer(
    hub: &Hub,
) -> (
    impl tokio_stream::Stream<Item = Arc<Item>> + Send + 'static,
    u64,
) {
    let (history, live, dropped) = hub.subscribe();
    let last = history.last().map_or(0, |i| i.seq);
    let live = BroadcastStream::new(live)
        .take_while(|r| !matches!(r, Err(BroadcastStreamRecvError::Lagged(_))))
        .filter_map(move |r| r.ok().filter(|i| i.seq > last));
    (tokio_stream::iter(history).chain(live), dropped)
}

/// A control request from the page.
#[derive(Debug, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
enum Control {
    SetRate { value: f64 },
    Pause,
    Resume,
    Stop { reason: Option<String> },
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn control(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Result<Json<Control>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let reply = |code: StatusCode, ok: bool, message: String| {
        (
            code,
            Json(serde_json::json!({ "ok": ok, "message": message })),
        )
            .into_response()
    };
    if !hub.authorized(bearer(&headers)) {
        tracing::warn!(
            token_given = bearer(&headers).is_some(),
            "refused a dashboard control without the fleet's token"
        );
        return reply(
            StatusCode::UNAUTHORIZED,
            false,
            "missing or wrong token: enter the coordinator's token (FLEETLOAD_TOKEN or --token-file) in the page".into(),
        );
    }
    let control = match body {
        Ok(Json(c)) => c,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                false,
                format!(
                    "{}: send {{\"command\": \"set_rate\", \"value\": 500}}, pause, resume or stop",
                    e.body_text()
                ),
            )
        }
    };
    let command = match control {
        Control::SetRate { value } => Command::SetRate(value),
        Control::Pause => Command::Pause,
        Control::Resume => Command::Resume,
        Control::Stop { reason } => Command::Stop(
            reason
                .unwrap_or_else(|| "stopped from the dashboard".into())
                .chars()
                .take(fleetload_common::wire::MAX_STOP_REASON)
                .collect(),
        ),
    };
    if let Command::SetRate(v) = command {
        if !v.is_finite() || !(0.0..=fleetload_common::plan::MAX_RATE).contains(&v) {
            return reply(
                StatusCode::BAD_REQUEST,
                false,
                format!(
                    "rate {v}: give a number from 0 to {}",
                    fleetload_common::plan::MAX_RATE
                ),
            );
        }
    }
    match hub.command(command).await {
        Ok(r) => reply(
            if r.ok {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            },
            r.ok,
            r.message,
        ),
        Err(ControlError::NoRun) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            false,
            "no run is going on".into(),
        ),
        Err(ControlError::NoAnswer) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            false,
            "the run did not answer".into(),
        ),
    }
}

async fn report(State(hub): State<Arc<Hub>>) -> Response {
    match hub.report_html() {
        Some(html) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html.to_string(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the run is still going: report.html is written when it ends",
        )
            .into_response(),
    }
}
