//! One connection: frames in, `CoreInput` to the core, responses and pushes out.
//!
//! The same loop serves the Unix socket (one JSON object per line) and the WebSocket (one per
//! text frame, the first of which must be `auth`). It answers `hello` and `ping` itself,
//! forwards every other request to the core, writes pushes as `message` notifications (and
//! receipts as `receipt`), pings the client when it has been quiet for the ping interval and
//! evicts it when it does not answer within the ping timeout.
//!
//! Bounds: every write has [`WRITE_DEADLINE`]; what the core queues is counted in bytes
//! against the session's and the hub's budgets until it is written ([`super::queue`]); a
//! WebSocket may send [`super::limits::PRE_AUTH_BYTES_MAX`] before it authenticates. When the
//! core stops, the loop writes the replies still in flight and the pushes already queued,
//! then ends (the daemon waits [`super::limits::SHUTDOWN_FLUSH_MAX`] for that).
//!
//! Requests are pipelined: up to [`REQUESTS_IN_FLIGHT_MAX`] of one session wait for the core
//! at once and their responses go out in request order. So a `send` waiting for its
//! recipient's acknowledgement never holds up the `ack`s this session owes for its own pushes.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{FutureExt as _, SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::core::{CoreInput, Json, Outbound, SessionId, to_json};
use super::limits::{AUTH_TIMEOUT, REQUESTS_IN_FLIGHT_MAX, SESSION_QUEUE_CAPACITY, WRITE_DEADLINE};
use super::preauth::PreAuthLimit;
use super::queue::{QueueCharge, Queued};
use crate::protocol::jsonrpc::RawResponse;
use crate::protocol::{
    ClientRequest, ErrorCode, FrameDecoder, FrameError, HelloResult, Incoming, Method,
    PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, Request, RequestId, Response, RpcError,
    check_frame_len, encode_frame, negotiate, parse_incoming,
};

/// What every connection needs to know.
#[derive(Clone, Debug)]
pub struct SessionContext {
    /// The core's queue.
    pub core: mpsc::Sender<CoreInput>,
    /// The hub id, as hex, for `hello`.
    pub hub_id: String,
    /// Quiet time before the hub pings.
    pub ping_interval: Duration,
    /// Time a pinged client has to answer.
    pub ping_timeout: Duration,
    /// Time a probed client (the holder of a fixed name someone else asks for) has to answer.
    pub probe_timeout: Duration,
    /// The WebSocket token; `Some` means the first frame must authenticate with it.
    pub token: Option<String>,
    /// Held by every connection task: the daemon waits for all clones to drop at shutdown.
    pub alive: mpsc::Sender<()>,
}

/// A framed transport: lines on a Unix socket, text frames on a WebSocket.
pub enum Transport {
    /// A Unix-socket connection.
    Unix {
        /// The socket.
        stream: UnixStream,
        /// Incoming bytes cut into lines.
        decoder: FrameDecoder,
    },
    /// A WebSocket connection over loopback TCP, its reads budgeted until it authenticates.
    WebSocket(Box<WebSocketStream<PreAuthLimit<TcpStream>>>),
}

impl Transport {
    /// A Unix-socket transport.
    pub fn unix(stream: UnixStream) -> Self {
        Transport::Unix {
            stream,
            decoder: FrameDecoder::new(),
        }
    }

    /// The uid of the peer process (Unix socket only).
    fn peer_uid(&self) -> Option<u32> {
        match self {
            Transport::Unix { stream, .. } => stream.peer_cred().ok().map(|cred| cred.uid()),
            Transport::WebSocket(_) => None,
        }
    }

    /// The connection authenticated: its reads are no longer budgeted.
    fn authenticated(&mut self) {
        if let Transport::WebSocket(socket) = self {
            socket.get_mut().lift();
        }
    }

