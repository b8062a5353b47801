//! The one place where argument values are parsed and checked, and where errors become
//! `compile_error!` tokens.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Token, spanned::Spanned};

/// Keywords of `#[stream_stage(...)]` arguments.
pub(crate) mod kw {
    syn::custom_keyword!(item);
    syn::custom_keyword!(error);
    syn::custom_keyword!(name);
    syn::custom_keyword!(local);
}

/// Parses `= <value>` after `key`, with pin-project style messages:
/// "expected `item = <type>`, found `item`" / "expected `item = <type>`, found `item =`".
pub(crate) fn parse_value<T: Parse>(
    input: ParseStream<'_>,
    key: &dyn ToTokens,
    key_name: &str,
    expected: &str,
) -> syn::Result<T> {
    let key_span = key.to_token_stream().span();
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            key_span,
            format!("expected `{key_name} = {expected}`, found `{key_name}`"),
        ));
    }
    let eq: Token![=] = input.parse()?;
    if input.is_empty() || input.peek(Token![,]) {
        let mut tokens = key.to_token_stream();
        eq.to_tokens(&mut tokens);
        return Err(syn::Error::new_spanned(
            tokens,
            format!("expected `{key_name} = {expected}`, found `{key_name} =`"),
        ));
    }
    input
        .parse::<T>()
        .map_err(|e| syn::Error::new(e.span(), format!("expected `{key_name} = {expected}`: {e}")))
}

/// Stores `value` in `slot` unless the argument was already given ("duplicate `item` argument").
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    key_span: Span,
    key_name: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key_span,
            format!("duplicate `{key_name}` argument"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Collects several errors so that one compile reports all of them.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Turns a pass result into tokens: on error, the errors followed by `fallback` (the user's
/// item or a stub) so that dependent code does not pile up follow-up errors.
pub(crate) fn into_tokens(result: syn::Result<TokenStream>, fallback: TokenStream) -> TokenStream {
    match result {
        Ok(tokens) => tokens,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(fallback);
            out
        }
    }
}
