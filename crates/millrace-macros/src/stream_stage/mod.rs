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
    let args = syn::parse2::<args::Args>(attr);
    let result = match &args {
        Ok(args) => expand::expand(args, &func),
        Err(e) => {
            // Report signature/body problems in the same compile as argument problems.
            let mut e = e.clone();
            if let Err(more) = signature::analyze(&func) {
                e.combine(more);
            }
            Err(e)
        }
    };
    let fallback = expand::stub(&func, args.as_ref().ok());
    let out = into_tokens(result, fallback);
    if std::env::var_os("MILLRACE_MACROS_DEBUG").is_some() {
        eprintln!(
            "// #[stream_stage] expansion of `{}`:\n{out}\n",
            func.sig.ident
        );
    }
    out
}
