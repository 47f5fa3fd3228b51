//! What a request costs, in whole millionths of a dollar (micro-USD).
//!
//! Prices are USD per million tokens, so one token at price `p` costs `p`
//! micro-USD. Each price is taken to six decimals (a pico-dollar per token)
//! and the arithmetic after that is exact integers: a price of 0.15 times
//! 1,000 tokens is 150, never 150.00000000000003 rounded up to 151. The
//! total is rounded up to a whole micro-USD once per request, so a request
//! is never under-charged by rounding.

use sluice_types::TokenUsage;

use crate::config::raw::Price;

/// Pico-USD per micro-USD.
const PICO_PER_MICRO: u128 = 1_000_000;

/// The cost of an answer. `usage.input` includes the cached tokens:
/// uncached input is charged at `price.input`, `cache_read` and
/// `cache_write` at their own prices (the input price when unset).
/// `usage.output` includes the reasoning tokens: those are charged at
/// `price.reasoning` (the output price when unset), the rest at
/// `price.output`.
pub fn cost_micro_usd(price: &Price, usage: &TokenUsage) -> u64 {
    let uncached = usage
        .input
        .saturating_sub(usage.cache_read)
        .saturating_sub(usage.cache_write);
    let reasoning = usage.reasoning.min(usage.output);
    let pico = charge(uncached, price.input)
        .saturating_add(charge(usage.cache_read, cache_read(price)))
        .saturating_add(charge(usage.cache_write, cache_write(price)))
        .saturating_add(charge(usage.output - reasoning, price.output))
        .saturating_add(charge(reasoning, reasoning_price(price)));
    round_up(pico)
}

/// The most a request can cost, reserved at admission: every input token
/// at the highest input-side price (a cache write may cost more than plain
/// input, e.g. 1.25× on Anthropic) and `max_output_tokens` at the highest
/// output-side price (output or reasoning: any of them may be reasoning).
/// `input_tokens` is an estimate, so the real cost can still exceed this;
/// settling records the real cost either way.
pub fn max_cost_micro_usd(price: &Price, input_tokens: u64, max_output_tokens: u64) -> u64 {
    let input_price = price.input.max(cache_read(price)).max(cache_write(price));
    let output_price = price.output.max(reasoning_price(price));
    round_up(
        charge(input_tokens, input_price).saturating_add(charge(max_output_tokens, output_price)),
    )
}

/// A USD amount from the config (a budget's `usd_per_day`, …) in
/// micro-USD, to the nearest; negative or NaN is 0, absurdly large
/// saturates.
pub fn micro_usd(usd: f64) -> u64 {
    let micro = (usd * 1e6).round();
    if micro > 0.0 {
        micro as u64
    } else {
        0
    }
}

fn cache_read(price: &Price) -> f64 {
    price.cache_read.unwrap_or(price.input)
}

fn cache_write(price: &Price) -> f64 {
    price.cache_write.unwrap_or(price.input)
}

fn reasoning_price(price: &Price) -> f64 {
    price.reasoning.unwrap_or(price.output)
}

/// `tokens` at `usd_per_million`, in pico-USD.
fn charge(tokens: u64, usd_per_million: f64) -> u128 {
    u128::from(tokens).saturating_mul(pico_per_token(usd_per_million))
}

/// A price in pico-USD per token (USD per million tokens × 10^6), rounded
/// to the nearest; negative or NaN prices (refused by validation) are 0.
fn pico_per_token(usd_per_million: f64) -> u128 {
    let pico = (usd_per_million * 1e6).round();
    if pico > 0.0 {
        // Saturates for absurd prices.
        pico as u128
    } else {
        0
    }
}

/// Pico-USD → micro-USD, rounded up.
fn round_up(pico: u128) -> u64 {
    u64::try_from(pico.div_ceil(PICO_PER_MICRO)).unwrap_or(u64::MAX)
}