    /// The next frame; `None` at the end of the connection.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read are kept in the decoder, and tungstenite's stream is cancel
    /// safe.
    async fn next_frame(&mut self) -> Option<Result<String, Unreadable>> {
        match self {
            Transport::Unix { stream, decoder } => {
                // Bounded by the connection: each pass reads bytes or ends.
                loop {
                    if let Some(frame) = decoder.next_frame() {
                        return Some(frame.map_err(Unreadable::Frame));
                    }
                    // The read buffer is the runtime thread's, borrowed for one read between
                    // awaits: an idle connection's task carries none (memory per idle session)
                    // and a read does not zero 16 KiB first.
                    let ended = match stream.readable().await {
                        Err(_) => true,
                        Ok(()) => READ_BUFFER.with_borrow_mut(|buffer| {
                            buffer.clear();
                            match read_drained(stream, buffer) {
                                Ok(0) => true,
                                Ok(_) => {
                                    decoder.push(buffer);
                                    false
                                }
                                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                                    false
                                }
                                Err(_) => true,
                            }
                        }),
                    };
                    if ended {
                        let last = decoder.finish().into_iter().next();
                        return last.map(|frame| frame.map_err(Unreadable::Frame));
                    }
                }
            }
            Transport::WebSocket(socket) => loop {
                match socket.next().await? {
                    Ok(Message::Text(text)) => {
                        let checked = check_frame_len(text.as_str()).map(str::to_owned);
                        return Some(checked.map_err(Unreadable::Frame));
                    }
                    Ok(Message::Binary(_)) => {
                        return Some(Err(Unreadable::Binary));
                    }
                    Ok(Message::Close(_)) | Err(_) => return None,
                    Ok(_) => {}
                }
            },
        }
    }

    /// Writes encoded frames (each ends in a newline).
    async fn send(&mut self, frames: &[Vec<u8>]) -> std::io::Result<()> {
        match self {
            Transport::Unix { stream, .. } => match frames {
                // One frame (most wake-ups) is written as it is; several with `writev`,
                // without copying them into one buffer first.
                [frame] => stream.write_all(frame).await,
                frames => write_all_vectored(stream, frames).await,
            },
            Transport::WebSocket(socket) => {
                for frame in frames {
                    let text = String::from_utf8_lossy(frame.strip_suffix(b"\n").unwrap_or(frame))
                        .into_owned();
                    socket
                        .feed(Message::text(text))
                        .await
                        .map_err(std::io::Error::other)?;
                }
                socket.flush().await.map_err(std::io::Error::other)
            }
        }
    }
}

/// Most slices one `writev` takes (Linux's `IOV_MAX`); more frames take more calls.
const WRITEV_SLICES_MAX: usize = 1024;

/// Writes all of `frames` in order, as few `writev` calls as the socket takes.
async fn write_all_vectored(stream: &mut UnixStream, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = frames
        .iter()
        .map(|frame| std::io::IoSlice::new(frame))
        .collect();
    let mut remaining = &mut slices[..];
    // Bounded: every pass writes at least one byte or fails.
    while !remaining.is_empty() {
        let batch = remaining.len().min(WRITEV_SLICES_MAX);
        let written = stream.write_vectored(&remaining[..batch]).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut remaining, written);
    }
    Ok(())
}

/// Reads what `stream` holds into the spare capacity of `buffer`, as `try_read_buf` does, and
/// when the read came back short (the socket's queue is empty) also clears the runtime's
/// readiness, so the next wait sleeps until new bytes arrive instead of making one more read
/// only to be told `EAGAIN`: about 0.7 of the 1.5 `recvfrom` calls per message were those.
///
/// Safe against a lost wake-up: the runtime clears only the readiness it saw before the read
/// (its tick), so bytes that arrive after the read mark the socket ready again. A full read
/// keeps the readiness: more may be queued.
fn read_drained(stream: &UnixStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = None;
    let outcome = stream.try_io(tokio::io::Interest::READABLE, || {
        let spare = buffer.capacity() - buffer.len();
        let bytes = stream.try_read_buf(buffer)?;
        read = Some(bytes);
        if bytes > 0 && bytes < spare {
            // Not an error: the runtime clears readiness on `WouldBlock`, which is what a
            // drained queue means.
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(bytes)
        }
    });
    match (outcome, read) {
        (_, Some(bytes)) => Ok(bytes),
        (outcome, None) => outcome,
    }
}

/// Bytes read from a Unix socket per system call.
const UNIX_READ_BYTES: usize = 16 * 1024;

thread_local! {
    /// The buffer the Unix-socket connections served by this thread read into, one read at a
    /// time (a read never spans an await). `try_read_buf` fills its spare capacity, so the
    /// bytes are not zeroed before each read, which a fresh array per read cost: a `memset`
    /// of 16 KiB per read, about a fifth of the hub's instructions (callgrind; see
    /// docs/operations.md).
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(UNIX_READ_BYTES));
}

