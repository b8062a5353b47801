//! Pass 1 of `pipeline!`: split the input on top-level `=>` and parse every stage, collecting
//! every bad stage into one error.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Token};

use crate::error::Errors;

/// The start of a pipeline.
pub(crate) enum Head {
    /// `source_expr`
    Source(Expr),
    /// `_` or `_: Type`: the pipeline is a reusable stage (of upstreams of that type).
    Placeholder(Option<syn::Type>),
}

/// One `=> …` stage.
pub(crate) enum StageKind {
    /// `f(args)` -> `f(upstream, args)`.
    Call {
        func: Expr,
        args: Punctuated<Expr, Token![,]>,
    },
    /// `f` -> `f(upstream)`.
    Path(Expr),
    /// `.m(args)…` -> `upstream.m(args)…`.
    Method(TokenStream),
}

pub(crate) struct Stage {
    pub(crate) kind: StageKind,
    /// The name it is metered under: given (`"fetch": stage`) or derived from its tokens,
    /// made unique in the pipeline (`filter_map`, `filter_map#2`).
    pub(crate) name: String,
    /// The span of its first token (calls are spanned there).
    pub(crate) span: Span,
    /// The span of the token it is named after (the stream check is spanned there).
    pub(crate) name_span: Span,
}

/// A name given with `"name": stage`.
struct Given {
    name: String,
    span: Span,
}

/// Where the stages are metered (`metrics = …;` before the source).
pub(crate) enum Metering {
    /// Default: every stage is metered under its name into `Metrics::global()`.
    Global,
    /// `metrics = off;`: plain nested calls, nothing added.
    Off,
    /// `metrics = <expr>;`: every stage is metered into this `&Metrics` registry.
    Registry(TokenStream),
}

pub(crate) struct Pipeline {
    pub(crate) krate: TokenStream,
    pub(crate) metering: Metering,
    /// `timing = on;`: every metered stage also times its polls (`.with_timing()`).
    pub(crate) timing: bool,
    /// `tracing = on;`: every metered stage enters a span named after it (`.traced()`).
    pub(crate) tracing: bool,
    pub(crate) head: Head,
    pub(crate) head_name: String,
    pub(crate) head_span: Span,
    pub(crate) head_name_span: Span,
    pub(crate) stages: Vec<Stage>,
}

/// The options `pipeline!` takes before the source.
const OPTIONS: [&str; 3] = ["metrics", "timing", "tracing"];

const STAGE_FORMS: &str = "a call `f(args)` (called as `f(upstream, args)`), a function path `f` (called as `f(upstream)`) or a method `.m(args)` (called as `upstream.m(args)`)";

fn is_arrow(a: &TokenTree, b: Option<&TokenTree>) -> bool {
    matches!((a, b), (TokenTree::Punct(p), Some(TokenTree::Punct(q)))
        if p.as_char() == '=' && p.spacing() == proc_macro2::Spacing::Joint && q.as_char() == '>')
}

/// Segments between top-level `=>`, each with the span of the `=>` before it.
fn split(tokens: TokenStream) -> Vec<(Span, Vec<TokenTree>)> {
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = vec![(Span::call_site(), Vec::new())];
    let mut i = 0;
    while i < tts.len() {
        if is_arrow(&tts[i], tts.get(i + 1)) {
            out.push((tts[i].span(), Vec::new()));
            i += 2;
        } else {
            out.last_mut().expect("non-empty").1.push(tts[i].clone());
            i += 1;
        }
    }
    out
}

/// The name a stage is metered under by default, with the span of the token it comes from.
fn name_of(e: &Expr) -> Option<(String, Span)> {
    let ident = |i: &proc_macro2::Ident| {
        Some((i.to_string().trim_start_matches("r#").to_owned(), i.span()))
    };
    match e {
        Expr::Call(c) => name_of(&c.func),
        Expr::Path(p) => p.path.segments.last().and_then(|s| ident(&s.ident)),
        Expr::MethodCall(m) => ident(&m.method),
        Expr::Macro(m) => m.mac.path.segments.last().and_then(|s| ident(&s.ident)),
        Expr::Paren(p) => name_of(&p.expr),
        Expr::Reference(r) => name_of(&r.expr),
        Expr::Try(t) => name_of(&t.expr),
        _ => None,
    }
}

