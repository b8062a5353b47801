//! Small internal macros shared by the wrappers.

/// Generates `get_ref`, `get_mut`, `get_pin_mut` and `into_inner` for a wrapper whose
/// upstream stream lives in the pinned field `$field` of type `$inner`.
#[doc(hidden)]
#[macro_export] // reached by the adapters through `__private`
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
}
