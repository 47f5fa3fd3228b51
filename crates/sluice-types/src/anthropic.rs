//! Anthropic Messages API wire shapes (requests, responses, stream events).
