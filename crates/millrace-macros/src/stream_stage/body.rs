//! Pass 3: the body — checks (`yield_!` placement, `return value`, `?` without `error`), the
//! rewrite for the general (generator) path, and the fast-path detection and lowering.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Block, Expr, ExprForLoop, Ident, Lifetime, Macro, Pat, Path, Stmt, Type};

use crate::error::Errors;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum YieldKind {
    One,
    All,
}

pub(crate) fn yield_kind(mac: &Macro) -> Option<YieldKind> {
    let last = mac.path.segments.last()?;
    if last.ident == "yield_" {
        Some(YieldKind::One)
    } else if last.ident == "yield_all" {
        Some(YieldKind::All)
    } else {
        None
    }
}

fn is_for_await(f: &ExprForLoop) -> bool {
    f.attrs.iter().any(|a| a.path().is_ident("for_await"))
}

fn yield_arg(mac: &Macro, kind: YieldKind) -> syn::Result<Expr> {
    let what = match kind {
        YieldKind::One => "yield_!(<value>)",
        YieldKind::All => "yield_all!(<stream>)",
    };
    if mac.tokens.is_empty() {
        return Err(syn::Error::new_spanned(mac, format!("expected `{what}`")));
    }
    mac.parse_body::<Expr>()
        .map_err(|e| syn::Error::new(e.span(), format!("expected `{what}`: {e}")))
}

/// Checks the body and rewrites it for the general path (async-stream generator).
pub(crate) struct General<'a> {
    pub(crate) errors: Errors,
    pub(crate) item: &'a Type,
    pub(crate) krate: &'a Path,
    pub(crate) has_error_type: bool,
    depth: usize,
}

impl<'a> General<'a> {
    pub(crate) fn new(item: &'a Type, krate: &'a Path, has_error_type: bool) -> Self {
        General {
            errors: Errors::default(),
            item,
            krate,
            has_error_type,
            depth: 0,
        }
    }

