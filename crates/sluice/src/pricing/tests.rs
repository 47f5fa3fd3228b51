//! The built-in price table: it parses, every figure is a sane price, ids
//! are unique, each provider says where and when; lookup by exact id,
//! dated snapshot, `-latest`, and refusal of other suffixes.

use super::*;

#[test]
fn the_embedded_table_parses_and_every_price_is_finite_and_not_negative() {
    let t: Table = serde_json::from_str(PRICES_JSON).expect("prices.json parses");
    assert_eq!(t.unit, "USD per million tokens");
    assert!(t.providers.len() >= 4, "{:?}", t.providers.keys());
    let mut n = 0;
    for (provider, p) in &t.providers {
        assert!(p.source.starts_with("https://"), "{provider}: {}", p.source);
        let date = p.as_of.as_bytes();
        assert!(
            p.as_of.len() == 10 && date[4] == b'-' && date[7] == b'-',
            "{provider}: as_of {}",
            p.as_of
        );
        assert!(!p.models.is_empty(), "{provider}");
        for (model, price) in &p.models {
            n += 1;
            let figures = [
                Some(price.input),
                Some(price.output),
                price.cache_read,
                price.cache_write,
                price.reasoning,
            ];
            for v in figures.into_iter().flatten() {
                assert!(v.is_finite() && v >= 0.0, "{provider}/{model}: {v}");
            }
            assert_eq!(model, &model.to_ascii_lowercase(), "ids are lower case");
            // A cache read is a discount, never dearer than input.
            assert!(price.cache_read.is_none_or(|c| c <= price.input), "{model}");
        }
    }
    assert!(n >= 30, "{n} models");
    // The same table through `table()` (parsed once).
    let total: usize = table().providers.values().map(|p| p.models.len()).sum();
    assert_eq!(total, n);
}

#[test]
fn a_model_id_is_in_one_provider_block_only() {
    let mut seen = std::collections::HashMap::new();
    for (provider, p) in &table().providers {
        for model in p.models.keys() {
            if let Some(other) = seen.insert(model.as_str(), provider.as_str()) {
                panic!("{model} is priced by both {other} and {provider}");
            }
        }
    }
}

#[test]
fn exact_ids_are_found() {
    let b = lookup("gpt-4o-mini").expect("gpt-4o-mini");
    assert_eq!((b.key, b.provider), ("gpt-4o-mini", "openai"));
    assert_eq!((b.price.input, b.price.output), (0.15, 0.6));
    assert_eq!(b.price.cache_read, Some(0.075));
    let h = lookup("claude-haiku-4-5").unwrap();
    assert_eq!(h.provider, "anthropic");
    // Anthropic's cache: write 1.25×, read 0.1× the input price.
    assert_eq!(h.price.cache_write, Some(1.25 * h.price.input));
    assert_eq!(h.price.cache_read, Some(0.1 * h.price.input));
    assert_eq!(lookup("gemini-2.5-flash").unwrap().provider, "gemini");
    // A listed snapshot wins over the id it is a snapshot of.
    let old = lookup("gpt-4o-2024-05-13").unwrap();
    assert_eq!((old.key, old.price.input), ("gpt-4o-2024-05-13", 5.0));
}

#[test]
fn dated_snapshots_cost_what_their_model_costs() {
    for (name, key) in [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
    ] {
        assert_eq!(lookup(name).map(|b| b.key), Some(key), "{name}");
    }
    // Case, spaces and Gemini's `models/` prefix do not matter.
    assert_eq!(lookup(" GPT-4o ").map(|b| b.key), Some("gpt-4o"));
    assert_eq!(
        lookup("models/gemini-2.5-pro").map(|b| b.key),
        Some("gemini-2.5-pro")
    );
}

#[test]
fn other_suffixes_and_unknown_models_have_no_price() {
    for name in [
        "claude-opus-4-6",                // a newer model, not a snapshot of claude-opus-4
        "gpt-4o-audio-preview",           // a different model
        "gpt-4o-realtime-preview",        // likewise
        "gemini-2.5-flash-preview-05-20", // previews are priced apart
        "gpt-4o-20",                      // not a date
        "llama-3.1-8b",                   // a self-hosted model
        "my-azure-deployment",            // an Azure deployment named by its user
        "",
        "gpt",
    ] {
        assert_eq!(lookup(name), None, "{name}");
    }
}

#[test]
fn the_mock_provider_is_free_and_the_others_use_the_table() {
    assert_eq!(for_deployment(ProviderKind::Mock, "gpt-4o"), None);
    for kind in [
        ProviderKind::Openai,
        ProviderKind::Azure,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ] {
        assert_eq!(
            for_deployment(kind, "gpt-4o").map(|b| b.key),
            Some("gpt-4o")
        );
    }
}

#[test]
fn the_rendered_table_and_descriptions_name_models_dates_and_sources() {
    let text = render();
    assert!(text.contains("gpt-4o-mini"), "{text}");
    assert!(text.contains("https://platform.openai.com/docs/pricing"));
    assert!(text.contains("anthropic (as of "));
    let d = describe("gpt-4o-2024-08-06");
    assert!(d.contains("openai built-in price (as `gpt-4o`)"), "{d}");
    assert!(describe("gpt-4o").contains("2.5"));
    assert!(describe("nope").contains("no built-in price"));
}
