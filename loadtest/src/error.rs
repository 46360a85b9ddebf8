//! The crate's error type.

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The HTTP client used for callbacks or reports could not be built.
    #[error("cannot build http client: {0}")]
    Http(#[from] reqwest::Error),
}
