//! Pass 2 of `pipeline!`: plain nested calls, each stage checked to be a stream at its span,
//! then — unless `metrics = off;` — metered under its name into the chosen registry,
//! adopting the retry/fallback/skip counters and gauges of the stage when it has them,
//! counting its `Err` items when its items are `Result`s, fed by the stage before it
//! (`items_in`), timed and traced when asked.
//!
//! Metered, each stage's value is a pair `(stream, its counters)`, so the next stage is fed by
//! the counters without borrowing the built stream (the final value drops the counters).
//!
//! The stage's own value is looked at (events, error counting) and checked *before* it is
//! wrapped for metering, so an error speaks of the stage as written. The check
//! (`__private::checked_stage`) is spanned on the token the stage is named after; a stage that
//! is not a stream gets that one error, and the value it passes on raises no other error in
//! the stages after it or in the code that uses the pipeline (see `__private::Then`).
//!
//! Metered, a function stage (`=> f`, `=> f(args)`) is fed its upstream through
//! `__private::fed`, a transparent wrapper whose item type is what `f` takes: an upstream whose
//! items are of another type is reported as "this stage takes items of type `String`, but the
//! stage before it yields `u32`" at the stage (`__private::Feeds`), once (`checked_fed_stage`),
//! instead of as a type mismatch on the metering wrapper, which the user never wrote.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

use super::parse::{Head, Metering, Pipeline, StageKind};