/// A frame that cannot be read as a request.
#[derive(Debug)]
enum Unreadable {
    /// Too large or not UTF-8.
    Frame(FrameError),
    /// A binary WebSocket frame: the protocol uses text frames only.
    Binary,
}

fn response_frame(response: &Response) -> Vec<u8> {
    encode_frame(response)
}

fn error_frame(id: Option<RequestId>, error: RpcError) -> Vec<u8> {
    response_frame(&Response::error(id, error))
}

/// The slots a connection holds while it is served: one among all connections, and one among
/// the unauthenticated ones until it authenticates.
#[derive(Debug)]
pub struct Admission {
    /// Its place among [`super::limits::CONNECTIONS_MAX`].
    pub connection: tokio::sync::OwnedSemaphorePermit,
    /// Its place among [`super::limits::UNAUTHENTICATED_MAX`], given back after `auth`.
    pub unauthenticated: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Frames about to be written, and the queue charges they hold until they are.
#[derive(Default)]
struct Outgoing {
    frames: Vec<Vec<u8>>,
    charges: Vec<QueueCharge>,
}

/// What the loop tracks about pings and probes.
struct Liveness {
    ping_sent: Option<(String, Instant)>,
    probes: Vec<oneshot::Sender<bool>>,
    ping_count: u64,
    probe_timeout: Duration,
}

impl Liveness {
    /// A new ping request frame and its id.
    fn next_ping(&mut self) -> (String, Vec<u8>) {
        self.ping_count += 1;
        let id = format!("hub-ping-{}", self.ping_count);
        let frame = ping_frame(&id);
        (id, frame)
    }
}

/// Serves one connection until it closes, is evicted or is replaced. A transport with a token
/// (the WebSocket) must authenticate first, within [`AUTH_TIMEOUT`]: until then the core does
/// not know the connection and nothing but `auth` is answered.
pub async fn serve(
    mut transport: Transport,
    session: SessionId,
    context: SessionContext,
    admission: Admission,
) {
    let Admission {
        connection: _connection,
        unauthenticated,
    } = admission;
    if let Some(token) = context.token.as_deref() {
        if !authenticate_first(&mut transport, token, session).await {
            return;
        }
        transport.authenticated();
    }
    drop(unauthenticated);
    let (outbound, mut pushes) = mpsc::channel(SESSION_QUEUE_CAPACITY);
    let connected = CoreInput::Connected {
        session,
        outbound,
        peer_uid: transport.peer_uid(),
    };
    if context.core.send(connected).await.is_err() {
        return;
    }
    let mut greeted = false;
    let mut last_heard = Instant::now();
    let mut liveness = Liveness {
        ping_sent: None,
        probes: Vec::new(),
        ping_count: 0,
        probe_timeout: context.probe_timeout,
    };
    let mut in_flight = InOrder::default();
    // Set when the client stopped writing: the loop then only answers what is in flight.
    let mut reading_done = false;
    // Set when the core dropped this session's queue (the hub stops, or replaced it): the loop
    // then writes what is in flight and ends.
    let mut core_done = false;
    // Runs until the connection ends: every pass handles one frame, push or timer.
    loop {
        if (reading_done || core_done) && in_flight.is_empty() {
            break;
        }
        let deadline = match &liveness.ping_sent {
            Some((_, answer_by)) => *answer_by,
            None => last_heard + context.ping_interval,
        };
        let mut out = Outgoing::default();
        tokio::select! {
            frame = transport.next_frame(), if !reading_done && !core_done && in_flight.len() < REQUESTS_IN_FLIGHT_MAX => {
                let Some(frame) = frame else {
                    reading_done = true;
                    continue;
                };
                last_heard = Instant::now();
                let reply = match frame {
                    Err(Unreadable::Binary) => Some(error_frame(None, RpcError::new(
                        ErrorCode::BadMessage, "binary WebSocket frames are not accepted; send text frames"))),
                    Err(Unreadable::Frame(FrameError::TooLarge { bytes, limit })) => Some(error_frame(None, RpcError::new(
                        ErrorCode::FrameTooLarge, format!("frame of {bytes} bytes exceeds {limit} bytes")))),
                    Err(Unreadable::Frame(FrameError::InvalidUtf8 { valid_up_to })) => Some(error_frame(None, RpcError::new(
                        ErrorCode::BadMessage, format!("frame is not valid UTF-8 (byte {valid_up_to})")))),
                    Ok(line) if line.trim().is_empty() => None,
                    // The common case in one pass; anything else through the full parse. One
                    // place awaits the request's handling, boxed: the session's task then
                    // holds no room for that future's state while idle (memory per session).
                    Ok(line) => {
                        let parsed = match ClientRequest::parse_line_fast(&line) {
                            Some(parsed) => Ok(parsed),
                            None => match parse_incoming(&line) {
                                Err(refused) => Err(Some(response_frame(&refused.into_response()))),
                                Ok(Incoming::Notification(_)) => Err(None),
                                Ok(Incoming::Response(response)) => {
                                    let answers_ping = liveness.ping_sent.as_ref().is_some_and(|(id, _)| {
                                        response.id == Some(RequestId::String(id.clone()))
                                    });
                                    if answers_ping {
                                        liveness.ping_sent = None;
                                        for probe in liveness.probes.drain(..) {
                                            let _ = probe.send(true);
                                        }
                                    }
                                    Err(None)
                                }
                                Ok(Incoming::Request(request)) => ClientRequest::from_request(request)
                                    .map_err(|refused| Some(response_frame(&refused.into_response()))),
                            },
                        };
                        match parsed {
                            Ok((id, request)) => {
                                in_flight.push_back(Box::pin(handle_client_request(id, request, session, &context, &mut greeted)).await);
                                None
                            }
                            Err(reply) => reply,
                        }
                    }
                };
                let Some(reply) = reply else { continue };
                out.frames.push(reply);
            }
            Some(response) = in_flight.next(), if !in_flight.is_empty() => {
                out.frames.push(response);
            }
            queued = pushes.recv(), if !core_done => {
                let Some(queued) = queued else {
                    core_done = true;
                    continue;
                };
                if !accept_outbound(queued, &mut out, &mut liveness) {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                if liveness.ping_sent.is_some() {
                    tracing::info!(session_id = session.0, "evicted a session that did not answer a ping");
                    break;
                }
                let (id, frame) = liveness.next_ping();
                out.frames.push(frame);
                liveness.ping_sent = Some((id, Instant::now() + context.ping_timeout));
            }
        }
        let open = drain_pushes(&mut pushes, &mut out, &mut liveness);
        // Every response already answered goes out in the same write, in request order.
        while let Some(Some(response)) = in_flight.next().now_or_never() {
            out.frames.push(response);
        }
        if !out.frames.is_empty()
            && send_within(&mut transport, &out.frames, session)
                .await
                .is_err()
        {
            break;
        }
        // Written: the charges go back to the budgets.
        drop(out);
        if !open {
            break;
        }
    }
    for probe in liveness.probes.drain(..) {
        let _ = probe.send(false);
    }
    let _ = context.core.send(CoreInput::Disconnected { session }).await;
}

/// Writes `frames` within [`WRITE_DEADLINE`]; a client that does not read them in time is
/// evicted (the error ends the connection; what it never acknowledged stays unread).
async fn send_within(
    transport: &mut Transport,
    frames: &[Vec<u8>],
    session: SessionId,
) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_DEADLINE, transport.send(frames)).await {
        Ok(written) => written,
        Err(_) => {
            tracing::info!(
                session_id = session.0,
                "evicted a session that did not read for {} s",
                WRITE_DEADLINE.as_secs()
            );
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read its frames in time",
            ))
        }
    }
}

