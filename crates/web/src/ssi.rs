//! nginx's server-side includes, as far as a stock Jitsi Meet deployment uses them.
//!
//! The app's `index.html` pulls its deployment-specific parts in with
//! `<!--#include virtual="head.html" -->` (also `base.html`, `fonts.html`, `title.html`,
//! `plugin.head.html`, `body.html`, `static/*.html`) and inlines `/config.js` and
//! `/interface_config.js` the same way; Debian's nginx site (`ssi on`) expands them. No
//! crate implements nginx's SSI, and these two directives are all a stock build needs, so
//! the expander is written here:
//!
//! - `include virtual="X"`: replaced by what `resolve("X")` gives, itself expanded; nothing
//!   when it gives nothing (a stock build ships every file its page names);
//! - `echo var="V" default="D"`: replaced by `D` (the variables it names, such as a
//!   tenant's `subdir`, only matter in a `config.js` that is generated here instead).
//!
//! Any other `<!--# ... -->` comment is left as it is.

/// Nesting followed before an include is dropped (the stock files nest one level).
const MAX_DEPTH: usize = 4;

/// Bytes an expanded page may reach; what would go over is dropped.
pub const MAX_EXPANDED: usize = 4 << 20;

/// `text` with its directives expanded; `resolve` gives an included file's text.
pub fn expand(text: &str, resolve: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    expand_into(text, resolve, 0, &mut out);
    out
}

fn expand_into(
    text: &str,
    resolve: &mut dyn FnMut(&str) -> Option<String>,
    depth: usize,
    out: &mut String,
) {
    let mut rest = text;
    while let Some(start) = rest.find("<!--#") {
        let Some(length) = rest[start..].find("-->") else {
            break;
        };
        push_limited(out, &rest[..start]);
        let directive = &rest[start + "<!--#".len()..start + length];
        match Directive::parse(directive) {
            Some(Directive::Include(path)) => {
                if depth < MAX_DEPTH
                    && let Some(included) = resolve(&path)
                {
                    expand_into(&included, resolve, depth + 1, out);
                } else {
                    tracing::debug!("SSI include of {path:?} gave nothing");
                }
            }
            Some(Directive::Echo(default)) => push_limited(out, &default),
            None => push_limited(out, &rest[start..start + length + "-->".len()]),
        }
        rest = &rest[start + length + "-->".len()..];
    }
    push_limited(out, rest);
}

fn push_limited(out: &mut String, text: &str) {
    if out.len() + text.len() <= MAX_EXPANDED {
        out.push_str(text);
    }
}

enum Directive {
    Include(String),
    Echo(String),
}

impl Directive {
    /// `include virtual="X"` or `echo var="V" default="D"` (with optional spaces, as nginx
    /// accepts `<!--# echo ...`); anything else is `None`.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (command, mut params) = text.split_once(char::is_whitespace)?;
        let mut virtual_path = None;
        let mut default = None;
        loop {
            params = params.trim_start();
            if params.is_empty() {
                break;
            }
            let (name, value) = params.split_once('=')?;
            let value = value.trim_start().strip_prefix('"')?;
            let (value, after) = value.split_once('"')?;
            match name.trim() {
                "virtual" | "file" => virtual_path = Some(value.to_owned()),
                "default" => default = Some(value.to_owned()),
                _ => {}
            }
            params = after;
        }
        match command {
            "include" => virtual_path.map(Directive::Include),
            "echo" => Some(Directive::Echo(default.unwrap_or_default())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(path: &str) -> Option<String> {
        match path {
            "head.html" => Some("<meta name=\"h\">".into()),
            "/config.js" => Some("var config = {};".into()),
            "nested.html" => Some("[<!--#include virtual=\"head.html\" -->]".into()),
            "loop.html" => Some("x<!--#include virtual=\"loop.html\" -->".into()),
            _ => None,
        }
    }

    #[test]
    fn includes_are_inlined_with_and_without_spaces() {
        let page = "a<!--#include virtual=\"head.html\" -->b<!--#include virtual=\"head.html\"-->c\
                    <script><!--#include virtual=\"/config.js\" --></script>";
        assert_eq!(
            expand(page, &mut files),
            "a<meta name=\"h\">b<meta name=\"h\">c<script>var config = {};</script>"
        );
    }

    #[test]
    fn nested_includes_expand_and_a_loop_stops() {
        assert_eq!(
            expand("<!--#include virtual=\"nested.html\" -->", &mut files),
            "[<meta name=\"h\">]"
        );
        let looped = expand("<!--#include virtual=\"loop.html\" -->", &mut files);
        assert_eq!(looped, "x".repeat(MAX_DEPTH));
    }

    #[test]
    fn missing_includes_vanish_and_echo_gives_its_default() {
        let page = "<!--#include virtual=\"absent.html\" -->\
                    '<!--# echo var=\"subdir\" default=\"\" -->'\
                    '<!--# echo var=\"http_host\" default=\"meet.example\" -->'";
        assert_eq!(expand(page, &mut files), "'''meet.example'");
    }

    #[test]
    fn other_comments_and_broken_directives_stay() {
        for page in [
            "<!-- plain comment -->",
            "<!--#if expr=\"$x\" -->",
            "<!--#include virtual=unquoted -->",
            "<!--#include virtual=\"head.html\"",
        ] {
            assert_eq!(expand(page, &mut files), page);
        }
    }

    #[test]
    fn the_expanded_page_is_capped() {
        let big = "y".repeat(MAX_EXPANDED / 2 + 1);
        let mut resolve = |_: &str| Some(big.clone());
        let page = expand(
            "<!--#include virtual=\"a\" --><!--#include virtual=\"a\" -->",
            &mut resolve,
        );
        assert_eq!(page.len(), big.len());
    }
}
