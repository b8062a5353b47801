//! How pages are found: [`PageStyle`], and the fetch of one page (its items and the next
//! page's URL).

use std::borrow::Cow;

use millrace_core::Page;
use reqwest::header::LINK;
use reqwest::{Client, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::http::request::{self, Fetched};
use crate::http::{HttpError, HttpOptions};

/// How a JSON API splits its collection into pages, and so how [`paginated`](super::paginated) finds the next one.
///
/// Every style ends at the first page without a next page; a page that fails (after its
/// retries) ends the stream after its error item, since the next page cannot be known.
///
/// ```
/// use millrace::adapters::http::PageStyle;
///
/// let by_number = PageStyle::page("page", 1);                 // ?page=1, ?page=2, … until []
/// let by_cursor = PageStyle::cursor("cursor", "/next", "/items");
/// let by_link = PageStyle::LinkHeader;                       // Link: <…>; rel="next"
/// assert_ne!(by_number, by_link);
/// # let _ = by_cursor;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageStyle {
    /// Numbered pages: the query parameter `param` is set to `start`, `start + 1`, …; the body
    /// is a JSON array of items and the first empty array ends the stream. Other query
    /// parameters of the URL (e.g. `per_page=50`) are kept.
    Page {
        /// The page-number query parameter, e.g. `"page"`.
        param: Cow<'static, str>,
        /// The number of the first page, usually 0 or 1.
        start: u64,
    },
    /// Cursor pages: the body is a JSON object; the items are the array at the JSON pointer
    /// `items_field` (`""` for a body that is the array itself) and the next cursor is the
    /// value at `next_field`. The first request is the URL as given; each later one sets the
    /// query parameter `param` to the cursor (a string, or a number rendered in decimal). A
    /// missing, `null` or empty cursor ends the stream.
    Cursor {
        /// The cursor query parameter, e.g. `"cursor"`.
        param: Cow<'static, str>,
        /// JSON pointer (RFC 6901) to the next cursor, e.g. `"/next"` or `"/meta/next_cursor"`.
        next_field: Cow<'static, str>,
        /// JSON pointer to the array of items, e.g. `"/items"`.
        items_field: Cow<'static, str>,
    },
    /// The next page's URL is the `rel="next"` target of the response's `Link` header
    /// (RFC 8288, as used by GitHub's API), resolved against the page's URL; the body is a
    /// JSON array of items. No `rel="next"` ends the stream.
    LinkHeader,
}

impl PageStyle {
    /// [`PageStyle::Page`]: numbered pages from `start`, ending at the first empty page.
    ///
    /// ```
    /// use millrace::adapters::http::PageStyle;
    ///
    /// assert_eq!(PageStyle::page("page", 1), PageStyle::Page { param: "page".into(), start: 1 });
    /// ```
    pub fn page(param: impl Into<Cow<'static, str>>, start: u64) -> Self {
        PageStyle::Page {
            param: param.into(),
            start,
        }
    }

    /// [`PageStyle::Cursor`]: items at the JSON pointer `items_field`, next cursor at
    /// `next_field`, sent back as the query parameter `param`.
    ///
    /// ```
    /// use millrace::adapters::http::PageStyle;
    ///
    /// let style = PageStyle::cursor("after", "/paging/next", "/data");
    /// # let _ = style;
    /// ```
    pub fn cursor(
        param: impl Into<Cow<'static, str>>,
        next_field: impl Into<Cow<'static, str>>,
        items_field: impl Into<Cow<'static, str>>,
    ) -> Self {
        PageStyle::Cursor {
            param: param.into(),
            next_field: next_field.into(),
            items_field: items_field.into(),
        }
    }
}

/// What every page fetch needs; shared by the page futures.
pub(super) struct Fetcher {
    pub(super) client: Client,
    pub(super) style: PageStyle,
    pub(super) options: HttpOptions,
}