fn ping_frame(id: &str) -> Vec<u8> {
    let request = Request::new(
        RequestId::String(id.to_owned()),
        Method::Ping.name(),
        serde_json::json!({}),
    );
    encode_frame(&request)
}

/// Moves queued outbound items into `out` without waiting; `false` means close the
/// connection once `out` is written.
fn drain_pushes(
    pushes: &mut mpsc::Receiver<Queued>,
    out: &mut Outgoing,
    liveness: &mut Liveness,
) -> bool {
    while let Ok(queued) = pushes.try_recv() {
        if !accept_outbound(queued, out, liveness) {
            return false;
        }
    }
    true
}

/// Turns one queued item into frames; `false` means close the connection.
fn accept_outbound(queued: Queued, out: &mut Outgoing, liveness: &mut Liveness) -> bool {
    let Queued { outbound, charge } = queued;
    out.charges.extend(charge);
    match outbound {
        // Encoded by the core ([`Outbound::push`]).
        Outbound::Frame(frame) => {
            out.frames.push(frame);
            true
        }
        Outbound::Probe(answer) => {
            liveness.probes.push(answer);
            // A probe waits for the short probe timeout, not the tolerant idle ping timeout.
            let answer_by = Instant::now() + liveness.probe_timeout;
            match &mut liveness.ping_sent {
                Some((_, deadline)) => *deadline = (*deadline).min(answer_by),
                None => {
                    let (id, frame) = liveness.next_ping();
                    out.frames.push(frame);
                    liveness.ping_sent = Some((id, answer_by));
                }
            }
            true
        }
        Outbound::Close => false,
    }
}

