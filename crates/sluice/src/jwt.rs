//! JWT authentication for the public API (placeholder; see issue 3).
