//! A small WebSocket frame vocabulary shared by the carrier (tungstenite client) and the
//! agent (tungstenite server), so the media logic is written once over `Sink`/`Stream` and can be
//! driven by channels in unit tests.

use std::fmt;

use futures_util::{Sink, SinkExt, Stream, StreamExt, future};

/// Close code for a normal closure.
pub(crate) const CLOSE_NORMAL: u16 = 1000;

/// What arrives from the other side of a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsIn {
    /// A text frame.
    Text(String),
    /// A binary frame (an error in the Media Streams dialect), with its length.
    Binary(usize),
    /// A close frame, with its code and reason when given.
    Close(Option<(u16, String)>),
    /// Ping or pong; answered by the WebSocket library itself.
    Control,
    /// The connection failed (e.g. reset without a closing handshake).
    Error(String),
}

/// What is sent to the other side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsOut {
    /// A text frame.
    Text(String),
    /// A close frame with a code and reason.
    Close(u16, String),
}

/// Adapts a tungstenite client socket to [`WsIn`]/[`WsOut`].
pub(crate) fn from_tungstenite<S>(
    socket: S,
) -> (
    impl Sink<WsOut, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
    impl Stream<Item = WsIn> + Unpin,
)
where
    S: Sink<tokio_tungstenite::tungstenite::Message, Error = tokio_tungstenite::tungstenite::Error>
        + Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        >,
{
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let (sink, stream) = socket.split();
    let sink = sink.with(|out: WsOut| {
        future::ready(Ok(match out {
            WsOut::Text(text) => Message::text(text),
            WsOut::Close(code, reason) => Message::Close(Some(CloseFrame {
                code: code.into(),
                reason: reason.into(),
            })),
        }))
    });
    let stream = stream.map(|item| match item {
        Ok(Message::Text(text)) => WsIn::Text(text.as_str().to_owned()),
        Ok(Message::Binary(bytes)) => WsIn::Binary(bytes.len()),
        Ok(Message::Close(frame)) => {
            WsIn::Close(frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())))
        }
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => WsIn::Control,
        Err(error) => WsIn::Error(error.to_string()),
    });
    (Box::pin(sink), stream)
}

/// Sends one frame, turning a send failure into its text.
pub(crate) async fn send<S>(sink: &mut S, out: WsOut) -> Result<(), String>
where
    S: Sink<WsOut> + Unpin,
    S::Error: fmt::Display,
{
    sink.send(out).await.map_err(|error| error.to_string())
}