    fn lower_yield(&mut self, mac: &Macro, kind: YieldKind) -> Option<Expr> {
        let name = match kind {
            YieldKind::One => "yield_!",
            YieldKind::All => "yield_all!",
        };
        if self.depth > 0 {
            self.errors.push(syn::Error::new_spanned(
                mac,
                format!(
                    "`{name}` cannot be used inside a closure or an async block: only the body of the `#[stream_stage]` function itself can emit items (move the loop out of the closure, or collect and emit afterwards)"
                ),
            ));
            return None;
        }
        let mut arg = match yield_arg(mac, kind) {
            Ok(a) => a,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        // The argument is checked and lowered too (`yield_!(x?)`, `yield_!(f(yield_!(…)))`).
        self.visit_expr_mut(&mut arg);
        let item = self.item;
        let span = arg.span();
        let tokens = match kind {
            YieldKind::One => quote_spanned! {span=>
                yield ::core::convert::identity::<#item>(#arg)
            },
            YieldKind::All => {
                let krate = self.krate;
                quote_spanned! {span=>
                    {
                        let mut __millrace_all = ::core::pin::pin!(#arg);
                        while let ::core::option::Option::Some(__millrace_item) =
                            #krate::__private::next(&mut __millrace_all).await
                        {
                            yield ::core::convert::identity::<#item>(__millrace_item)
                        }
                    }
                }
            }
        };
        Some(Expr::Verbatim(tokens))
    }
}

impl VisitMut for General<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {
                self.depth += 1;
                syn::visit_mut::visit_expr_mut(self, e);
                self.depth -= 1;
            }
            Expr::Macro(m) => {
                if let Some(kind) = yield_kind(&m.mac) {
                    if let Some(lowered) = self.lower_yield(&m.mac, kind) {
                        *e = lowered;
                    }
                }
            }
            Expr::Try(t) => {
                syn::visit_mut::visit_expr_try_mut(self, t);
                if self.depth == 0 && !self.has_error_type {
                    self.errors.push(syn::Error::new(
                        t.question_token.span,
                        "`?` in a `#[stream_stage]` needs an error type: add `error = <type>` to the attribute (items become `Result<item, error>` and `?` yields the `Err` then ends the stream)",
                    ));
                }
            }
            Expr::Return(r) => {
                if self.depth == 0 {
                    if let Some(value) = &r.expr {
                        let mut tokens = quote!(#value);
                        let ret = r.return_token;
                        tokens = quote!(#ret #tokens);
                        self.errors.push(syn::Error::new_spanned(
                            tokens,
                            "a `#[stream_stage]` cannot `return` a value: emit it with `yield_!(value)`, then end the stream with `return;`",
                        ));
                    }
                }
                syn::visit_mut::visit_expr_return_mut(self, r);
            }
            Expr::ForLoop(f) if is_for_await(f) => {
                if self.depth > 0 {
                    self.errors.push(syn::Error::new_spanned(
                        &f.attrs[0],
                        "`#[for_await]` can only be used directly in the body of a `#[stream_stage]` function, not inside a closure or an async block",
                    ));
                    return;
                }
                f.attrs.retain(|a| !a.path().is_ident("for_await"));
                syn::visit_mut::visit_expr_for_loop_mut(self, f);
                let ExprForLoop {
                    attrs,
                    label,
                    pat,
                    expr,
                    body,
                    ..
                } = f;
                let krate = self.krate;
                // Checked at the expression, so that iterating something that is not a stream
                // is one error there ("`#[for_await]` iterates a `Stream`").
                // The value is bound (by `match`, like `for`, so temporaries live through the
                // loop) to a name spanned like the check, so rustc reports it once.
                let span = expr.span();
                let src = Ident::new("__millrace_src", span);
                let check = Ident::new("__millrace_for_await", span);
                let checked = quote_spanned! {span=> {
                    use #krate::__private::for_await as #check;
                    #check(#src)
                }};
                // Lowered here rather than by async-stream's `for await`, so that labels and
                // every pattern work: the stream is pinned on the generator's stack.
                *e = Expr::Verbatim(quote! {
                    #(#attrs)*
                    match #expr { #src => {
                        let mut __millrace_for = ::core::pin::pin!(#checked);
                        #label loop {
                            let #pat = match #krate::__private::next(&mut __millrace_for).await {
                                ::core::option::Option::Some(__millrace_item) => __millrace_item,
                                ::core::option::Option::None => break,
                            };
                            #body
                        }
                    }}
                });
            }
            _ => syn::visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        if let Stmt::Macro(m) = s {
            if let Some(kind) = yield_kind(&m.mac) {
                if let Some(lowered) = self.lower_yield(&m.mac, kind) {
                    *s = Stmt::Expr(lowered, Some(Default::default()));
                }
                return;
            }
        }
        syn::visit_mut::visit_stmt_mut(self, s);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {
        // Nested items are not part of the stage body.
    }
}

// ---------------------------------------------------------------------------------------------
// Fast path
// ---------------------------------------------------------------------------------------------

/// Does this syntax tree (or token stream) contain `yield_!` / `yield_all!`?
#[derive(Default)]
struct ContainsYield(bool);

impl<'ast> Visit<'ast> for ContainsYield {
    fn visit_macro(&mut self, m: &'ast Macro) {
        if yield_kind(m).is_some() {
            self.0 = true;
        }
    }
}

fn expr_has_yield(e: &Expr) -> bool {
    let mut v = ContainsYield::default();
    v.visit_expr(e);
    v.0
}

fn is_our_continue(s: &Stmt) -> bool {
    // At the top level of the loop body every `continue` targets the stage loop.
    matches!(s, Stmt::Expr(Expr::Continue(_), _))
}

