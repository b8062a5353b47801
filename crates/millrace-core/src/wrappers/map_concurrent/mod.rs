//! `map_concurrent` and its variants: bounded concurrent mapping of items to futures.
//!
//! * [`MapConcurrent`] — spawned mode (`Send + 'static` work on tokio tasks), ordered or
//!   unordered;
//! * [`MapConcurrentLocal`] — local mode (work polled inside the stream, `!Send` allowed);
//! * [`TryMapConcurrent`] — spawned, fail-fast on the first `Err`;
//! * [`MapConcurrentStage`], [`TryMapConcurrentStage`] — the spawned modes as reusable
//!   [`Stage`](crate::Stage)s.
//!
//! Every member is built from one checked [`Limits`](engine::Limits) value by the one set of
//! constructors that [`family_constructors!`] writes; the spawned members share one
//! [`Engine`](engine::Engine).

/// The constructors of one member of the family, written once: `new`/`checked_new` (ordered)
/// and the unordered pair (`new_unordered`/`checked_new_unordered` on the streams,
/// `unordered`/`checked_unordered` on the stages), plus the deprecated `try_*` names. The
/// type provides `from_limits(upstream?, f, Limits)`.
macro_rules! family_constructors {
    (
        type: $ty:literal,
        names: ($ordered:literal, $unordered:literal),
        unordered: ($unordered_fn:ident, $checked_unordered:ident, $try_unordered:ident),
        params: ($($up:ident: $up_ty:ty),*),
        example: ($uses:literal, $args:literal)
    ) => {
        /// Ordered: outputs in input order, at most `limit` in flight.
        ///
        /// # Panics
        ///
        /// If `limit` is 0 (see [`checked_new`](Self::checked_new)).
        pub fn new($($up: $up_ty,)* limit: usize, f: F) -> Self {
            crate::error::built(Self::checked_new($($up,)* limit, f))
        }

        /// Ordered, or a [`ConfigError`](crate::ConfigError) if `limit` is 0.
        ///
        /// ```
        #[doc = concat!("use millrace::wrappers::", $ty, ";")]
        #[doc = $uses]
        ///
        #[doc = concat!("let err = ", $ty, "::checked_new(", $args, ").unwrap_err();")]
        /// assert_eq!(
        ///     err.to_string(),
        #[doc = concat!("    \"`", $ordered, "`: `limit` must be at least 1, got 0; pass a non-zero value\"")]
        /// );
        /// ```
        pub fn checked_new(
            $($up: $up_ty,)*
            limit: usize,
            f: F,
        ) -> Result<Self, crate::ConfigError> {
            let limits = super::engine::Limits::new(true, $ordered, limit)?;
            Ok(Self::from_limits($($up,)* f, limits))
        }

        /// Unordered: outputs in completion order, at most `limit` in flight.
        ///
        /// # Panics
        ///
        #[doc = concat!("If `limit` is 0 (see [`", stringify!($checked_unordered), "`](Self::", stringify!($checked_unordered), ")).")]
        pub fn $unordered_fn($($up: $up_ty,)* limit: usize, f: F) -> Self {
            crate::error::built(Self::$checked_unordered($($up,)* limit, f))
        }

        /// Unordered, or a [`ConfigError`](crate::ConfigError) if `limit` is 0.
        ///
        /// ```
        #[doc = concat!("use millrace::wrappers::", $ty, ";")]
        #[doc = $uses]
        ///
        #[doc = concat!("let err = ", $ty, "::", stringify!($checked_unordered), "(", $args, ").unwrap_err();")]
        /// assert_eq!(
        ///     err.to_string(),
        #[doc = concat!("    \"`", $unordered, "`: `limit` must be at least 1, got 0; pass a non-zero value\"")]
        /// );
        /// ```
        pub fn $checked_unordered(
            $($up: $up_ty,)*
            limit: usize,
            f: F,
        ) -> Result<Self, crate::ConfigError> {
            let limits = super::engine::Limits::new(false, $unordered, limit)?;
            Ok(Self::from_limits($($up,)* f, limits))
        }

        /// Renamed [`checked_new`](Self::checked_new).
        #[doc(hidden)]
        #[deprecated(since = "0.2.0", note = "use `checked_new`")]
        pub fn try_new($($up: $up_ty,)* limit: usize, f: F) -> Result<Self, crate::ConfigError> {
            Self::checked_new($($up,)* limit, f)
        }

        /// Renamed to its `checked_` form.
        #[doc(hidden)]
        #[deprecated(since = "0.2.0", note = "use the `checked_` constructor of the same name")]
        pub fn $try_unordered(
            $($up: $up_ty,)*
            limit: usize,
            f: F,
        ) -> Result<Self, crate::ConfigError> {
            Self::$checked_unordered($($up,)* limit, f)
        }
    };
}

mod engine;
// Each file is named after the method that builds its wrapper, `map_concurrent` included.
#[allow(clippy::module_inception)]
mod map_concurrent;
mod map_concurrent_local;
mod stage;
mod try_map_concurrent;

pub(crate) use self::engine::unwrap_join;
pub use self::map_concurrent::MapConcurrent;
pub use self::map_concurrent_local::MapConcurrentLocal;
pub use self::stage::{MapConcurrentStage, TryMapConcurrentStage};
pub use self::try_map_concurrent::TryMapConcurrent;
