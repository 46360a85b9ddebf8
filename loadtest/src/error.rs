//! The crate's error type.

/// Why a simulator could not start, or a load run could not go on.
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
    /// A file or process operation of the load driver failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The scenario file is unreadable or holds a bad value.
    #[error("scenario {path}: {reason}")]
    Scenario {
        /// The file.
        path: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The Switchboard process could not be started or used.
    #[error("switchboard: {0}")]
    Server(String),
    /// An API request failed.
    #[error("api: {0}")]
    Api(String),
}