impl Fetcher {
    /// The page at `url`: its items (each decoded on its own) and the next page's URL.
    pub(super) async fn fetch_page<T: DeserializeOwned>(
        &self,
        url: Url,
    ) -> Result<Page<Result<T, HttpError>, Url>, HttpError> {
        let request = self
            .client
            .get(url)
            .build()
            .map_err(|source| HttpError::Build { source })?;
        let Fetched { url, headers, body } =
            request::send(&self.client, request, &self.options).await?;
        let mut json: Value =
            serde_json::from_slice(&body).map_err(|e| HttpError::decode(&url, &body, e))?;
        let page_error = |reason: String| HttpError::Page {
            url: url.clone(),
            reason,
        };

        let (items, next) = match &self.style {
            PageStyle::Page { param, .. } => {
                let items = take_array(&mut json, "").map_err(page_error)?;
                let next = if items.is_empty() {
                    None
                } else {
                    let this_page = url
                        .query_pairs()
                        .find(|(k, _)| k == param.as_ref())
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                        .ok_or_else(|| {
                            page_error(format!("its URL has no numeric {param:?} parameter"))
                        })?;
                    Some(with_param(&url, param, &(this_page + 1).to_string()))
                };
                (items, next)
            }
            PageStyle::Cursor {
                param,
                next_field,
                items_field,
            } => {
                let cursor = match json.pointer(next_field) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.is_empty() => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(other) => {
                        return Err(page_error(format!(
                            "the cursor at {next_field:?} is {other}, expected a string or a number"
                        )));
                    }
                };
                let items = take_array(&mut json, items_field).map_err(page_error)?;
                (items, cursor.map(|c| with_param(&url, param, &c)))
            }
            PageStyle::LinkHeader => {
                let items = take_array(&mut json, "").map_err(page_error)?;
                let mut next = None;
                for value in headers.get_all(LINK) {
                    let value = value
                        .to_str()
                        .map_err(|_| page_error("its Link header is not valid ASCII".to_owned()))?;
                    if let Some(target) = next_link(value) {
                        next = Some(url.join(target).map_err(|e| {
                            page_error(format!(
                                "its rel=\"next\" target {target:?} is not a URL: {e}"
                            ))
                        })?);
                        break;
                    }
                }
                (items, next)
            }
        };
        // Each item goes through a `serde_json::Value` first (one tree per item) so that one
        // item that does not match `T` costs that item only, not the whole page.
        let items = items
            .into_iter()
            .map(|item| {
                T::deserialize(&item)
                    .map_err(|e| HttpError::decode(&url, item.to_string().as_bytes(), e))
            })
            .collect();
        Ok(Page { items, next })
    }
}

/// Takes the array at the JSON pointer `pointer` out of `json`.
fn take_array(json: &mut Value, pointer: &str) -> Result<Vec<Value>, String> {
    match json.pointer_mut(pointer) {
        Some(Value::Array(items)) => Ok(std::mem::take(items)),
        Some(other) => Err(format!(
            "the value at {pointer:?} is {}, expected an array of items",
            kind(other)
        )),
        None => Err(format!(
            "there is no value at {pointer:?}, expected an array of items"
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `url` with the query parameter `param` set to `value` (replacing it if present, keeping
/// every other parameter and their order).
pub(super) fn with_param(url: &Url, param: &str, value: &str) -> Url {
    let mut out = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != param)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    out.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(param, value);
    out
}

/// The target of the first link with relation type `next` in one `Link` header value
/// (RFC 8288: `<uri>; rel="next"; title="…", <uri2>; rel="prev last"`).
fn next_link(header: &str) -> Option<&str> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        rest = &rest[close + 1..];
        // The parameters run to the next ',' outside a quoted string.
        let mut in_quotes = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                c == ',' && !in_quotes
            })
            .map_or(rest.len(), |(i, _)| i);
        let params = &rest[..end];
        rest = &rest[end..];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        let h = r#"<https://api.example/x?page=1>; rel="first", <https://api.example/x?page=3>; rel="next", <https://api.example/x?page=9>; rel="last""#;
        assert_eq!(next_link(h), Some("https://api.example/x?page=3"));
        assert_eq!(
            next_link(r#"</p2>; title="a, b"; rel="prev next""#),
            Some("/p2")
        );
        assert_eq!(next_link(r#"</p2>; rel=next"#), Some("/p2"));
        assert_eq!(next_link(r#"</p1>; rel="prev""#), None);
        assert_eq!(next_link(r#"</p1>; rel="nextish""#), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn with_param_replaces_and_keeps_others() {
        let url = Url::parse("http://h/p?per_page=5&page=2&x=y").unwrap();
        assert_eq!(
            with_param(&url, "page", "3").as_str(),
            "http://h/p?per_page=5&x=y&page=3"
        );
    }
}
