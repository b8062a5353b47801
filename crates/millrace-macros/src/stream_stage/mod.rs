//! `#[stream_stage]`: parse the arguments, analyse the signature, check and lower the body,
//! generate the struct. Each pass returns `syn::Result`; `crate::error::into_tokens` is the one
//! place that turns errors into `compile_error!`.

mod args;
mod body;
mod expand;
mod signature;

use proc_macro2::TokenStream;

use crate::error::into_tokens;

pub(crate) fn stream_stage(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!("`#[stream_stage]` must be applied to an `async fn`: {e}"),
            );
            return into_tokens(Err(e), item);
        }
    };
    let args = syn::parse2::<args::Args>(attr.clone());
    let out = match &args {
        Ok(args) => into_tokens(expand::expand(args, &func), expand::stub(&func, args)),
        Err(e) => {
            // Report signature/body problems in the same compile as argument problems. The
            // first error is the stub's item type (see `expand::stub_with`), so that code using
            // the stream raises nothing more; the others are emitted beside it.
            let mut e = e.clone();
            if let Err(more) = signature::analyze(&func) {
                e.combine(more);
            }
            let mut errors = e.into_iter();
            let first = errors.next().map(|e| e.to_compile_error());
            let rest = errors.map(|e| e.to_compile_error());
            let stub =
                expand::stub_with(&func, &args::crate_hint(attr), quote::quote!([(); #first]));
            quote::quote! { #stub #(#rest)* }
        }
    };
    if std::env::var_os("MILLRACE_MACROS_DEBUG").is_some() {
        eprintln!(
            "// #[stream_stage] expansion of `{}`:\n{out}\n",
            func.sig.ident
        );
    }
    out
}