/// The first frame of a token transport must be `auth` with the token, within
/// [`AUTH_TIMEOUT`]; whether it was (the answer has been written). Anything else gets
/// `unauthorized` and the connection closes.
async fn authenticate_first(transport: &mut Transport, token: &str, session: SessionId) -> bool {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    // Bounded by the deadline: blank frames are skipped, anything else decides.
    loop {
        let frame = match tokio::time::timeout_at(deadline, transport.next_frame()).await {
            Err(_) => {
                tracing::info!(
                    session_id = session.0,
                    "closed a connection that did not authenticate within {} s",
                    AUTH_TIMEOUT.as_secs()
                );
                return false;
            }
            Ok(None) => return false,
            Ok(Some(frame)) => frame,
        };
        let request = match frame {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => match parse_incoming(&line) {
                Ok(Incoming::Request(request)) => Some(request),
                _ => None,
            },
            Err(_) => None,
        };
        let (reply, ok) = match request {
            Some(request) => authenticate(request, Some(token)),
            None => (
                error_frame(None, RpcError::new(ErrorCode::Unauthorized, UNAUTHORIZED)),
                false,
            ),
        };
        let written = send_within(transport, &[reply], session).await.is_ok();
        return ok && written;
    }
}

/// What an unauthenticated client is told.
const UNAUTHORIZED: &str = "the first frame must be auth with the token in <data dir>/ws.token";

fn authenticate(request: Request, token: Option<&str>) -> (Vec<u8>, bool) {
    let id = request.id.clone();
    match ClientRequest::from_request(request) {
        Ok((id, ClientRequest::Auth(params))) if Some(params.token.as_str()) == token => (
            response_frame(&Response::result(id, serde_json::json!({}))),
            true,
        ),
        _ => (
            error_frame(
                Some(id),
                RpcError::new(ErrorCode::Unauthorized, UNAUTHORIZED),
            ),
            false,
        ),
    }
}

/// A response on its way, resolving to its frame: ready at once (answered here) or waiting
/// for the core. A plain enum rather than a boxed future: no allocation per request.
enum PendingResponse {
    /// The frame (taken when the response is polled).
    Ready(Vec<u8>),
    /// The core's answer to request `id`, to encode when it comes.
    Core {
        id: RequestId,
        answer: oneshot::Receiver<Result<Json, RpcError>>,
    },
}

/// The responses of a connection's requests in flight, in request order. Only the oldest is
/// polled: a later one that is ready waits its turn anyway, and its answer waits in its
/// channel. So a request costs a slot of the queue and no allocation of its own (a
/// `FuturesOrdered` allocated a task per request); an idle connection keeps the queue's
/// small buffer once a request has used it (about 100 B, docs/operations.md).
#[derive(Default)]
struct InOrder(VecDeque<PendingResponse>);

impl InOrder {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn push_back(&mut self, response: PendingResponse) {
        self.0.push_back(response);
    }

    /// The oldest response's frame once it is ready; `None` when none is in flight.
    ///
    /// # Cancel safety
    /// Cancel safe: a response leaves the queue only when its frame is returned.
    fn next(&mut self) -> impl Future<Output = Option<Vec<u8>>> + '_ {
        std::future::poll_fn(move |cx| {
            let Some(oldest) = self.0.front_mut() else {
                return std::task::Poll::Ready(None);
            };
            let frame = std::task::ready!(Pin::new(oldest).poll(cx));
            self.0.pop_front();
            std::task::Poll::Ready(Some(frame))
        })
    }
}

impl Future for PendingResponse {
    type Output = Vec<u8>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Vec<u8>> {
        match self.get_mut() {
            PendingResponse::Ready(frame) => std::task::Poll::Ready(std::mem::take(frame)),
            PendingResponse::Core { id, answer } => {
                let outcome = std::task::ready!(Pin::new(answer).poll(cx))
                    .unwrap_or_else(|_| Err(hub_stopping()));
                // The id goes into the frame; a response is not polled again once ready.
                let id = std::mem::replace(id, RequestId::Number(0));
                std::task::Poll::Ready(outcome_frame(id, outcome))
            }
        }
    }
}