/// One stage's value: `call` checked to be a stream and, unless `metrics = off`, metered under
/// `name` and paired with its counters. Metered, the stage is fed by `__millrace_fed` (an
/// `Option` of the counters of the stage before), bound by the caller with the stage's span:
/// every local of a stage is spanned at the stage, the same hygiene as `__millrace_upstream`
/// (`quote!`'s call-site span is inside the facade's `macro_rules!`, where a local of the
/// user's span is not visible).
fn stage_value(
    p: &Pipeline,
    name: &str,
    span: Span,
    name_span: Span,
    call: TokenStream,
    fed_key: Option<&Ident>,
) -> TokenStream {
    let krate = &p.krate;
    let private = quote!(#krate::__private);
    let registry = match &p.metering {
        Metering::Off => return quote_spanned!(span=> #private::stage(#name, #call)),
        Metering::Global => quote!(#krate::Metrics::global()),
        Metering::Registry(_) => quote!(__millrace_metrics),
    };
    let value = Ident::new("__millrace_value", name_span);
    // The call expression must be spanned like its argument (so that rustc reports the check
    // once), and a call through `#private::…` would start at the path's span: call an alias.
    let check = Ident::new("__millrace_checked_stage", name_span);
    let checked = match fed_key {
        // A function stage fed through `__private::fed`: also checked to take the items its
        // upstream yields (reported once, at the stage, and not again after it).
        Some(key) => quote_spanned! {name_span=> {
            use #private::checked_fed_stage as #check;
            #check(#value, #key)
        }},
        None => quote_spanned! {name_span=> {
            use #private::checked_stage as #check;
            #check(#value)
        }},
    };
    let timing = p.timing.then(|| quote!(.with_timing()));
    let tracing = p.tracing.then(|| quote!(.traced()));
    // `match`, not `let`: temporaries of the stage's expression live as long as in nested calls.
    quote_spanned! {span=>
        match #call { #value => {
            let __millrace_counters = #private::register_stage(#registry, #name, __millrace_fed);
            #[allow(unused_imports)]
            use #private::{AdoptEvents as _, CountsErrors as _, IgnoresErrors as _, NoEvents as _};
            (&#private::StageProbe(&#value)).adopt_events(&__millrace_counters);
            let __millrace_counting = (&#private::StageProbe(&#value)).error_counting();
            let #value = #checked;
            (
                #private::meter(#value, &__millrace_counters, __millrace_counting) #tracing #timing,
                ::core::option::Option::Some(__millrace_counters),
            )
        }}
    }
}

pub(crate) fn expand(p: Pipeline) -> TokenStream {
    let krate = &p.krate;
    let metered = !matches!(p.metering, Metering::Off);
    // What each stage's `match` binds its upstream value to: the stream, or (metered) the
    // pair of the stream and the counters that feed the stage.
    let binding = |span: Span| {
        if metered {
            quote_spanned!(span=> (__millrace_upstream, __millrace_fed))
        } else {
            quote_spanned!(span=> __millrace_upstream)
        }
    };
    let (mut cur, reusable) = match &p.head {
        Head::Source(e) => {
            let name = &p.head_name;
            let span = p.head_span;
            let value = stage_value(&p, name, span, p.head_name_span, quote!(#e), None);
            // The source is fed by nothing.
            let value = if metered {
                quote_spanned! {span=> {
                    let __millrace_fed = ::core::option::Option::None;
                    #value
                }}
            } else {
                value
            };
            (value, None)
        }
        Head::Placeholder(ty) => {
            // A reusable stage's input is the caller's stream: nothing feeds its first stage.
            let input = if metered {
                quote!((__millrace_upstream, ::core::option::Option::None))
            } else {
                quote!(__millrace_upstream)
            };
            (input, Some(ty))
        }
    };
    for stage in &p.stages {
        let span = stage.span;
        let name = &stage.name;
        // Each upstream is bound by a `match` (temporaries live as long as in nested calls) to
        // an identifier spanned at the stage that consumes it, so an upstream of the wrong type
        // is reported at that stage, not across the whole pipeline.
        let up = quote_spanned!(span=> __millrace_upstream);
        // Metered, a function stage is fed through `__private::fed`, so that an upstream whose
        // items are not what the function takes is reported as such, not as a type mismatch
        // on the metering wrapper. A method stage's receiver stays the metered stream (its
        // methods are looked up on it).
        let fed_key = (metered && !matches!(stage.kind, StageKind::Method(_)))
            .then(|| Ident::new("__millrace_fed_key", span));
        let call = match &stage.kind {
            StageKind::Call { func, args } => {
                if args.is_empty() {
                    quote_spanned!(span=> #func(#up))
                } else {
                    quote_spanned!(span=> #func(#up, #args))
                }
            }
            StageKind::Path(func) => quote_spanned!(span=> #func(#up)),
            StageKind::Method(tokens) => quote_spanned!(span=> #up #tokens),
        };
        let value = stage_value(&p, name, span, stage.name_span, call, fed_key.as_ref());
        let value = match &fed_key {
            // Through an alias spanned at the stage: a path through `#krate::__private` would
            // start at the call site, the whole `pipeline!` invocation.
            Some(key) => {
                let fed = Ident::new("__millrace_fed_upstream", span);
                quote_spanned! {span=> {
                    use #krate::__private::fed as #fed;
                    let (__millrace_upstream, #key) = #fed(__millrace_upstream);
                    #value
                }}
            }
            None => value,
        };
        let bind = binding(span);
        cur = quote_spanned! {span=>
            match #cur {
                #bind => #value,
            }
        };
    }
    if metered {
        // The pipeline's value is the last stage; its counters were only for a next stage.
        // Through `finish`, so that after a last stage that is not a stream, the code using
        // the pipeline (`.collect()`, `.await`) raises no error of its own.
        let private = quote!(#krate::__private);
        let at = p.stages.last().map_or(p.head_name_span, |s| s.name_span);
        let last = Ident::new("__millrace_last", at);
        let finish = Ident::new("__millrace_finish", at);
        let checked = quote_spanned! {at=> {
            use #private::finish as #finish;
            #finish(#last)
        }};
        cur = quote_spanned! {at=>
            match #cur {
                (#last, _) => #checked,
            }
        };
    }
    let body = match reusable {
        Some(Some(ty)) => quote!(#krate::stage_fn(move |__millrace_upstream: #ty| #cur)),
        Some(None) => quote!(#krate::stage_fn(move |__millrace_upstream| #cur)),
        None => cur,
    };
    match &p.metering {
        // Evaluated once, whatever the number of stages.
        Metering::Registry(registry) => quote! {{
            let __millrace_metrics: &#krate::Metrics = #registry;
            #body
        }},
        Metering::Global | Metering::Off => body,
    }
}
