//! Anthropic Messages API adapter (upstream) and inbound translator.
