//! What the client asks of the cache, by its `Cache-Control` request
//! header: `no-cache` skips the lookup (the fresh answer is stored),
//! `no-store` neither looks up nor stores. `no-store` wins when both are
//! sent; other directives are ignored.

use http::HeaderMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Control {
    /// Look up, and store a miss's answer.
    #[default]
    Normal,
    /// Do not look up; store the answer.
    NoCache,
    /// Leave the cache alone.
    NoStore,
}

impl Control {
    /// From the request's `Cache-Control` headers.
    pub fn of(headers: &HeaderMap) -> Control {
        let mut control = Control::Normal;
        for v in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for d in v.split(',').map(str::trim) {
                if d.eq_ignore_ascii_case("no-store") {
                    return Control::NoStore;
                }
                if d.eq_ignore_ascii_case("no-cache") {
                    control = Control::NoCache;
                }
            }
        }
        control
    }

    pub fn looks_up(self) -> bool {
        self == Control::Normal
    }

    pub fn stores(self) -> bool {
        self != Control::NoStore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[&str]) -> Control {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::CACHE_CONTROL, v.parse().unwrap());
        }
        Control::of(&h)
    }

    #[test]
    fn directives() {
        assert_eq!(of(&[]), Control::Normal);
        assert_eq!(of(&["max-age=60"]), Control::Normal);
        assert_eq!(of(&["No-Cache"]), Control::NoCache);
        assert_eq!(of(&["max-age=0, no-cache"]), Control::NoCache);
        assert_eq!(of(&["no-cache", "no-store"]), Control::NoStore);
        assert_eq!(of(&["no-store, no-cache"]), Control::NoStore);
    }
}