/// `"name": …` before a stage (or the source): the name and the remaining tokens.
fn given_name(tokens: &[TokenTree]) -> syn::Result<(Option<Given>, &[TokenTree])> {
    let single_colon = |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == proc_macro2::Spacing::Alone);
    match tokens {
        [TokenTree::Literal(lit), colon, rest @ ..] if single_colon(Some(colon)) => {
            let lit_span = lit.span();
            let syn::Lit::Str(s) = syn::Lit::new(lit.clone()) else {
                return Err(syn::Error::new(
                    lit_span,
                    format!(
                        "a stage name is a string literal: write `\"name\": stage`, found `{lit}`"
                    ),
                ));
            };
            let name = s.value();
            if name.trim().is_empty() {
                return Err(syn::Error::new(
                    lit_span,
                    "a stage name cannot be empty: it labels the stage in metrics and tracing",
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(syn::Error::new(
                    lit_span,
                    "a stage name cannot contain control characters (newlines, tabs): it is printed in reports and exported as a label",
                ));
            }
            if rest.is_empty() {
                return Err(syn::Error::new(
                    colon.span(),
                    format!("expected a stage after the name `\"{name}\":`: {STAGE_FORMS}"),
                ));
            }
            Ok((
                Some(Given {
                    name,
                    span: lit_span,
                }),
                rest,
            ))
        }
        [TokenTree::Ident(i), colon, rest @ ..] if single_colon(Some(colon)) && i != "_" => {
            let _ = rest;
            Err(syn::Error::new(
                i.span(),
                format!("a stage name is a string literal: write `\"{i}\": stage`"),
            ))
        }
        _ => Ok((None, tokens)),
    }
}

/// Parses one expression that must use every token of the segment.
fn parse_whole(tokens: TokenStream) -> syn::Result<Expr> {
    let parser = |input: syn::parse::ParseStream<'_>| {
        let e: Expr = input.parse()?;
        if !input.is_empty() {
            let next: TokenTree = input.parse()?;
            return Err(syn::Error::new(
                next.span(),
                format!("expected `=>` between stages, found `{next}`"),
            ));
        }
        Ok(e)
    };
    parser.parse2(tokens)
}

/// A stage as written, before its name is made unique.
struct Parsed {
    kind: StageKind,
    given: Option<Given>,
    derived: String,
    span: Span,
    name_span: Span,
}

const CHAIN_HELP: &str = "to chain methods inside one stage, put the chain in parentheses: `=> (.a(..).b(..))`, or write a function and call it: `=> f(args)`";

