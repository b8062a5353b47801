//! Errors of the Redis Streams adapter.

use std::fmt;

use super::entry::{AckToken, EntryId};

/// Why an entry could not be decoded into the pipeline's item type.
///
/// Returned by the decoder given to
/// [`RedisStreamSourceBuilder::connect`](super::RedisStreamSourceBuilder::connect); the source
/// turns it into [`RedisStreamError::Malformed`] carrying the entry id.
///
/// ```
/// use millrace::adapters::redis::DecodeError;
///
/// let e = DecodeError::missing_field("n");
/// assert_eq!(e.to_string(), "missing field `n`");
/// let e = DecodeError::new("field `n` is not a number: \"x\"");
/// assert_eq!(e.to_string(), "field `n` is not a number: \"x\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    /// A decode error with a message that says what is wrong with the entry.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The entry has no field called `field`.
    pub fn missing_field(field: &str) -> Self {
        Self::new(format!("missing field `{field}`"))
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// An error of the Redis Streams source, acker or sinks.
///
/// ```
/// use millrace::adapters::redis::{DecodeError, RedisStreamError};
///
/// let e = RedisStreamError::config("capacity must be at least 1");
/// assert_eq!(e.to_string(), "invalid Redis stream configuration: capacity must be at least 1");
/// assert!(e.entry_id().is_none());
/// # let _ = DecodeError::new("x");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisStreamError {
    /// A Redis command failed with an error that is not worth retrying (or retries ran out).
    Redis {
        /// The command, e.g. `"XREADGROUP"`.
        command: &'static str,
        /// The stream key.
        stream: String,
        /// The client's error.
        source: redis::RedisError,
    },
    /// The server stayed unreachable for longer than the reconnect limit.
    GaveUp {
        /// The command that kept failing.
        command: &'static str,
        /// The stream key.
        stream: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        source: redis::RedisError,
    },
    /// An entry could not be decoded. It stays pending in the group until its [`AckToken`]
    /// (available from [`RedisStreamError::into_ack_token`]) is acknowledged, e.g. after the
    /// entry was written to a dead-letter store.
    Malformed {
        /// The stream key.
        stream: String,
        /// The entry id.
        id: EntryId,
        /// What is wrong.
        reason: DecodeError,
        /// The token that acknowledges the entry.
        token: AckToken,
    },
    /// The reply of the server did not have the shape of the command's documented reply.
    UnexpectedReply {
        /// The command.
        command: &'static str,
        /// What was received, abbreviated.
        reply: String,
    },
    /// The configuration is invalid.
    Config(String),
}

impl RedisStreamError {
    /// A configuration error with the given message.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }

    /// The id of the entry at fault, for [`Malformed`](Self::Malformed) entries.
    pub fn entry_id(&self) -> Option<EntryId> {
        match self {
            Self::Malformed { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The ack token of a [`Malformed`](Self::Malformed) entry, so the entry can be acknowledged
    /// once it has been dead-lettered. Dropping it leaves the entry pending (it will be
    /// reclaimed after the claim idle time).
    pub fn into_ack_token(self) -> Option<AckToken> {
        match self {
            Self::Malformed { token, .. } => Some(token),
            _ => None,
        }
    }
}

impl fmt::Display for RedisStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis {
                command,
                stream,
                source,
            } => write!(
                f,
                "{command} on Redis stream `{stream}` failed: {source}; check the server, the key type and the group"
            ),
            Self::GaveUp {
                command,
                stream,
                attempts,
                source,
            } => write!(
                f,
                "{command} on Redis stream `{stream}` still failing after {attempts} attempts (last error: {source}); \
                 the server is unreachable, raise the reconnect limit or check the server"
            ),
            Self::Malformed {
                stream, id, reason, ..
            } => write!(
                f,
                "malformed entry {id} in Redis stream `{stream}`: {reason}; it stays pending until acknowledged \
                 (dead-letter it, then ack its token)"
            ),
            Self::UnexpectedReply { command, reply } => write!(
                f,
                "unexpected reply to {command}: {reply}; is the server older than Redis 6.2?"
            ),
            Self::Config(message) => write!(f, "invalid Redis stream configuration: {message}"),
        }
    }
}

impl std::error::Error for RedisStreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis { source, .. } | Self::GaveUp { source, .. } => Some(source),
            Self::Malformed { reason, .. } => Some(reason),
            _ => None,
        }
    }
}
