//! Pass 1: the arguments of `#[stream_stage(...)]`.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, Path, Token, Type};

use crate::error::{kw, parse_value, set_once};

const EXPECTED: &str = "expected one of `item`, `error`, `name`, `local`, `crate`";

/// Parsed `#[stream_stage(item = T, error = E, name = Ident, local, crate = path)]`.
pub(crate) struct Args {
    pub(crate) item: Type,
    pub(crate) error: Option<Type>,
    pub(crate) name: Option<Ident>,
    pub(crate) local: bool,
    pub(crate) krate: Path,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut item = None;
        let mut error = None;
        let mut name = None;
        let mut local = None;
        let mut krate = None;
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::item) {
                let key: kw::item = input.parse()?;
                let value = parse_value::<Type>(input, &key, "item", "<type>")?;
                set_once(&mut item, value, key.span, "item")?;
            } else if lookahead.peek(kw::error) {
                let key: kw::error = input.parse()?;
                let value = parse_value::<Type>(input, &key, "error", "<type>")?;
                set_once(&mut error, value, key.span, "error")?;
            } else if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                let value = parse_value::<Ident>(input, &key, "name", "<Ident>")?;
                set_once(&mut name, value, key.span, "name")?;
            } else if lookahead.peek(kw::local) {
                let key: kw::local = input.parse()?;
                set_once(&mut local, (), key.span, "local")?;
            } else if lookahead.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                let value = parse_value::<Path>(input, &key, "crate", "<path>")?;
                set_once(&mut krate, value, key.span, "crate")?;
            } else if input.peek(Ident::peek_any) {
                let unknown = input.call(Ident::parse_any)?;
                return Err(syn::Error::new(
                    unknown.span(),
                    format!("unknown argument `{unknown}`; {EXPECTED}"),
                ));
            } else {
                let e = lookahead.error();
                return Err(syn::Error::new(e.span(), format!("{e}; {EXPECTED}")));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        let Some(item) = item else {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `item = <type>` argument: `#[stream_stage(item = T)]` declares the type of the items the stage emits",
            ));
        };
        Ok(Args {
            item,
            error,
            name,
            local: local.is_some(),
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::millrace)),
        })
    }
}

/// The `crate = path` argument of arguments that did not parse as a whole (so that the stub
/// emitted beside their errors refers to the right crate); `::millrace` without one.
pub(crate) fn crate_hint(attr: proc_macro2::TokenStream) -> Path {
    let tts: Vec<proc_macro2::TokenTree> = attr.into_iter().collect();
    let found = tts.windows(2).position(|w| {
        matches!(&w[0], proc_macro2::TokenTree::Ident(k) if k == "crate")
            && matches!(&w[1], proc_macro2::TokenTree::Punct(p) if p.as_char() == '=')
    });
    found
        .and_then(|i| {
            let value: proc_macro2::TokenStream = tts[i + 2..]
                .iter()
                .take_while(
                    |t| !matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ','),
                )
                .cloned()
                .collect();
            syn::parse2::<Path>(value).ok()
        })
        .unwrap_or_else(|| syn::parse_quote!(::millrace))
}

impl Args {
    /// The `Stream::Item` type: `T`, or `Result<T, E>` with `error = E`.
    pub(crate) fn item_type(&self) -> Type {
        let item = &self.item;
        match &self.error {
            Some(e) => syn::parse_quote!(::core::result::Result<#item, #e>),
            None => item.clone(),
        }
    }
}