/// `.m(args)` after the upstream: exactly one method call (`?` allowed after it). A second
/// method is a missing `=>`, reported on that method.
fn check_one_method(e: &Expr, span: Span) -> syn::Result<(String, Span)> {
    let call = match e {
        Expr::Try(t) => &*t.expr,
        other => other,
    };
    match call {
        Expr::MethodCall(m) if matches!(&*m.receiver, Expr::Path(_)) => {
            Ok((m.method.to_string(), m.method.span()))
        }
        Expr::MethodCall(_) | Expr::Try(_) | Expr::Field(_) | Expr::Await(_) => {
            // Find the second method of the chain: the one whose receiver is the first call.
            let mut cur = call;
            let mut second: Option<&syn::ExprMethodCall> = None;
            loop {
                cur = match cur {
                    Expr::MethodCall(m) => {
                        if !matches!(&*m.receiver, Expr::Path(_)) {
                            second = Some(m);
                        }
                        &m.receiver
                    }
                    Expr::Try(t) => &t.expr,
                    Expr::Field(f) => &f.base,
                    Expr::Await(a) => &a.base,
                    _ => break,
                };
                if matches!(cur, Expr::Path(_)) {
                    break;
                }
            }
            match second {
                Some(m) => {
                    let (dot, method) = (&m.dot_token, &m.method);
                    Err(syn::Error::new_spanned(
                        quote::quote!(#dot #method),
                        format!(
                            "expected `=>` before `.{method}(..)`: every method is its own stage (`=> .a(..) => .{method}(..)`); {CHAIN_HELP}"
                        ),
                    ))
                }
                None => Err(syn::Error::new(
                    span,
                    format!(
                        "expected a method stage like `.prefetch(64)`; stages are {STAGE_FORMS}"
                    ),
                )),
            }
        }
        _ => Err(syn::Error::new(
            span,
            format!("expected a method stage like `.prefetch(64)`; stages are {STAGE_FORMS}"),
        )),
    }
}

/// `__millrace_upstream` followed by `tokens`, parsed as one expression.
fn on_upstream(tokens: &[TokenTree], span: Span) -> syn::Result<Expr> {
    let probe: TokenStream = std::iter::once(TokenTree::Ident(proc_macro2::Ident::new(
        "__millrace_upstream",
        span,
    )))
    .chain(tokens.iter().cloned())
    .collect();
    parse_whole(probe)
}

fn parse_stage(tokens: Vec<TokenTree>, arrow: Span) -> syn::Result<Parsed> {
    let Some(first) = tokens.first() else {
        return Err(syn::Error::new(
            arrow,
            format!("expected a stage after `=>`: {STAGE_FORMS}"),
        ));
    };
    let (given, tokens) = given_name(&tokens)?;
    let first = tokens.first().unwrap_or(first);
    let span = first.span();
    let stream: TokenStream = tokens.iter().cloned().collect();
    if let TokenTree::Punct(p) = first {
        if p.as_char() == '.' {
            let e = on_upstream(tokens, span)?;
            let (derived, name_span) = check_one_method(&e, span)?;
            return Ok(Parsed {
                kind: StageKind::Method(stream),
                given,
                derived,
                span,
                name_span,
            });
        }
    }
    // `(.a(..).b(..))`: a chain of methods as one stage.
    if let [TokenTree::Group(g)] = tokens {
        let inner: Vec<TokenTree> = g.stream().into_iter().collect();
        if g.delimiter() == proc_macro2::Delimiter::Parenthesis
            && matches!(inner.first(), Some(TokenTree::Punct(p)) if p.as_char() == '.')
        {
            let e = on_upstream(&inner, span)?;
            let (derived, name_span) = match first_method(&e) {
                Some(m) => m,
                None => {
                    return Err(syn::Error::new(
                        span,
                        format!(
                            "expected a chain of methods like `(.map(f).take(3))`; stages are {STAGE_FORMS}"
                        ),
                    ));
                }
            };
            return Ok(Parsed {
                kind: StageKind::Method(g.stream()),
                given,
                derived,
                span,
                name_span,
            });
        }
    }
    let e = parse_whole(stream)?;
    let (derived, name_span) = name_of(&e).unwrap_or_else(|| ("stage".to_owned(), span));
    let kind = match e {
        Expr::Call(c) => StageKind::Call {
            func: *c.func,
            args: c.args,
        },
        Expr::Path(_) => StageKind::Path(e),
        other => {
            let found = match &other {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(_),
                    ..
                }) => "a string literal (to name a stage, write `\"name\": stage`)",
                Expr::Lit(_) => "a literal",
                Expr::Closure(_) => "a closure (call it through a method such as `.map(|x| …)`)",
                Expr::Block(_) => "a block",
                Expr::MethodCall(_) => "a method call on a value (method stages start with `.`)",
                _ => "an expression that is not a call",
            };
            return Err(syn::Error::new_spanned(
                other.to_token_stream(),
                format!("expected a stage: {STAGE_FORMS}; found {found}"),
            ));
        }
    };
    Ok(Parsed {
        kind,
        given,
        derived,
        span,
        name_span,
    })
}

/// The innermost (first) method name of `__millrace_upstream.a(..).b(..)`, with its span.
fn first_method(e: &Expr) -> Option<(String, Span)> {
    match e {
        Expr::MethodCall(m) => match &*m.receiver {
            Expr::Path(_) => Some((m.method.to_string(), m.method.span())),
            inner => first_method(inner),
        },
        Expr::Field(f) => first_method(&f.base),
        Expr::Await(a) => first_method(&a.base),
        Expr::Try(t) => first_method(&t.expr),
        _ => None,
    }
}

