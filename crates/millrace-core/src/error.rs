//! Errors raised when a stage is built with an invalid configuration.

use std::fmt;

/// A stage was configured with a value outside its valid range.
///
/// Every limit, capacity and size in millrace is checked when the stage is **built**, not when
/// it is first polled. The `PipelineExt` methods panic with this error's message (documented
/// under `# Panics`); each wrapper also has a `checked_new` (or another `checked_*` constructor) that returns it.
///
/// ```
/// use millrace::ConfigError;
///
/// let err = ConfigError::zero("prefetch", "capacity");
/// assert_eq!(
///     err.to_string(),
///     "`prefetch`: `capacity` must be at least 1, got 0; pass a non-zero value"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A numeric parameter was outside its valid range.
    OutOfRange {
        /// The stage being built, e.g. `"map_concurrent"`.
        stage: &'static str,
        /// The parameter at fault, e.g. `"limit"`.
        param: &'static str,
        /// The rejected value, rendered.
        value: String,
        /// The valid range in words, e.g. `"at least 1"`.
        expected: &'static str,
    },
}

impl ConfigError {
    /// The error for a parameter that must be non-zero but was zero.
    ///
    /// ```
    /// use millrace::ConfigError;
    ///
    /// let e = ConfigError::zero("batch", "size");
    /// assert!(e.to_string().starts_with("`batch`: `size` must be at least 1, got 0"));
    /// ```
    pub fn zero(stage: &'static str, param: &'static str) -> Self {
        ConfigError::OutOfRange {
            stage,
            param,
            value: "0".to_owned(),
            expected: "at least 1",
        }
    }

    /// The error for any out-of-range value.
    ///
    /// ```
    /// use millrace::ConfigError;
    ///
    /// let e = ConfigError::out_of_range("rate_limit", "burst", 100_000, "at most 65536");
    /// assert_eq!(
    ///     e.to_string(),
    ///     "`rate_limit`: `burst` must be at most 65536, got 100000; pass a value in that range"
    /// );
    /// ```
    pub fn out_of_range(
        stage: &'static str,
        param: &'static str,
        value: impl fmt::Display,
        expected: &'static str,
    ) -> Self {
        ConfigError::OutOfRange {
            stage,
            param,
            value: value.to_string(),
            expected,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange {
                stage,
                param,
                value,
                expected,
            } => write!(
                f,
                "`{stage}`: `{param}` must be {expected}, got {value}; pass a {}",
                if *expected == "at least 1" {
                    "non-zero value"
                } else {
                    "value in that range"
                }
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Checks that `value` is non-zero, naming the stage and parameter otherwise.
pub(crate) fn nonzero(
    stage: &'static str,
    param: &'static str,
    value: usize,
) -> Result<std::num::NonZeroUsize, ConfigError> {
    std::num::NonZeroUsize::new(value).ok_or_else(|| ConfigError::zero(stage, param))
}

/// Unwraps a built stage, panicking with the configuration error's message.
///
/// The `PipelineExt` methods use this so that `s.prefetch(0)` fails at the call site with a
/// message that names the stage, the parameter, the value and the fix.
#[track_caller]
pub(crate) fn built<T>(result: Result<T, ConfigError>) -> T {
    match result {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}