/// Answers `hello`, `ping` and `auth` here; forwards every other request to the core and
/// returns the wait for its response (the core may hold it, e.g. for a recipient's ack).
async fn handle_client_request(
    id: RequestId,
    request: ClientRequest,
    session: SessionId,
    context: &SessionContext,
    greeted: &mut bool,
) -> PendingResponse {
    let outcome = match request {
        ClientRequest::Hello(params) => match negotiate(params.versions) {
            Ok(version) => {
                *greeted = true;
                let result = HelloResult {
                    version,
                    hub_version: env!("CARGO_PKG_VERSION").to_owned(),
                    hub_id: context.hub_id.clone(),
                };
                to_json(&result)
            }
            Err(mismatch) => Err(RpcError::from(mismatch).with_detail(
                "hub_versions",
                serde_json::json!({"min": PROTOCOL_VERSION_MIN, "max": PROTOCOL_VERSION_MAX}),
            )),
        },
        ClientRequest::Ping(_) | ClientRequest::Auth(_) => {
            to_json(&crate::protocol::EmptyResult {})
        }
        _ if !*greeted => Err(RpcError::new(ErrorCode::HelloRequired, "send hello first")),
        request => {
            let (reply, answer) = oneshot::channel();
            let input = CoreInput::Request {
                session,
                request: Box::new(request),
                reply,
            };
            if context.core.send(input).await.is_err() {
                Err(hub_stopping())
            } else {
                return PendingResponse::Core { id, answer };
            }
        }
    };
    PendingResponse::Ready(outcome_frame(id, outcome))
}

/// The answer to a request the core can no longer take or answer: it stopped.
fn hub_stopping() -> RpcError {
    RpcError::new(ErrorCode::StorageError, "the hub is stopping")
}

fn outcome_frame(id: RequestId, outcome: Result<Json, RpcError>) -> Vec<u8> {
    match outcome {
        // The result was serialised where it was made: written as it is.
        Ok(result) => encode_frame(&RawResponse {
            id: &id,
            result: &result,
        }),
        Err(error) => error_frame(Some(id), error),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A response that is ready waits behind an older one still waiting for the core, and
    /// both come out in request order once the older one's answer arrives.
    #[tokio::test]
    async fn responses_leave_in_request_order() {
        let (reply, answer) = oneshot::channel();
        let mut in_flight = InOrder::default();
        in_flight.push_back(PendingResponse::Core {
            id: RequestId::Number(1),
            answer,
        });
        in_flight.push_back(PendingResponse::Ready(b"second\n".to_vec()));
        assert_eq!(
            in_flight.next().now_or_never(),
            None,
            "the first is still waiting"
        );
        assert_eq!(in_flight.len(), 2);
        reply
            .send(to_json(&crate::protocol::EmptyResult {}))
            .expect("receiver alive");
        let first = in_flight.next().await.expect("first");
        let first: serde_json::Value = serde_json::from_slice(&first).expect("json");
        assert_eq!(first["id"], 1);
        assert_eq!(in_flight.next().await.as_deref(), Some(&b"second\n"[..]));
        assert!(in_flight.is_empty());
        assert_eq!(in_flight.next().await, None);
    }

    /// More frames than one `writev` takes, of uneven sizes, through a socket whose reader
    /// lags (so writes are partial): the bytes arrive whole and in order.
    #[tokio::test]
    async fn vectored_writes_deliver_every_frame_in_order() {
        let (mut writer, mut reader) = UnixStream::pair().expect("socket pair");
        let frames: Vec<Vec<u8>> = (0..3000)
            .map(|i| {
                let mut frame = format!("{i}:").into_bytes();
                frame.resize(frame.len() + i % 700, b'x');
                frame.push(b'\n');
                frame
            })
            .collect();
        let expected = frames.concat();
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = vec![0; 4096];
            loop {
                let read = reader.read(&mut chunk).await.expect("read");
                if read == 0 {
                    return got;
                }
                got.extend_from_slice(&chunk[..read]);
                tokio::task::yield_now().await;
            }
        });
        write_all_vectored(&mut writer, &frames)
            .await
            .expect("written");
        drop(writer);
        assert_eq!(read.await.expect("reader"), expected);
    }
}