/// Every `yield_!` ends its iteration: it is in tail position of the loop body (through
/// `if`/`match`/blocks) or directly followed by `continue`. Then at most one item is emitted per
/// input item and nothing runs after the yield, so returning at the yield is exactly the
/// generator's behaviour.
fn block_yields_at_tail(block: &Block, tail: bool) -> bool {
    let n = block.stmts.len();
    block.stmts.iter().enumerate().all(|(i, stmt)| {
        let ends = (tail && i + 1 == n) || (i + 1 < n && is_our_continue(&block.stmts[i + 1]));
        match stmt {
            Stmt::Macro(m) => match yield_kind(&m.mac) {
                Some(YieldKind::One) => {
                    ends && !m.mac.parse_body::<Expr>().is_ok_and(|e| expr_has_yield(&e))
                }
                Some(YieldKind::All) => false,
                None => true,
            },
            Stmt::Expr(e, _) => expr_yields_at_tail(e, ends),
            Stmt::Local(l) => {
                let mut v = ContainsYield::default();
                v.visit_local(l);
                !v.0
            }
            Stmt::Item(_) => true,
        }
    })
}

fn expr_yields_at_tail(e: &Expr, tail: bool) -> bool {
    match e {
        Expr::Macro(m) => match yield_kind(&m.mac) {
            Some(YieldKind::One) => {
                tail && !m.mac.parse_body::<Expr>().is_ok_and(|e| expr_has_yield(&e))
            }
            Some(YieldKind::All) => false,
            None => true,
        },
        Expr::If(i) => {
            !expr_has_yield(&i.cond)
                && block_yields_at_tail(&i.then_branch, tail)
                && i.else_branch
                    .as_ref()
                    .is_none_or(|(_, e)| expr_yields_at_tail(e, tail))
        }
        Expr::Match(m) => {
            !expr_has_yield(&m.expr)
                && m.arms.iter().all(|arm| {
                    arm.guard.as_ref().is_none_or(|(_, g)| !expr_has_yield(g))
                        && expr_yields_at_tail(&arm.body, tail)
                })
        }
        Expr::Block(b) if b.label.is_none() => block_yields_at_tail(&b.block, tail),
        other => !expr_has_yield(other),
    }
}

/// Rejects what the fast path cannot lower faithfully.
struct FastCheck<'a> {
    ok: bool,
    names: &'a [Ident],
}

fn tokens_mention(tokens: TokenStream, names: &[Ident]) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "await" || names.contains(&i),
        TokenTree::Group(g) => tokens_mention(g.stream(), names),
        TokenTree::Literal(l) => {
            let s = l.to_string();
            names.iter().any(|n| s.contains(&n.to_string()))
        }
        TokenTree::Punct(_) => false,
    })
}

impl<'ast> Visit<'ast> for FastCheck<'_> {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::Await(_) | Expr::Try(_) | Expr::Yield(_) => self.ok = false,
            Expr::Return(r) if r.expr.is_some() => self.ok = false,
            Expr::ForLoop(f) if is_for_await(f) => self.ok = false,
            _ => {}
        }
        syn::visit::visit_expr(self, e);
    }
    fn visit_macro(&mut self, m: &'ast Macro) {
        match yield_kind(m) {
            Some(YieldKind::One) => match m.parse_body::<Expr>() {
                Ok(e) => self.visit_expr(&e),
                Err(_) => self.ok = false,
            },
            Some(YieldKind::All) => self.ok = false,
            // Other macros: their tokens are not parsed, so configuration names inside them
            // (including `{name}` captures in format strings) cannot be rewritten.
            None => {
                if tokens_mention(m.tokens.clone(), self.names) {
                    self.ok = false;
                }
            }
        }
    }
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        if self.names.contains(&p.ident) {
            self.ok = false; // shadows a configuration parameter
        }
        syn::visit::visit_pat_ident(self, p);
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The loop of a fast-path body, if the body qualifies.
pub(crate) fn fast_loop<'b>(
    block: &'b Block,
    upstream: &Ident,
    config: &[Ident],
) -> Option<&'b ExprForLoop> {
    let [Stmt::Expr(Expr::ForLoop(f), _)] = block.stmts.as_slice() else {
        return None;
    };
    if f.attrs.len() != 1 || !is_for_await(f) {
        return None;
    }
    let Expr::Path(p) = &*f.expr else { return None };
    if !p.path.is_ident(upstream) || p.qself.is_some() {
        return None;
    }
    let mut check = FastCheck {
        ok: true,
        names: config,
    };
    check.visit_pat(&f.pat);
    check.visit_block(&f.body);
    if !check.ok || !block_yields_at_tail(&f.body, true) {
        return None;
    }
    Some(f)
}