pub(crate) fn parse(input: TokenStream) -> syn::Result<Pipeline> {
    // `crate = <path>;` is always first: the facade's `macro_rules! pipeline` passes `$crate`.
    let mut tts = input.into_iter().peekable();
    let mut krate = TokenStream::new();
    match (tts.next(), tts.next()) {
        (Some(TokenTree::Ident(k)), Some(TokenTree::Punct(eq)))
            if k == "crate" && eq.as_char() == '=' =>
        {
            for tt in tts.by_ref() {
                if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ';') {
                    break;
                }
                krate.extend([tt]);
            }
        }
        _ => {
            return Err(syn::Error::new(
                Span::call_site(),
                "internal: `pipeline_impl!` expects `crate = <path>;` first; use `millrace::pipeline!`",
            ));
        }
    }
    let mut rest: Vec<TokenTree> = tts.collect();
    // Options before the source, each `name = value;`: `metrics = off | <registry expr>`,
    // `timing = on | off`, `tracing = on | off`. (A source is never an assignment, so an
    // identifier followed by a lone `=` can only be an option.)
    let mut metering = Metering::Global;
    let (mut timing, mut tracing): (Option<Span>, Option<Span>) = (None, None);
    let mut seen: Vec<String> = Vec::new();
    while let [TokenTree::Ident(k), TokenTree::Punct(eq), ..] = rest.as_slice() {
        if eq.as_char() != '=' || eq.spacing() != proc_macro2::Spacing::Alone {
            break;
        }
        let name = k.to_string();
        let (k_span, eq_span) = (k.span(), eq.span());
        if !OPTIONS.contains(&name.as_str()) {
            return Err(syn::Error::new(
                k_span,
                format!(
                    "unknown option `{name}`: the options before the source are `metrics = off;`, \
                     `metrics = <&Metrics expression>;`, `timing = on;` and `tracing = on;`"
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(syn::Error::new(
                k_span,
                format!("the option `{name}` is set twice: keep one"),
            ));
        }
        seen.push(name.clone());
        let Some(semi) = rest
            .iter()
            .position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ';'))
        else {
            return Err(syn::Error::new(
                eq_span,
                format!("the option `{name} = …` ends with `;` before the source"),
            ));
        };
        let value: Vec<TokenTree> = rest[2..semi].to_vec();
        if name == "metrics" {
            metering = match value.as_slice() {
                [] => {
                    return Err(syn::Error::new(
                        k_span,
                        "expected `metrics = off;` or `metrics = <&Metrics expression>;`, found `metrics = ;`",
                    ));
                }
                [TokenTree::Ident(off)] if off == "off" => Metering::Off,
                _ => Metering::Registry(value.into_iter().collect()),
            };
        } else {
            let on = match value.as_slice() {
                [TokenTree::Ident(v)] if v == "on" => Some(k_span),
                [TokenTree::Ident(v)] if v == "off" => None,
                _ => {
                    let at = value.first().map_or(k_span, TokenTree::span);
                    return Err(syn::Error::new(
                        at,
                        format!("expected `{name} = on;` or `{name} = off;`"),
                    ));
                }
            };
            if name == "timing" {
                timing = on;
            } else {
                tracing = on;
            }
        }
        rest.drain(..=semi);
    }
    if matches!(metering, Metering::Off)
        && let Some(at) = timing.or(tracing)
    {
        return Err(syn::Error::new(
            at,
            "`timing = on;` and `tracing = on;` apply to the metered stages, and `metrics = off;` \
             meters none: remove one of them",
        ));
    }
    let rest: TokenStream = rest.into_iter().collect();
    if rest.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "empty pipeline: expected `source => stage => …` or `_ => stage => …`",
        ));
    }
    let mut segments = split(rest).into_iter();
    let (_, head_tokens) = segments.next().expect("at least one segment");
    let mut errors = Errors::default();

    // The source may be named too (`"books": source`); `_` may not (it is not a stage).
    let (head_given, head_tokens) = match given_name(&head_tokens) {
        Ok((given, rest)) => (given, rest.to_vec()),
        Err(e) => {
            errors.push(e);
            (None, Vec::new())
        }
    };
    let head_span = head_tokens
        .first()
        .map_or_else(Span::call_site, TokenTree::span);
    let mut head_ok = true;
    let mut head_name_span = head_span;
    let (head, head_name) = match head_tokens.as_slice() {
        [] if !errors.is_empty() => {
            head_ok = false;
            (Head::Placeholder(None), String::new())
        }
        [] => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "expected a source expression or `_` before the first `=>`",
            ));
            head_ok = false;
            (Head::Placeholder(None), String::new())
        }
        [TokenTree::Ident(i)] if i == "_" => (Head::Placeholder(None), String::new()),
        [TokenTree::Ident(i), TokenTree::Punct(colon), rest @ ..]
            if i == "_" && colon.as_char() == ':' =>
        {
            let ty: TokenStream = rest.iter().cloned().collect();
            match syn::parse2::<syn::Type>(ty) {
                Ok(ty) => (Head::Placeholder(Some(ty)), String::new()),
                Err(e) => {
                    errors.push(syn::Error::new(
                        e.span(),
                        format!("expected `_: <upstream type>`: {e}"),
                    ));
                    head_ok = false;
                    (Head::Placeholder(None), String::new())
                }
            }
        }
        _ => {
            let tokens: TokenStream = head_tokens.iter().cloned().collect();
            // `_` followed by more tokens is a user error too, reported by the parser.
            match parse_whole(tokens) {
                Ok(e) => {
                    let (name, span) =
                        name_of(&e).unwrap_or_else(|| ("source".to_owned(), head_span));
                    head_name_span = span;
                    (Head::Source(e), name)
                }
                Err(e) => {
                    errors.push(e);
                    head_ok = false;
                    (Head::Placeholder(None), String::new())
                }
            }
        }
    };
    if let (Some(given), Head::Placeholder(_)) = (&head_given, &head) {
        if head_ok {
            errors.push(syn::Error::new(
                given.span,
                "`_` stands for the upstream of a reusable pipeline, not a stage: it cannot be named (name the stages after it)",
            ));
        }
    }

    let mut parsed = Vec::new();
    for (arrow, tokens) in segments {
        match parse_stage(tokens, arrow) {
            Ok(s) => parsed.push(s),
            Err(e) => errors.push(e),
        }
    }
    if head_ok && matches!(head, Head::Placeholder(_)) && parsed.is_empty() {
        errors.push(syn::Error::new(
            head_span,
            "a reusable pipeline `_ => …` needs at least one stage after `_`",
        ));
    }

    // Names: every given name once; a derived name that is taken gets `#2`, `#3`, …
    let mut taken: Vec<String> = Vec::new();
    let givens = head_given
        .iter()
        .filter(|_| matches!(head, Head::Source(_)))
        .chain(parsed.iter().filter_map(|p| p.given.as_ref()));
    for given in givens {
        if taken.contains(&given.name) {
            errors.push(syn::Error::new(
                given.span,
                format!(
                    "two stages of this pipeline are named `{}`: names tell stages apart in metrics and tracing, rename one",
                    given.name
                ),
            ));
        } else {
            taken.push(given.name.clone());
        }
    }
    let mut unique = |given: Option<&Given>, derived: &str| -> String {
        if let Some(g) = given {
            return g.name.clone();
        }
        let mut name = derived.to_owned();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{derived}#{n}");
            n += 1;
        }
        taken.push(name.clone());
        name
    };
    let head_name = match head {
        Head::Source(_) => unique(head_given.as_ref(), &head_name),
        Head::Placeholder(_) => head_name,
    };
    let stages = parsed
        .into_iter()
        .map(|p| Stage {
            name: unique(p.given.as_ref(), &p.derived),
            kind: p.kind,
            span: p.span,
            name_span: p.name_span,
        })
        .collect();
    errors.finish()?;
    Ok(Pipeline {
        krate,
        metering,
        timing: timing.is_some(),
        tracing: tracing.is_some(),
        head,
        head_name,
        head_span,
        head_name_span,
        stages,
    })
}
