//! Route matching: method plus normalised path to a compiled route. Templates have
//! literal segments (matched ignoring ASCII case, as some backends do), `{name}` (one
//! segment) and `{*rest}` (the remainder). When several
//! routes match, the one with the more literal segment, left to right, wins; two routes
//! with the same shape and a shared method are refused at load as ambiguous.

pub mod path;

use std::sync::Arc;

use http::Method;

use crate::transform::RuleSet;

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
    pub text: Arc<str>,
    segs: Vec<Seg>,
}

impl Template {
    /// Compiles `text`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Template, String> {
        if !text.starts_with('/') {
            return Err("a path template starts with `/`".into());
        }
        let parts: Vec<&str> = text[1..].split('/').collect();
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
                let norm = path::normalize(&format!("/{p}"))
                    .map_err(|_| format!("segment `{p}` is not a plain path segment"))?;
                if norm != format!("/{p}") && !p.is_empty() {
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
            text: Arc::from(text),
            segs,
        })
    }

    /// Match score (higher is more specific), or None.
    fn score(&self, parts: &[&str]) -> Option<Vec<u8>> {
        let mut score = Vec::with_capacity(self.segs.len());
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Rest => {
                    score.push(0);
                    return Some(score);
                }
                Seg::Literal(l) => {
                    // Case-insensitive: a backend that ignores case must not see a
                    // body that skipped its rules because of `/API/Customers`.
                    if !parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(l)) {
                        return None;
                    }
                    score.push(2);
                }
                Seg::Param => {
                    if parts.get(i).is_none_or(|p| p.is_empty()) {
                        return None;
                    }
                    score.push(1);
                }
            }
        }
        (parts.len() == self.segs.len()).then_some(score)
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
    pub name: Arc<str>,
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
    pub reveal_to: Option<Vec<Arc<str>>>,
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
    pub fn category_of(&self, label: &str) -> Option<&Arc<str>> {
        self.rules
            .fields
            .iter()
            .find(|f| &*f.label == label)
            .map(|f| &f.category)
    }

    /// May `caller` see plaintext in this route's responses?
    pub fn reveals_to(&self, caller: Option<&Arc<str>>) -> bool {
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

    /// The most specific route for a method and a normalised path.
    pub fn find(&self, method: &Method, path: &str) -> Option<&Arc<Route>> {
        // Split once for every route: "/" is one empty segment, a trailing slash none.
        let parts: Vec<&str> = if path == "/" {
            vec![""]
        } else {
            path.trim_end_matches('/').split('/').skip(1).collect()
        };
        self.routes
            .iter()
            .filter(|r| r.covers(method))
            .filter_map(|r| r.template.score(&parts).map(|s| (s, r)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, r)| r)
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
            name: Arc::from(name),
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
        let name = |m: Method, p: &str| r.find(&m, p).map(|r| r.name.to_string());
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
    }
}