/// Lowers a fast-path loop body into the body of `poll_next`'s loop.
pub(crate) struct FastLower<'a> {
    pub(crate) config: &'a [Ident],
    pub(crate) label: Option<Lifetime>,
    pub(crate) finish: TokenStream,
    pub(crate) krate: &'a Path,
    pub(crate) wrap_ok: bool,
    loops: usize,
    closures: usize,
}

impl<'a> FastLower<'a> {
    pub(crate) fn new(
        config: &'a [Ident],
        label: Option<Lifetime>,
        finish: TokenStream,
        krate: &'a Path,
        wrap_ok: bool,
    ) -> Self {
        FastLower {
            config,
            label,
            finish,
            krate,
            wrap_ok,
            loops: 0,
            closures: 0,
        }
    }

    fn lower_yield(&mut self, mac: &Macro) -> Expr {
        let mut arg = mac.parse_body::<Expr>().expect("checked by fast_loop");
        self.visit_expr_mut(&mut arg);
        let krate = self.krate;
        let span = mac.span();
        let value = if self.wrap_ok {
            quote_spanned!(span=> ::core::result::Result::Ok(#arg))
        } else {
            quote!(#arg)
        };
        Expr::Verbatim(quote_spanned! {span=>
            return #krate::__private::Poll::Ready(::core::option::Option::Some(#value))
        })
    }

    fn is_ours(&self, label: Option<&Lifetime>) -> bool {
        match label {
            None => self.loops == 0,
            Some(l) => self.label.as_ref() == Some(l),
        }
    }

    fn finish(&self, span: Span) -> Expr {
        let finish = &self.finish;
        Expr::Verbatim(quote_spanned!(span=> { #finish }))
    }
}

impl VisitMut for FastLower<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {
                self.closures += 1;
                syn::visit_mut::visit_expr_mut(self, e);
                self.closures -= 1;
            }
            Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_) => {
                self.loops += 1;
                syn::visit_mut::visit_expr_mut(self, e);
                self.loops -= 1;
            }
            Expr::Macro(m) if yield_kind(&m.mac).is_some() => {
                *e = self.lower_yield(&m.mac);
            }
            Expr::Break(b) if self.closures == 0 && self.is_ours(b.label.as_ref()) => {
                *e = self.finish(b.span());
            }
            Expr::Return(r) if self.closures == 0 => {
                *e = self.finish(r.span());
            }
            Expr::Path(p)
                if p.qself.is_none()
                    && p.attrs.is_empty()
                    && p.path.get_ident().is_some_and(|i| self.config.contains(i)) =>
            {
                let ident = p.path.get_ident().cloned();
                *e = Expr::Verbatim(quote!((*#ident)));
            }
            _ => syn::visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_field_value_mut(&mut self, fv: &mut syn::FieldValue) {
        if fv.colon_token.is_none() {
            fv.colon_token = Some(Default::default());
        }
        syn::visit_mut::visit_field_value_mut(self, fv);
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        if let Stmt::Macro(m) = s {
            if yield_kind(&m.mac).is_some() {
                *s = Stmt::Expr(self.lower_yield(&m.mac), Some(Default::default()));
                return;
            }
        }
        syn::visit_mut::visit_stmt_mut(self, s);
    }

    fn visit_block_mut(&mut self, b: &mut Block) {
        // `yield_!(x); continue;`: the lowered yield returns, so the `continue` would be
        // unreachable code in the expansion.
        let mut i = 0;
        while i + 1 < b.stmts.len() {
            let is_yield = match &b.stmts[i] {
                Stmt::Macro(m) => yield_kind(&m.mac).is_some(),
                Stmt::Expr(Expr::Macro(m), _) => yield_kind(&m.mac).is_some(),
                _ => false,
            };
            if is_yield && is_our_continue(&b.stmts[i + 1]) {
                b.stmts.remove(i + 1);
            }
            i += 1;
        }
        syn::visit_mut::visit_block_mut(self, b);
    }

    fn visit_pat_mut(&mut self, _: &mut Pat) {}

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
