//! Small macros shared by the wrappers.

/// Generates `get_ref`, `get_mut`, `get_pin_mut` and `into_inner` for a wrapper built with
/// `pin_project!` (STYLE.md, point 1: one macro instead of the same four methods in every file).
///
/// Invoke it inside an inherent `impl` block of the wrapper:
/// - `delegate_access_inner!(field, S)`: the upstream `S` is the pinned field `field`;
/// - `delegate_access_inner!(optional field, S)`: the pinned field is an `Option<S>`, emptied
///   when the wrapper drops its upstream; the accessors return `Option`s;
/// - `delegate_access_inner!(via field, S)`: the pinned field is an inner wrapper that has
///   these accessors itself; they are forwarded to it.
///
/// Exported (hidden) for the adapters crate as `millrace_core::__private::delegate_access_inner`;
/// it is not part of the public API.
#[doc(hidden)]
#[macro_export]
macro_rules! delegate_access_inner {
    ($field:ident, $inner:ty) => {
        /// Acquires a reference to the upstream stream this wrapper pulls from.
        pub fn get_ref(&self) -> &$inner {
            &self.$field
        }

        /// Acquires a mutable reference to the upstream stream.
        ///
        /// Pulling items from it directly bypasses this wrapper's bookkeeping.
        pub fn get_mut(&mut self) -> &mut $inner {
            &mut self.$field
        }

        /// Acquires a pinned mutable reference to the upstream stream.
        pub fn get_pin_mut(self: ::core::pin::Pin<&mut Self>) -> ::core::pin::Pin<&mut $inner> {
            self.project().$field
        }

        /// Consumes this wrapper, returning the upstream stream.
        pub fn into_inner(self) -> $inner {
            self.$field
        }
    };
    (optional $field:ident, $inner:ty) => {
        /// Acquires a reference to the upstream stream, or `None` once this wrapper dropped it.
        pub fn get_ref(&self) -> ::core::option::Option<&$inner> {
            self.$field.as_ref()
        }

        /// Acquires a mutable reference to the upstream stream, or `None` once this wrapper
        /// dropped it.
        ///
        /// Pulling items from it directly bypasses this wrapper's bookkeeping.
        pub fn get_mut(&mut self) -> ::core::option::Option<&mut $inner> {
            self.$field.as_mut()
        }

        /// Acquires a pinned mutable reference to the upstream stream, or `None` once this
        /// wrapper dropped it.
        pub fn get_pin_mut(
            self: ::core::pin::Pin<&mut Self>,
        ) -> ::core::option::Option<::core::pin::Pin<&mut $inner>> {
            self.project().$field.as_pin_mut()
        }

        /// Consumes this wrapper, returning the upstream stream unless it was dropped.
        pub fn into_inner(self) -> ::core::option::Option<$inner> {
            self.$field
        }
    };
    (via $field:ident, $inner:ty) => {
        /// Acquires a reference to the upstream stream this wrapper pulls from.
        pub fn get_ref(&self) -> &$inner {
            self.$field.get_ref()
        }

        /// Acquires a mutable reference to the upstream stream.
        ///
        /// Pulling items from it directly bypasses this wrapper's bookkeeping.
        pub fn get_mut(&mut self) -> &mut $inner {
            self.$field.get_mut()
        }

        /// Acquires a pinned mutable reference to the upstream stream.
        pub fn get_pin_mut(self: ::core::pin::Pin<&mut Self>) -> ::core::pin::Pin<&mut $inner> {
            self.project().$field.get_pin_mut()
        }

        /// Consumes this wrapper, returning the upstream stream.
        pub fn into_inner(self) -> $inner {
            self.$field.into_inner()
        }
    };
}
