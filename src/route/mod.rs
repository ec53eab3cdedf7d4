//! Route matching: method plus normalised path to a compiled route. Templates have
//! literal segments (matched ignoring ASCII case, as some backends do), `{name}` (one
//! segment) and `{*rest}` (the remainder). When several
//! routes match, the one with the more literal segment, left to right, wins; two routes
//! with the same shape and a shared method are refused at load as ambiguous.

pub mod path;

use std::sync::Arc;

use http::Method;

use crate::flowlog::ConfigStr;
use crate::transform::RuleSet;

/// The most segments a template may have (its match score holds two bits a segment).
const MAX_SEGMENTS: usize = 64;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// Must equal this text.
    Literal(String),
    /// Any one segment.
    Param,
    /// Everything that is left (possibly nothing).
    Rest,
}

/// A compiled path template.
#[derive(Debug, Clone)]
pub struct Template {
    /// The template as written, for flow events.
    pub text: ConfigStr,
    segs: Vec<Seg>,
}

impl Template {
    /// Compiles `text`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        if !text.starts_with('/') {
            return Err("a path template starts with `/`".into());
        }
        let parts: Vec<&str> = text[1..].split('/').collect();
        if parts.len() > MAX_SEGMENTS {
            return Err(format!(
                "a path template has at most {MAX_SEGMENTS} segments"
            ));
        }
        let mut segs = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let seg = if let Some(inner) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if let Some(name) = inner.strip_prefix('*') {
                    if i + 1 != parts.len() {
                        return Err("`{*rest}` must be the last segment".into());
                    }
                    check_name(name)?;
                    Seg::Rest
                } else {
                    check_name(inner)?;
                    Seg::Param
                }
            } else if p.contains(['{', '}', '%', '?', '#']) {
                return Err(format!("segment `{p}` mixes text and `{{}}` or holds `%?#`: use a whole-segment `{{name}}`"));
            } else {
                let slashed = format!("/{p}");
                let norm = path::normalize(&slashed)
                    .map_err(|_| format!("segment `{p}` is not a plain path segment"))?;
                if norm != slashed && !p.is_empty() {
                    return Err(format!("segment `{p}` is not in normal form"));
                }
                Seg::Literal((*p).to_owned())
            };
            segs.push(seg);
        }
        // "/a/" and "/a" are the same resource to most backends: ignore a trailing empty literal.
        if segs.len() > 1 && segs.last() == Some(&Seg::Literal(String::new())) {
            segs.pop();
        }
        Ok(Template {
            text: ConfigStr::new(text),
            segs,
        })
    }

    /// Match score (higher is more specific), or None. Two bits a segment, left to
    /// right: a literal 3, a parameter 2, the rest 1, past the end 0, so that comparing
    /// scores compares specificity segment by segment.
    fn score<'a>(&self, mut parts: impl Iterator<Item = &'a [u8]>) -> Option<u128> {
        let mut score = 0u128;
        for (i, seg) in self.segs.iter().enumerate() {
            let shift = 126 - 2 * i;
            match seg {
                Seg::Rest => return Some(score | 1 << shift),
                Seg::Literal(l) => {
                    // Case-insensitive: a backend that ignores case must not see a
                    // body that skipped its rules because of `/API/Customers`.
                    if !parts
                        .next()
                        .is_some_and(|p| p.eq_ignore_ascii_case(l.as_bytes()))
                    {
                        return None;
                    }
                    score |= 3 << shift;
                }
                Seg::Param => {
                    if parts.next().is_none_or(<[u8]>::is_empty) {
                        return None;
                    }
                    score |= 2 << shift;
                }
            }
        }
        parts.next().is_none().then_some(score)
    }

    /// The shape for the ambiguity check: same shape means same matches.
    fn shape(&self) -> &[Seg] {
        &self.segs
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{name}` is not a parameter name: use letters, digits and `_`"
        ));
    }
    Ok(())
}

/// What a route does to responses that hold a ciphertext it cannot open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// Put the documented marker in its place (default).
    Marker,
    /// Answer 502 instead of the response.
    Fail,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its name, for metrics and flow events.
    pub name: ConfigStr,
    /// Methods it covers; empty means all.
    pub methods: Vec<Method>,
    /// Its path template.
    pub template: Template,
    /// Its field rules (bodies).
    pub rules: RuleSet,
    /// Its query-parameter rules (`$.name` names a parameter).
    pub query_rules: RuleSet,
    /// Response behaviour for unopenable ciphertext.
    pub on_open_failure: OpenFailure,
    /// Forward bodies of types we do not parse (explicit relaxation).
    pub pass_other_types: bool,
    /// Callers who get plaintext back; None means every caller of the route.
    pub reveal_to: Option<Vec<ConfigStr>>,
    /// What the others get instead.
    pub conceal: Conceal,
}

/// What a caller not allowed to see plaintext gets in place of each ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conceal {
    /// The documented marker (default).
    Marker,
    /// The ciphertext as stored.
    Ciphertext,
}

impl Route {
    fn covers(&self, m: &Method) -> bool {
        self.methods.is_empty() || self.methods.contains(m)
    }

    /// The category of this route's rule with `label`, if it has one.
    pub fn category_of(&self, label: &str) -> Option<ConfigStr> {
        self.rules
            .fields
            .iter()
            .find(|f| f.label == label)
            .map(|f| f.category)
    }

    /// May `caller` see plaintext in this route's responses?
    pub fn reveals_to(&self, caller: Option<&ConfigStr>) -> bool {
        match &self.reveal_to {
            None => true,
            Some(allowed) => caller.is_some_and(|c| allowed.contains(c)),
        }
    }

    /// Does this route transform anything (bodies or query parameters)?
    pub fn has_rules(&self) -> bool {
        !self.rules.fields.is_empty() || !self.query_rules.fields.is_empty()
    }
}

/// All routes of a config.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Arc<Route>>,
}

impl Router {
    /// Builds a router; returns the names of the first two ambiguous routes, if any.
    pub fn new(routes: Vec<Route>) -> Result<Router, (usize, usize)> {
        for (i, a) in routes.iter().enumerate() {
            for (j, b) in routes.iter().enumerate().skip(i + 1) {
                let shared_method = a.methods.is_empty()
                    || b.methods.is_empty()
                    || a.methods.iter().any(|m| b.methods.contains(m));
                if shared_method && a.template.shape() == b.template.shape() {
                    return Err((i, j));
                }
            }
        }
        Ok(Router {
            routes: routes.into_iter().map(Arc::new).collect(),
        })
    }

    /// The index (in [`Router::routes`]) of the route for `method` and the normalised
    /// `path`, if one matches.
    pub fn find(&self, method: &Method, path: &str) -> Option<usize> {
        // "/" is one empty segment, a trailing slash none.
        let trimmed = match path.trim_end_matches('/') {
            "" => "/",
            t => t,
        };
        // Split as bytes: '/' is ASCII, and a byte split is cheaper than a `str` one.
        let parts = || trimmed.as_bytes().split(|b| *b == b'/').skip(1);
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.covers(method))
            .filter_map(|(i, r)| r.template.score(parts()).map(|s| (s, i)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, i)| i)
    }

    /// Every route.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: &str, methods: &[Method]) -> Route {
        Route {
            name: ConfigStr::new(name),
            methods: methods.to_vec(),
            template: Template::parse(path).unwrap(),
            rules: RuleSet::default(),
            query_rules: RuleSet::default(),
            on_open_failure: OpenFailure::Marker,
            pass_other_types: false,
            reveal_to: None,
            conceal: Conceal::Marker,
        }
    }

    #[test]
    fn finds_the_most_specific_route() {
        let r = Router::new(vec![
            route("one", "/api/customers/{id}", &[]),
            route("search", "/api/customers/search", &[Method::GET]),
            route("all", "/api/customers", &[Method::POST]),
            route("rest", "/files/{*rest}", &[]),
        ])
        .unwrap();
        let name = |m: Method, p: &str| r.find(&m, p).map(|i| r.routes()[i].name.to_string());
        assert_eq!(
            name(Method::GET, "/api/customers/7").as_deref(),
            Some("one")
        );
        assert_eq!(
            name(Method::GET, "/api/customers/search").as_deref(),
            Some("search")
        );
        assert_eq!(
            name(Method::POST, "/api/customers/search").as_deref(),
            Some("one")
        );
        assert_eq!(name(Method::POST, "/api/customers").as_deref(), Some("all"));
        assert_eq!(
            name(Method::POST, "/api/customers/").as_deref(),
            Some("all")
        );
        assert_eq!(name(Method::GET, "/api/customers"), None);
        assert_eq!(name(Method::GET, "/files/a/b/c").as_deref(), Some("rest"));
        assert_eq!(name(Method::GET, "/files").as_deref(), Some("rest"));
        assert_eq!(name(Method::GET, "/api/customers/7/x"), None);
        assert_eq!(name(Method::POST, "/API/Customers").as_deref(), Some("all"));

        // The root, and a literal beating a parameter beating the rest, at any depth.
        let r = Router::new(vec![
            route("root", "/", &[]),
            route("p", "/a/{x}/c/{y}", &[]),
            route("l", "/a/{x}/c/d", &[]),
            route("any", "/{*rest}", &[]),
        ])
        .unwrap();
        let name = |p: &str| {
            r.find(&Method::GET, p)
                .map(|i| r.routes()[i].name.to_string())
        };
        assert_eq!(name("/").as_deref(), Some("root"));
        assert_eq!(name("/a/b/c/d").as_deref(), Some("l"));
        assert_eq!(name("/a/b/c/e").as_deref(), Some("p"));
        assert_eq!(name("/a/b/c").as_deref(), Some("any"));
    }

    #[test]
    fn refuses_ambiguous_routes_and_bad_templates() {
        assert!(Router::new(vec![
            route("a", "/x/{id}", &[Method::GET]),
            route("b", "/x/{name}", &[])
        ])
        .is_err());
        assert!(Router::new(vec![
            route("a", "/x/{id}", &[Method::GET]),
            route("b", "/x/{id}", &[Method::POST])
        ])
        .is_ok());
        for bad in ["x", "/a/{*r}/b", "/a/b{c}", "/a/{}", "/a/%41", "/a/../b"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(Template::parse(&"/a".repeat(MAX_SEGMENTS)).is_ok());
        assert!(Template::parse(&"/a".repeat(MAX_SEGMENTS + 1)).is_err());
    }
}
