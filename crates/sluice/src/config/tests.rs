//! Tests of the config loader: YAML, interpolation, typing, error locations,
//! every validation rule, the JSON schema and the file watcher.

use std::path::Path;

use super::raw::{PolicyRef, ProviderKind};
use super::{json_schema, load_str, ConfigErrors, ConfigIssue, RawConfig};

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<RawConfig, ConfigErrors> {
    load_str(text, Path::new("sluice.yaml"), &no_env)
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// The single issue at `path`, whose message contains `needle`.
fn issue_at(text: &str, path: &str, needle: &str) -> ConfigIssue {
    let all = issues(text);
    let found: Vec<&ConfigIssue> = all.iter().filter(|i| i.path == path).collect();
    assert_eq!(
        found.len(),
        1,
        "want one issue at `{path}`, got:\n{}",
        ConfigErrors(all.clone())
    );
    assert!(
        found[0].message.contains(needle),
        "`{}` lacks `{needle}`",
        found[0]
    );
    found[0].clone()
}

/// The sketch from the spec, minus the features this build rejects.
const FULL: &str = r#"listen: 127.0.0.1:4000              # public API
admin_listen: 127.0.0.1:4001
admin_key: ${SLUICE_ADMIN_KEY}

providers:
  mock:
    kind: mock
  openai:
    kind: openai
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
  vllm-local:
    kind: openai
    base_url: http://10.0.0.5:8000/v1
  azure-east:
    kind: azure
    base_url: https://myres.openai.azure.com
    api_key: ${AZURE_KEY}
    api_version: "2024-10-21"
  anthropic:
    kind: anthropic
    base_url: https://api.anthropic.com
    api_key: ${ANTHROPIC_API_KEY}
  gemini:
    kind: gemini
    base_url: https://generativelanguage.googleapis.com
    api_key: ${GEMINI_API_KEY:-}

models:
  smart:
    price: { input: 3.0, output: 15.0 }
    strategy: weighted
    deployments:
      - { provider: anthropic, model: claude-sonnet-4-5 }
      - { provider: openai, model: gpt-4.1, weight: 2 }
    fallbacks: [cheap]
  cheap:
    price: { input: 0.15, output: 0.6 }
    deployments:
      - { provider: vllm-local, model: llama-3.1-8b }
  embed:
    deployments:
      - { provider: openai, model: text-embedding-3-small }

policies:
  standard:
    mode: enforce
    rate_limit:
      requests_per_minute: 600
      burst: 50
    limits:
      max_body_bytes: 1MiB
      max_input_tokens: 32000
      max_output_tokens: 4096
      timeout: 120s
    models: [smart, cheap, embed]

global_policy: { rate_limit: { requests_per_second: 5000 }, limits: { max_body_bytes: 2MiB } }

tenants:
  acme:
    tier: premium
    policy: standard

keys:
  - name: dev
    key: ${SLUICE_DEV_KEY}
    tenant: acme
    policy: [standard, { limits: { max_output_tokens: 100 } }, { rate_limit: { requests_per_minute: 60 } }]
"#;

fn full_env(name: &str) -> Option<String> {
    Some(format!("secret-{}", name.to_lowercase()))
}

#[test]
fn full_sketch_parses() {
    let cfg = load_str(FULL, Path::new("sluice.yaml"), &full_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.listen.as_deref(), Some("127.0.0.1:4000"));
    assert_eq!(cfg.providers.len(), 6);
    assert_eq!(cfg.providers["azure-east"].kind, ProviderKind::Azure);
    assert_eq!(
        cfg.providers["azure-east"].api_version.as_deref(),
        Some("2024-10-21")
    );
    assert_eq!(
        cfg.providers["openai"].api_key.as_ref().unwrap().expose(),
        "secret-openai_api_key"
    );
    assert_eq!(
        cfg.providers["gemini"].api_key.as_ref().unwrap().expose(),
        "secret-gemini_api_key"
    );
    assert_eq!(cfg.models["smart"].deployments[1].weight, Some(2));
    assert_eq!(
        cfg.models["smart"].fallbacks,
        [super::raw::FallbackConfig::Name("cheap".into())]
    );
    let limits = cfg.policies["standard"].limits.unwrap();
    assert_eq!(limits.max_body_bytes.unwrap().0, 1 << 20);
    assert_eq!(limits.timeout.unwrap().0.as_secs(), 120);
    assert!(matches!(cfg.keys[0].policy, Some(PolicyRef::List(ref l)) if l.len() == 3));
    let standard = cfg.policies["standard"].rate_limit.unwrap();
    assert_eq!(
        (standard.requests_per_minute, standard.burst),
        (Some(600), Some(50))
    );
    assert_eq!(cfg.keys[0].key.expose(), "secret-sluice_dev_key");
}

#[test]
fn empty_file_is_all_defaults() {
    let cfg = load("# nothing yet\n").unwrap();
    assert!(cfg.providers.is_empty() && cfg.listen.is_none());
    assert!(load("providers:\nmodels:\n").unwrap().models.is_empty());
    assert!(load("tenants:\n  acme:\n").unwrap().tenants["acme"]
        .tier
        .is_none());
    issue_at("providers:\n  x:\n", "providers.x", "missing field `kind`");
}

#[test]
fn interpolation_values_defaults_and_escapes() {
    let env = |n: &str| match n {
        "HOST" => Some("10.0.0.9".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let text = "listen: ${HOST}:${PORT:-4000}\nadmin_listen: ${EMPTY:-127.0.0.1:4001}\nadmin_key: 'a$${HOST}b$x # not a comment'\n";
    let cfg = load_str(text, Path::new("c.yaml"), &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.listen.as_deref(), Some("10.0.0.9:4000"));
    assert_eq!(cfg.admin_listen.as_deref(), Some("127.0.0.1:4001"));
    assert_eq!(
        cfg.admin_key.unwrap().expose(),
        "a${HOST}b$x # not a comment"
    );
    // Comments and keys are never interpolated.
    let cfg = load_str(
        "# ${MISSING}\nlog: { level: info }  # ${MISSING}\n",
        Path::new("c.yaml"),
        &env,
    )
    .unwrap();
    assert_eq!(cfg.log.level, "info");
    let i = issue_at(
        "providers:\n  ${X}:\n    kind: mokc\n",
        "providers.${X}.kind",
        "unknown variant `mokc`",
    );
    assert_eq!((i.line, i.col), (3, 11));
}

#[test]
fn missing_variable_names_it_with_place() {
    let text = "listen: 127.0.0.1:4000\nproviders:\n  openai:\n    kind: openai\n    api_key: ${OPENAI_API_KEY}\n";
    let i = issue_at(
        text,
        "providers.openai.api_key",
        "`OPENAI_API_KEY` is not set",
    );
    assert_eq!((i.line, i.col), (5, 14));
    assert_eq!(
        i.to_string(),
        format!("sluice.yaml:5:14: providers.openai.api_key: {}", i.message)
    );
    issue_at(
        "listen: ${BAD NAME}\n",
        "listen",
        "invalid variable reference",
    );
    issue_at("listen: \"${OPEN\"\n", "listen", "unterminated");
}

#[test]
fn plain_scalars_are_typed_quoted_ones_are_strings() {
    let env = |n: &str| (n == "N").then(|| "7".to_string());
    // In flow style (`{ }`, `[ ]`) `${…}` must be quoted, so typed values use block style.
    let text =
        "server:\n  pool_max_idle_per_host: ${N}\nlog: { access_log: false, level: \"true\" }\n";
    let cfg = load_str(text, Path::new("c.yaml"), &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.server.pool_max_idle_per_host, 7);
    assert!(!cfg.log.access_log);
    assert_eq!(cfg.log.level, "true");
    // YAML 1.1 booleans are strings in 1.2 core.
    issue_at(
        "log: { access_log: yes }\n",
        "log.access_log",
        "expected a boolean",
    );
    // A number where a string is wanted gets a hint, and a different one when it came from `${…}`.
    issue_at(
        "keys:\n  - { name: a, key: 123456789 }\n",
        "keys[0].key",
        "quote the value",
    );
    let e = load_str(
        "keys:\n  - name: a\n    key: ${N}\n",
        Path::new("c.yaml"),
        &env,
    )
    .unwrap_err();
    assert!(e.0[0].message.contains("came from `${…}`"), "{e}");
    let cfg = load_str(
        "keys:\n  - { name: a, key: \"${N}2345678\" }\n",
        Path::new("c.yaml"),
        &env,
    )
    .unwrap();
    assert_eq!(cfg.keys[0].key.expose(), "72345678");
}

#[test]
fn unknown_key_deep_inside_points_at_the_key() {
    let text = "providers:\n  openai:\n    kind: openai\n    api_kye: x\n";
    let i = issue_at(
        text,
        "providers.openai.api_kye",
        "unknown field `api_kye`, expected one of",
    );
    assert_eq!((i.line, i.col), (4, 5));
    let i = issue_at(
        "listen: 127.0.0.1:1\nlisten_adress: x\n",
        "listen_adress",
        "unknown field `listen_adress`",
    );
    assert_eq!((i.line, i.col), (2, 1));
    let text =
        "keys:\n  - name: a\n    key: abcdefgh\n  - name: b\n    key: bcdefghi\n    tennant: x\n";
    let i = issue_at(text, "keys[1].tennant", "unknown field");
    assert_eq!((i.line, i.col), (6, 5));
}

#[test]
fn inline_policy_errors_are_explained() {
    let text = "keys:\n  - name: a\n    key: abcdefgh\n    policy: [{ limits: { timeout: 5s } }, { limitz: {} }]\n";
    let i = issue_at(text, "keys[0].policy[1].limitz", "unknown field `limitz`");
    assert_eq!(i.line, 4);
    issue_at(
        "tenants:\n  t:\n    policy: 5\n",
        "tenants.t.policy",
        "expected a policy name",
    );
}

#[test]
fn several_independent_errors_are_all_reported() {
    let text = "\
listen: nowhere
providers:
  a: { kind: openai, base_url: ftp://x }
  b: { kind: nope }
  c: { kind: mock, extra: 1 }
models:
  m: { deployments: [{ provider: a, model: x }], fallbacks: [ghost] }
  n: { deploymets: [] }
keys:
  - { name: k, key: short }
  - { name: k2 }
server: { drain_timeout: 5 }
";
    let all = issues(text);
    let paths: Vec<&str> = all.iter().map(|i| i.path.as_str()).collect();
    for want in [
        "providers.b.kind",
        "providers.c.extra",
        "models.n.deploymets",
        "keys[1]",
        "server.drain_timeout",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    assert!(
        all.windows(2)
            .all(|w| (w[0].line, w[0].col) <= (w[1].line, w[1].col)),
        "sorted"
    );
    let lines: Vec<usize> = all.iter().map(|i| i.line).collect();
    // Shape errors (4, 5, 8, 11, 12) and, in the same run, the semantic
    // problems of the entries that did deserialize (1, 3, 7, 10).
    assert_eq!(lines, [1, 3, 4, 5, 7, 8, 10, 11, 12]);
    // The semantic problems alone show up together too.
    let text = "listen: nowhere\nproviders:\n  a: { kind: openai, base_url: ftp://x }\nmodels:\n  m: { deployments: [{ provider: a, model: x }], fallbacks: [ghost] }\nkeys:\n  - { name: k, key: short }\n";
    let paths: Vec<String> = issues(text).into_iter().map(|i| i.path).collect();
    assert_eq!(
        paths,
        [
            "listen",
            "providers.a.base_url",
            "models.m.fallbacks[0]",
            "keys[0].key"
        ]
    );
}

#[test]
fn bad_durations_and_sizes() {
    issue_at(
        "server: { drain_timeout: 5 }\n",
        "server.drain_timeout",
        "needs a unit",
    );
    issue_at(
        "server: { drain_timeout: 5 parsecs }\n",
        "server.drain_timeout",
        "unknown duration unit",
    );
    let i = issue_at(
        "server:\n  max_body_bytes: 4 lightyears\n",
        "server.max_body_bytes",
        "unknown size unit",
    );
    assert_eq!((i.line, i.col), (2, 19));
    issue_at(
        "server: { max_body_bytes: -1 }\n",
        "server.max_body_bytes",
        "negative",
    );
    issue_at(
        "server: { max_body_bytes: [1] }\n",
        "server.max_body_bytes",
        "a size such as",
    );
}

#[test]
fn syntax_error_has_line_and_col() {
    let all = issues("listen: 127.0.0.1:4000\nproviders:\n  a: [1, 2\n  b: x\n");
    assert_eq!(all.len(), 1);
    assert!(
        all[0].message.starts_with("YAML syntax error"),
        "{}",
        all[0]
    );
    assert!(all[0].line >= 3 && all[0].col > 0, "{}", all[0]);
    let all = issues("a: b\nc: d: e\n");
    assert_eq!((all[0].line, all[0].col), (2, 5), "{}", all[0]);
    issues("listen: a\n---\nlisten: b\n");
}

#[test]
fn duplicate_keys_are_reported_with_both_places() {
    let text = "providers:\n  a: { kind: mock }\n  a: { kind: openai }\nlisten: x\nlisten: y\n";
    let all = issues(text);
    assert_eq!(all.len(), 2, "{}", ConfigErrors(all.clone()));
    assert_eq!(
        (all[0].line, all[0].col, all[0].path.as_str()),
        (3, 3, "providers.a")
    );
    assert!(all[0].message.contains("first defined at line 2, column 3"));
    assert_eq!(all[1].path, "listen");
}

#[test]
fn anchors_and_aliases_resolve() {
    let text = "providers:\n  a: &p { kind: mock }\n  b: *p\n";
    let cfg = load(text).unwrap();
    assert_eq!(cfg.providers["b"].kind, ProviderKind::Mock);
    issues("listen: !!binary aGVsbG8=\n");
}

#[test]
fn json_schema_is_json_and_names_sections() {
    let schema = json_schema();
    let v: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert!(v["properties"]["providers"].is_object(), "{schema}");
    assert!(schema.contains("deny") || v["additionalProperties"] == false);
}

#[test]
fn display_and_paths() {
    let e = ConfigErrors(vec![
        ConfigIssue {
            file: "x.yaml".into(),
            line: 0,
            col: 0,
            path: String::new(),
            message: "m1".into(),
        },
        ConfigIssue {
            file: "x.yaml".into(),
            line: 2,
            col: 3,
            path: "a.b".into(),
            message: "m2".into(),
        },
    ]);
    assert_eq!(e.to_string(), "x.yaml:0:0: m1\nx.yaml:2:3: a.b: m2");
    let missing = super::load_file(Path::new("/nonexistent/sluice.yaml")).unwrap_err();
    assert!(missing.0[0].message.contains("cannot read"));
    assert_eq!(super::config_dir(Path::new("sluice.yaml")), Path::new("."));
    assert_eq!(
        super::config_dir(Path::new("/etc/sluice/s.yaml")),
        Path::new("/etc/sluice")
    );
    assert_eq!(
        super::resolve_path(Path::new("/etc/s.yaml"), Path::new("db")),
        Path::new("/etc/db")
    );
}

#[test]
fn rate_limits_parse_merge_field_by_field_and_shadow_is_accepted() {
    let text = with(
        "",
        "",
        "policies:\n  standard: { rate_limit: { requests_per_minute: 600, burst: 50, per: user } }\n  watch: { mode: shadow, rollout: 12.5, rate_limit: { requests_per_hour: 100 } }\nglobal_policy: [standard, { rate_limit: { requests_per_minute: 60 } }]\ntenants: { t: { policy: watch } }\nserver: { end_user_header: x-end-user, client_ip_header: X-Forwarded-For }\n",
    );
    let cfg = load(&text).unwrap_or_else(|e| panic!("{e}"));
    let items = super::merge::items(&cfg, cfg.global_policy.as_ref());
    let v = crate::policy::rate::variants(&items);
    assert_eq!(v.len(), 1);
    let r = v[0].rate;
    assert_eq!(r.requests_per_minute, Some(60), "the later item wins");
    assert_eq!(
        (r.burst, r.per),
        (Some(50), Some(super::raw::RatePer::User)),
        "the rest stays"
    );
    assert_eq!(v[0].policy, Some("standard"));
    let watch = &cfg.policies["watch"];
    assert_eq!(watch.mode, Some(super::raw::PolicyMode::Shadow));
    assert_eq!(watch.rollout, Some(12.5));
    assert_eq!(
        cfg.server.client_ip_header.as_deref(),
        Some("X-Forwarded-For")
    );
}

/// Base config with provider `m` (mock) and model `a`, plus extra text per section.
fn with(providers: &str, models: &str, rest: &str) -> String {
    format!(
        "providers:\n  m: {{ kind: mock }}\n{providers}models:\n  a: {{ deployments: [{{ provider: m, model: x }}] }}\n{models}{rest}"
    )
}

fn fault(f: &str) -> String {
    with(
        &format!("  f:\n    kind: mock\n    mock:\n      faults:\n        - {f}\n"),
        "",
        "",
    )
}

fn key(k: &str) -> String {
    with("", "", &format!("tenants: {{ t: {{}} }}\npolicies: {{ p: {{}} }}\nkeys:\n  - {{ name: k0, key: secret-0000 }}\n  - {k}\n"))
}

#[test]
fn built_in_prices_satisfy_budgets_and_lowest_cost() {
    let providers = "  o: { kind: openai, base_url: \"http://127.0.0.1:9\" }\n";
    let cfg = "providers:\n  o: { kind: openai, base_url: \"http://127.0.0.1:9\" }\nmodels:\n  a:\n    strategy: lowest_cost\n    deployments: [{ provider: o, model: gpt-4o-mini }, { provider: o, model: claude-haiku-4-5-20251001 }]\npolicies: { p: { budget: { usd_per_day: 1 } } }\n";
    load(cfg).expect("every deployment has a built-in price");
    // An upstream model the table does not know still needs a price.
    let unknown = with(
        providers,
        "  b: { deployments: [{ provider: o, model: gpt-4o-mini }, { provider: o, model: llama-local }] }\n",
        "policies: { p: { budget: { usd_per_day: 1 } } }\n",
    );
    let i = issue_at(&unknown, "policies.p.budget", "have no `price`: a, b;");
    assert!(i.message.contains("sluice prices"), "{i}");
}

#[test]
fn every_validation_rule_fails_its_case() {
    let cases: Vec<(String, &str, &str)> = vec![
        (with("", "  b: { deployments: [] }\n", ""), "models.b.deployments", "at least one deployment"),
        (with("", "  b: { deployments: [{ provider: zz, model: x }] }\n", ""), "models.b.deployments[0].provider", "unknown provider `zz` (defined providers: m)"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], fallbacks: [a, nope] }\n", ""), "models.b.fallbacks[1]", "unknown model `nope`"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], fallbacks: [b] }\n", ""), "models.b.fallbacks[0]", "itself"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], price: { input: -1, output: 1 } }\n", ""), "models.b.price.input", "non-negative"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], policy: nope }\n", ""), "models.b.policy", "unknown policy `nope` (no policies are defined)"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], strategy: lowest_cost }\n", ""), "models.b.deployments[0].price", "`strategy: lowest_cost` compares prices"),
        (with("", "  b: { deployments: [{ provider: m, model: x, price: { input: 1, output: -2 } }] }\n", ""), "models.b.deployments[0].price.output", "non-negative"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], price: { input: 1, output: 2, reasoning: -1 } }\n", ""), "models.b.price.reasoning", "non-negative"),
        (with("", "  b: { deployments: [{ provider: m, model: gpt-4o }], strategy: lowest_cost }\n", ""), "models.b.deployments[0].price", "no built-in price"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], circuit_breaker: { failures: 0 } }\n", ""), "models.b.circuit_breaker.failures", "at least 1"),
        (with("", "  b: { deployments: [{ provider: m, model: x, rpm: 0 }] }\n", ""), "models.b.deployments[0].rpm", "at least 1"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], fallbacks: [{ model: a, on: [] }] }\n", ""), "models.b.fallbacks[0].on", "at least one failure class"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], fallbacks: [a, { model: a, on: [bogus] }] }\n", ""), "models.b.fallbacks[1].on[0]", "unknown variant `bogus`, expected one of `rate_limited`"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], fallbacks: [{ model: nope, on: [timeout] }] }\n", ""), "models.b.fallbacks[0]", "unknown model `nope`"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], retries: { budget: 2 } }\n", ""), "models.b.retries.budget", "fraction from 0 to 1"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], retries: { attempts: 50 } }\n", ""), "models.b.retries.attempts", "at most 10"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], retries: { backoff: 0ms } }\n", ""), "models.b.retries.backoff", "longer than 0s"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], circuit_breaker: { failure_rate: 1.5 } }\n", ""), "models.b.circuit_breaker.failure_rate", "above 0 and at most 1"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], circuit_breaker: { cooldown: 0s } }\n", ""), "models.b.circuit_breaker.cooldown", "longer than 0s"),
        (with("", "  b: { deployments: [{ provider: m, model: x }], circuit_breaker: { half_open_requests: 0 } }\n", ""), "models.b.circuit_breaker.half_open_requests", "at least 1"),
        (with("", "  b: { deployments: [{ provider: m, model: x, weight: 2 }] }\n", ""), "models.b.deployments[0].weight", "only with `strategy: weighted`"),
        (with("", "  b: { strategy: weighted, deployments: [{ provider: m, model: x, weight: 0 }] }\n", ""), "models.b.deployments[0].weight", "at least 1"),
        (with("  z: { kind: azure }\n", "", ""), "providers.z.base_url", "required for kind `azure`"),
        (with("  z: { kind: openai, health_check: { interval: 100ms } }\n", "", ""), "providers.z.health_check.interval", "at least 1s"),
        (with("  z: { kind: openai, health_check: { path: models } }\n", "", ""), "providers.z.health_check.path", "starts with `/`"),
        (with("  z: { kind: openai, health_check: { timeout: 0s } }\n", "", ""), "providers.z.health_check.timeout", "longer than 0s"),
        (with("  z: { kind: openai, base_url: api.openai.com }\n", "", ""), "providers.z.base_url", "must start with http"),
        (with("  z: { kind: openai, base_url: \"https:///v1\" }\n", "", ""), "providers.z.base_url", "has no host"),
        (with("  z: { kind: openai, base_url: \"https://a b\" }\n", "", ""), "providers.z.base_url", "spaces"),
        (with("  z: { kind: openai, mock: { reply: hi } }\n", "", ""), "providers.z.mock", "only allowed on providers with `kind: mock`"),
        (with("  z: { kind: openai, headers: { \"bad name\": x } }\n", "", ""), "providers.z.headers.bad name", "not a valid HTTP header name"),
        (with("  z: { kind: openai, headers: { X-Ok: \"a\\nb\" } }\n", "", ""), "providers.z.headers.X-Ok", "control characters"),
        (with("  z: { kind: mock, mock: { tokens_per_second: -1 } }\n", "", ""), "providers.z.mock.tokens_per_second", "non-negative"),
        (with("  z: { kind: mock, mock: { chunk_tokens: 0 } }\n", "", ""), "providers.z.mock.chunk_tokens", "at least 1"),
        (fault("{ rate: 1.5, status: 500 }"), "providers.f.mock.faults[0].rate", "use a value from 0 to 1"),
        (fault("{ rate: 0.5, every: 2, status: 500 }"), "providers.f.mock.faults[0]", "not both"),
        (fault("{ status: 500 }"), "providers.f.mock.faults[0]", "needs `every: N`"),
        (fault("{ every: 2 }"), "providers.f.mock.faults[0]", "has no effect"),
        (fault("{ every: 0, status: 500 }"), "providers.f.mock.faults[0].every", "at least 1"),
        (fault("{ every: 1, status: 302 }"), "providers.f.mock.faults[0].status", "400..=599"),
        (key("{ name: k0, key: secret-1111 }"), "keys[1].name", "duplicate key name `k0` (also keys[0])"),
        (key("{ name: \" \", key: secret-1111 }"), "keys[1].name", "must not be empty"),
        (key("{ name: k1, key: secret-0000 }"), "keys[1].key", "same secret as keys[0]"),
        (key("{ name: k1, key: \"\" }"), "keys[1].key", "must not be empty"),
        (key("{ name: k1, key: short }"), "keys[1].key", "at least 8 characters"),
        (key("{ name: k1, key: secret-1111, tenant: ghost }"), "keys[1].tenant", "unknown tenant `ghost` (defined tenants: t)"),
        (key("{ name: k1, key: secret-1111, policy: nope }"), "keys[1].policy", "unknown policy `nope` (defined policies: p)"),
        (key("{ name: k1, key: secret-1111, policy: [p, nope] }"), "keys[1].policy[1]", "unknown policy `nope`"),
        (key("{ name: k1, key: secret-1111, policy: [p, { rate_limit: { requests_per_minute: 60, tokens_per_minute: 0 } }] }"), "keys[1].policy[1].rate_limit.tokens_per_minute", "must be at least 1 (leave it out for no token limit)"),
        (key("{ name: k1, key: secret-1111, policy: [p, { rate_limit: { burst: 3 } }] }"), "keys[1].policy", "`rate_limit` sets no rate"),
        (with("", "", "tenants: { t: { policy: nope } }\n"), "tenants.t.policy", "unknown policy"),
        (with("", "", "global_policy: nope\n"), "global_policy", "unknown policy"),
        (with("", "", "global_policy: { rate_limit: { requests_per_second: 0 } }\n"), "global_policy.rate_limit.requests_per_second", "must be at least 1 (leave it out for no limit per second)"),
        (with("", "", "global_policy: { rate_limit: { burst: 5, per: ip } }\n"), "global_policy.rate_limit", "sets no rate; set requests_per_second"),
        (with("", "", "global_policy: { rollout: 50 }\n"), "global_policy.rollout", "`rollout` applies to this policy's `rate_limit` and it sets none"),
        (with("", "", "global_policy: { mode: shadow, rate_limit: { requests_per_day: 9 }, limits: { timeout: 5s } }\n"), "global_policy.mode", "applies to rate limits only"),
        (with("", "", "policies: { p: { rate_limit: { tokens_per_day: 5000000000 } } }\n"), "policies.p.rate_limit.tokens_per_day", "must be at most 4294967295"),
        (with("", "  z: { tokenizer: gpt2, deployments: [{ provider: m, model: x }] }\n", ""), "models.z.tokenizer", "unknown variant `gpt2`, expected one of `o200k`, `cl100k`, `estimate`"),
        (with("", "", "policies: { p: { rate_limit: { requests_per_hour: 5, per: tenant } } }\n"), "policies.p.rate_limit.per", "unknown variant `tenant`, expected `user` or `ip`"),
        (with("", "", "policies: { p: { rate_limit: { requests_per_hour: 5, burts: 2 } } }\n"), "policies.p.rate_limit.burts", "unknown field `burts`"),
        (with("", "", "policies: { p: { rollout: 150 } }\n"), "policies.p.rollout", "percentage from 0 to 100"),
        (with("", "", "server: { client_ip_header: \"x forwarded\" }\n"), "server.client_ip_header", "not a valid HTTP header name"),
        (with("", "", "policies: { p: { models: [a, gpt-5] } }\n"), "policies.p.models[1]", "unknown model `gpt-5` in allow-list"),
        (with("", "", "policies: { p: { rate_limit: { requests_per_minute: 1, burst: 0 } } }\n"), "policies.p.rate_limit.burst", "must be at least 1: the number of requests that may arrive at once"),
        (with("", "", "policies: { p: { concurrency: { queue: 10 } } }\nglobal_policy: p\n"), "global_policy", "`concurrency` sets no `max_in_flight`: a queue needs a concurrency limit"),
        (with("", "", "global_policy: { concurrency: { queue: 10 } }\n"), "global_policy.concurrency", "sets no `max_in_flight`"),
        (with("", "", "policies: { p: { concurrency: { max_in_flight: 0 } } }\n"), "policies.p.concurrency.max_in_flight", "must be at least 1"),
        (with("", "", "policies: { p: { concurrency: { max_in_flight: 2, queue_timeout: 0s } } }\n"), "policies.p.concurrency.queue_timeout", "longer than 0s"),
        (with("", "", "policies: { p: { concurrency: { max_in_flight: 2, queue_size: 3 } } }\n"), "policies.p.concurrency.queue_size", "unknown field `queue_size`"),
        (with("", "", "policies: { p: { priority: urgent } }\n"), "policies.p.priority", "unknown variant `urgent`, expected one of `critical`, `high`, `normal`, `low`, `batch`"),
        (with("", "  z: { policy: { priority: high }, deployments: [{ provider: m, model: x }] }\n", ""), "models.z.policy", "`priority` is the class of a caller's requests"),
        (with("", "", "global_policy: { mode: shadow, rate_limit: { requests_per_day: 9 }, concurrency: { max_in_flight: 1 } }\n"), "global_policy.mode", "applies to rate limits only"),
        (with("", "", "policies: { p: { budget: { usd_per_day: 1 } } }\n"), "policies.p.budget", "budgets count spend at the models' prices, and these models have no `price`: a"),
        (with("", "", "policies: { p: { budget: { alert_at: [0.5] } } }\ntenants: { t: { policy: p } }\n"), "tenants.t.policy", "`budget` sets no period"),
        (with("", "", "policies: { p: { budget: { usd_per_week: -3 } } }\n"), "policies.p.budget.usd_per_week", "must be a positive number of USD"),
        (with("", "", "policies: { p: { budget: { usd_per_week: 3, alert_at: [80] } } }\n"), "policies.p.budget.alert_at[0]", "above 0 and at most 1"),
        (with("", "", "policies: { p: { budget: { usd_per_week: 3, on_exceed: \"downgrade:gpt-9\" } } }\n"), "policies.p.budget.on_exceed", "unknown model `gpt-9`"),
        (with("", "", "policies: { p: { budget: { usd_per_week: 3, on_exceed: stop } } }\n"), "policies.p.budget.on_exceed", "`stop` is not one of `block`, `alert_only`, `downgrade:<model>`"),
        (key("{ name: k1, key: secret-1111, policy: [{ limits: { timeout: 5s }, rate_limit: { requests_per_second: 1 } }, { mode: shadow }] }"), "keys[1].policy[1].mode", "`mode: shadow` applies to this policy's `rate_limit` and it sets none"),
        (key("{ name: k1, key: secret-1111, policy: [p, { mode: shadow, rate_limit: { burst: 2 } }] }"), "keys[1].policy", "`rate_limit` sets no rate"),
        (with("", "", "listen: localhost\n"), "listen", "not a socket address"),
        (with("", "", "admin_listen: 127.0.0.1\n"), "admin_listen", "not a socket address"),
        (with("", "", "admin_key: \"\"\n"), "admin_key", "is empty"),
        (with("", "", "store: mysql://db\n"), "store", "not a store URL"),
        (with("", "", "store: sqlite://\n"), "store", "names no file"),
        (with("", "", "shared_state: http://127.0.0.1:6379\n"), "shared_state", "not a Redis URL"),
        (with("", "", "on_shared_state_failure: fail_open\n"), "on_shared_state_failure", "has no effect without `shared_state`"),
        (with("", "", "shared_state: redis://127.0.0.1:6379\non_shared_state_failure: ignore\n"), "on_shared_state_failure", "unknown variant `ignore`, expected one of `local`, `fail_open`, `fail_closed`"),
        (with("", "", "shared_state: redis://127.0.0.1:6379\nshared_state_timeout: 10s\n"), "shared_state_timeout", "at most 5s"),
        (with("", "", "apis: { chats: { requires_approval: true } }\n"), "apis.chats", "unknown API `chats`"),
        (with("", "", "routes:\n  - { match: { model: a } }\n"), "routes[0]", "give `to: <model>` or `split"),
        (with("", "", "routes:\n  - { match: { model: a }, to: a, split: { a: 1 } }\n"), "routes[0]", "not both"),
        (with("", "", "routes:\n  - { match: { model: nope }, to: a }\n"), "routes[0].match.model", "unknown model `nope`"),
        (with("", "", "routes:\n  - { to: nope }\n"), "routes[0].to", "unknown model `nope`"),
        (with("", "", "routes:\n  - { split: { a: 0 } }\n"), "routes[0].split", "weight above 0"),
        (with("", "", "routes:\n  - { split: { a: 1, nope: 1 } }\n"), "routes[0].split.nope", "unknown model `nope`"),
        (with("", "", "routes:\n  - { to: a, sticky: user }\n"), "routes[0].sticky", "applies to a `split`"),
        (with("", "", "routes:\n  - { match: { tags: { Team: x } }, to: a }\n"), "routes[0].match.tags.Team", "lower-case"),
        (with("", "", "routes:\n  - { match: { input_tokens_over: 500, input_tokens_under: 100 }, to: a }\n"), "routes[0].match.input_tokens_under", "could never match"),
        (with("", "", "routes:\n  - { match: { tenant: [] }, to: a }\n"), "routes[0].match.tenant", "at least one"),
        (with("", "", "routes:\n  - { name: r, to: a }\n  - { name: r, to: a }\n"), "routes", "two routes are named `r`"),
        (with("", "", "routes:\n  - { match: { modle: a }, to: a }\n"), "routes[0].match.modle", "unknown field"),
    ];
    assert!(load(&with("", "", "")).is_ok());
    for (text, path, needle) in &cases {
        let all = issues(text);
        let hit = all
            .iter()
            .find(|i| i.path == *path && i.message.contains(needle));
        let hit = hit.unwrap_or_else(|| {
            panic!(
                "no `{needle}` at `{path}` for:\n{text}got:\n{}",
                ConfigErrors(all.clone())
            )
        });
        assert!(hit.line > 0 && hit.col > 0, "{hit}");
    }
    // Issues point at the offending value.
    let i = issue_at(
        &key("{ name: k1, key: secret-1111, tenant: ghost }"),
        "keys[1].tenant",
        "ghost",
    );
    assert_eq!((i.line, i.col), (9, 43));
}

mod watching {
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::super::watch::{spawn_watcher, spawn_watcher_with};

    const DEBOUNCE: Duration = Duration::from_millis(80);
    const WAIT: Duration = Duration::from_secs(3);
    const QUIET: Duration = Duration::from_millis(250);

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("sluice-cfg-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn once(rx: &mpsc::Receiver<String>, what: &str) {
        rx.recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no on_change after {what}"));
        assert!(
            rx.recv_timeout(QUIET).is_err(),
            "more than one on_change after {what}"
        );
    }

    #[test]
    fn write_rename_and_truncate_each_reload_once() {
        let dir = temp_dir("bursts");
        let file = dir.join("sluice.yaml");
        std::fs::write(&file, "listen: a\n").unwrap();
        let (tx, rx) = mpsc::channel();
        let target = file.clone();
        let handle = spawn_watcher(file.clone(), DEBOUNCE, move || {
            let text = std::fs::read_to_string(&target).map_err(|e| e.to_string())?;
            tx.send(text).map_err(|e| e.to_string())
        })
        .unwrap();
        std::fs::write(&file, "listen: b\n").unwrap();
        once(&rx, "write");
        let tmp = dir.join(".sluice.yaml.swp");
        std::fs::write(&tmp, "listen: c\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        once(&rx, "rename over");
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&file)
                .unwrap();
            f.write_all(b"listen: ").unwrap();
            f.flush().unwrap();
            f.write_all(b"d\n").unwrap();
        }
        once(&rx, "truncate + write");
        std::fs::write(dir.join("unrelated.txt"), "x").unwrap();
        assert!(
            rx.recv_timeout(QUIET).is_err(),
            "unrelated file triggered a reload"
        );
        drop(handle);
        std::fs::write(&file, "listen: e\n").unwrap();
        assert!(
            rx.recv_timeout(QUIET).is_err(),
            "reload after the handle was dropped"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failed_reload_is_retried_while_the_file_changes() {
        let dir = temp_dir("retry");
        let file = dir.join("c.yaml");
        std::fs::write(&file, "ok\n").unwrap();
        let (calls_tx, calls) = mpsc::channel();
        let (errors_tx, errors) = mpsc::channel();
        let target = file.clone();
        let on_change = move || {
            let text = std::fs::read_to_string(&target).map_err(|e| e.to_string())?;
            let done = text.ends_with("END\n");
            calls_tx.send(done).map_err(|e| e.to_string())?;
            if done {
                Ok(())
            } else {
                Err(format!("half-written: {text:?}"))
            }
        };
        let _handle = spawn_watcher_with(file.clone(), DEBOUNCE, on_change, move |e| {
            let _ = errors_tx.send(e);
        })
        .unwrap();
        // Half a file: the reload fails; the rest arrives before the retry.
        std::fs::write(&file, "listen: a\n").unwrap();
        assert_eq!(calls.recv_timeout(WAIT), Ok(false));
        std::fs::write(&file, "listen: a\nEND\n").unwrap();
        assert_eq!(calls.recv_timeout(WAIT), Ok(true));
        assert!(
            errors.recv_timeout(QUIET).is_err(),
            "an error of a burst was reported"
        );
        // A broken file that stays broken: one attempt, then the error stands.
        std::fs::write(&file, "broken\n").unwrap();
        assert_eq!(calls.recv_timeout(WAIT), Ok(false));
        assert!(errors.recv_timeout(WAIT).unwrap().contains("half-written"));
        assert!(
            calls.recv_timeout(QUIET).is_err(),
            "retried an unchanged file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn references_to_an_entry_that_failed_to_parse_add_no_noise() {
    let text = "providers:\n  p: { kind: mock, base_ur: x }\nmodels:\n  m: { deployments: [ { provider: p, model: x } ] }\n  n: { deployments: [ { provider: q, model: x } ] }\n";
    let all = issues(text);
    let msgs: Vec<String> = all
        .iter()
        .map(|i| format!("{}: {}", i.path, i.message))
        .collect();
    assert_eq!(all.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with("providers.p.base_ur: unknown field"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].starts_with("models.n.deployments[0].provider: unknown provider `q`"),
        "{msgs:?}"
    );
}

#[test]
fn concurrency_merges_field_by_field_and_the_most_specific_priority_wins() {
    use crate::policy::queue::Priority;
    use crate::policy::ScopeKind;
    let cfg = load(&with(
        "",
        "",
        "policies: { p: { concurrency: { max_in_flight: 4, queue: 10 } } }\ntenants: { t: { policy: { priority: low, concurrency: { max_in_flight: 9 } } } }\nkeys:\n  - { name: k, key: secret-0000, tenant: t, policy: [p, { concurrency: { queue: 20 }, priority: high }] }\n  - { name: l, key: secret-1111, tenant: t }\n",
    ))
    .unwrap();
    let snap = crate::snapshot::Snapshot::build(&cfg, 1).unwrap();
    let key = |s: &str| snap.keys[&crate::snapshot::hash_secret(s)].clone();
    let k = key("secret-0000");
    let specs: Vec<_> = k.queues.iter().map(|q| (q.scope.kind, q.spec)).collect();
    let spec = |max_in_flight, queue| crate::policy::queue::QueueSpec {
        max_in_flight,
        queue,
        timeout: std::time::Duration::from_secs(30),
    };
    assert_eq!(
        specs,
        [
            (ScopeKind::Tenant, spec(9, 0)),
            (ScopeKind::Key, spec(4, 20))
        ]
    );
    assert_eq!(k.priority, Priority::High);
    assert_eq!(key("secret-1111").priority, Priority::Low);
}

fn alerts(webhook: &str) -> String {
    format!("alerts:\n  webhook: {webhook}\n")
}

#[test]
fn alerts_webhook_parses_with_defaults_and_hides_its_secret() {
    let text = "alerts:\n  webhook:\n    url: https://hooks.example.com/sluice\n    secret: ${SLUICE_WEBHOOK_SECRET}\n";
    let env =
        |n: &str| (n == "SLUICE_WEBHOOK_SECRET").then(|| "whsec-canary-0123456789".to_string());
    let cfg = load_str(text, Path::new("sluice.yaml"), &env).unwrap();
    let hook = &cfg.alerts.as_ref().unwrap().webhook;
    assert_eq!(hook.url, "https://hooks.example.com/sluice");
    assert_eq!(hook.secret.expose(), "whsec-canary-0123456789");
    assert_eq!(hook.timeout.0, std::time::Duration::from_secs(5));
    assert!(
        !format!("{cfg:?}").contains("canary"),
        "the secret shows in Debug"
    );
    let cfg = load(&alerts(
        "{ url: \"http://10.0.0.9:8080/h?x=1\", secret: 0123456789abcdef, timeout: 250ms }",
    ))
    .unwrap();
    assert_eq!(
        cfg.alerts.unwrap().webhook.timeout.0,
        std::time::Duration::from_millis(250)
    );
    assert!(load("").unwrap().alerts.is_none());
    assert!(json_schema().contains("\"alerts\""));
}

#[test]
fn alerts_webhook_problems_are_explained() {
    let ok_secret = "secret: 0123456789abcdef";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            alerts(&format!("{{ url: ftp://h/x, {ok_secret} }}")),
            "alerts.webhook.url",
            "must start with http:// or https://",
        ),
        (
            alerts(&format!("{{ url: \"https:///x\", {ok_secret} }}")),
            "alerts.webhook.url",
            "has no host",
        ),
        (
            alerts(&format!("{{ url: \"https://h:99999/x\", {ok_secret} }}")),
            "alerts.webhook.url",
            "not a valid URL",
        ),
        (
            alerts("{ url: https://h/x, secret: short }"),
            "alerts.webhook.secret",
            "is 5 characters; use at least 16",
        ),
        (
            alerts(&format!("{{ url: https://h/x, {ok_secret}, timeout: 0s }}")),
            "alerts.webhook.timeout",
            "more than 0",
        ),
        (
            alerts(&format!("{{ url: https://h/x, {ok_secret}, timeout: 2m }}")),
            "alerts.webhook.timeout",
            "at most 60s",
        ),
        (
            alerts(&format!("{{ url: https://h/x, {ok_secret}, retries: 3 }}")),
            "alerts.webhook.retries",
            "unknown field",
        ),
        (
            alerts(&format!("{{ {ok_secret} }}")),
            "alerts.webhook",
            "missing field `url`",
        ),
        (
            "alerts: {}\n".to_string(),
            "alerts",
            "missing field `webhook`",
        ),
    ];
    for (text, path, needle) in cases {
        issue_at(&text, path, needle);
    }
}

/// A config with model `a` and these `alerts.rules` (one per line).
fn rules(every: &str, lines: &[&str]) -> String {
    let body: String = lines.iter().map(|l| format!("    - {l}\n")).collect();
    with(
        "",
        "",
        &format!("alerts:\n  webhook: {{ url: https://h/x, secret: 0123456789abcdef }}\n{every}  rules:\n{body}"),
    )
}

#[test]
fn alert_rules_parse_with_defaults() {
    use super::raw::{AlertRule, SpendScope};
    let cfg = load(&rules(
        "",
        &[
            "{ name: chat-errors, kind: error_rate, model: a, above: 0.05, window: 5m }",
            "{ name: slow, kind: latency_p99, above: 2s, window: 5m, min_requests: 50, repeat_every: 1h }",
            "{ name: breaker, kind: breaker_open }",
            "{ name: spike, kind: spend_anomaly, scope: tenant, z: 3, window: 1h }",
        ],
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let a = cfg.alerts.unwrap();
    assert_eq!(a.evaluate_every(), std::time::Duration::from_secs(10));
    assert_eq!(a.rules.len(), 4);
    assert!(matches!(
        &a.rules[0],
        AlertRule::ErrorRate { model: Some(m), min_requests: 20, .. } if m == "a"
    ));
    assert_eq!(
        a.rules[1].repeat_every(),
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(a.rules[2].kind(), "breaker_open");
    assert!(matches!(
        &a.rules[3],
        AlertRule::SpendAnomaly {
            scope: SpendScope::Tenant,
            warmup: 6,
            alpha: None,
            ..
        }
    ));
}

#[test]
fn alert_rule_problems_are_explained() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            rules(
                "",
                &["{ name: x, kind: error_ratio, above: 0.1, window: 1m }"],
            ),
            "alerts.rules[0].kind",
            "unknown variant `error_ratio`",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: error_rate, above: 1.5, window: 1m }"],
            ),
            "alerts.rules[0].above",
            "between 0 and 1",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: error_rate, above: 0.1, window: 15s }"],
            ),
            "alerts.rules[0].window",
            "at least twice evaluate_every",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: error_rate, above: 0.1, window: 500ms }"],
            ),
            "alerts.rules[0].window",
            "between 1s and 7d",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: latency_p99, model: nope, above: 1s, window: 1m }"],
            ),
            "alerts.rules[0].model",
            "unknown model `nope`",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: latency_p99, above: 0s, window: 1m }"],
            ),
            "alerts.rules[0].above",
            "more than 0",
        ),
        (
            rules(
                "",
                &[
                    "{ name: x, kind: breaker_open }",
                    "{ name: x, kind: breaker_open }",
                ],
            ),
            "alerts.rules[1].name",
            "must be unique",
        ),
        (
            rules("", &["{ name: \"a b\", kind: breaker_open }"]),
            "alerts.rules[0].name",
            "letters, digits",
        ),
        (
            rules("", &["{ name: x, kind: breaker_open, above: 1 }"]),
            "alerts.rules[0].above",
            "unknown field `above`",
        ),
        (
            rules("", &["{ name: x, kind: breaker_open, repeat_every: 1s }"]),
            "alerts.rules[0].repeat_every",
            "at least evaluate_every",
        ),
        (
            rules("", &["{ name: x, kind: spend_anomaly, z: 0, window: 1h }"]),
            "alerts.rules[0].z",
            "more than 0",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: spend_anomaly, z: 3, window: 1h, warmup: 1 }"],
            ),
            "alerts.rules[0].warmup",
            "between 2 and 1000",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: spend_anomaly, z: 3, window: 1h, alpha: 1.5 }"],
            ),
            "alerts.rules[0].alpha",
            "in (0, 1]",
        ),
        (
            rules(
                "",
                &["{ name: x, kind: spend_anomaly, scope: key, z: 3, window: 1h }"],
            ),
            "alerts.rules[0]",
            "unknown variant `key`",
        ),
        (
            rules(
                "  evaluate_every: 10ms\n",
                &["{ name: x, kind: breaker_open }"],
            ),
            "alerts.evaluate_every",
            "between 100ms and 1h",
        ),
    ];
    for (text, path, needle) in cases {
        issue_at(&text, path, needle);
    }
}

#[test]
fn routing_settings_load_and_per_deployment_prices_count_for_budgets() {
    let cfg = load(&with(
        "",
        "  b:\n    strategy: lowest_cost\n    circuit_breaker: { failures: 3, failure_rate: 0.25, window: 10s, min_requests: 5, cooldown: 2s, half_open_requests: 2 }\n    deployments:\n      - { provider: m, model: x, price: { input: 1, output: 2 } }\n      - { provider: m, model: y, price: { input: 0.5, output: 1 } }\n",
        "global_policy: { budget: { usd_per_day: 10 } }\n",
    )
    .replace("  a: { deployments: [{ provider: m, model: x }] }", "  a: { deployments: [{ provider: m, model: x }], price: { input: 1, output: 1 } }"))
    .unwrap_or_else(|e| panic!("{e}"));
    let b = &cfg.models["b"];
    assert_eq!(
        b.circuit_breaker.and_then(|c| c.half_open_requests),
        Some(2)
    );
    assert_eq!(b.deployments[1].price.map(|p| p.output), Some(1.0));
}

#[test]
fn tracing_parses_with_defaults_and_hides_its_headers() {
    let cfg = load(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:4318\n  headers: { authorization: Bearer collector-canary }\n",
    )
    .unwrap();
    let t = cfg.tracing.as_ref().unwrap();
    assert_eq!(t.otlp_endpoint, "http://127.0.0.1:4318");
    assert_eq!(t.service_name, "sluice");
    assert_eq!(t.sample_ratio, 1.0);
    assert_eq!(t.timeout.0, std::time::Duration::from_secs(5));
    assert!(
        !format!("{cfg:?}").contains("collector-canary"),
        "a collector header shows in Debug"
    );
    assert!(load("").unwrap().tracing.is_none());
    assert!(json_schema().contains("\"otlp_endpoint\""));
}

#[test]
fn tracing_problems_are_explained() {
    let t = |extra: &str| format!("tracing:\n  otlp_endpoint: http://c:4318\n{extra}");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "tracing: { otlp_endpoint: grpc://c:4317 }\n".into(),
            "tracing.otlp_endpoint",
            "must start with http:// or https://",
        ),
        (
            t("  sample_ratio: 1.5\n"),
            "tracing.sample_ratio",
            "between 0 and 1",
        ),
        (
            t("  sample_ratio: -0.1\n"),
            "tracing.sample_ratio",
            "between 0 and 1",
        ),
        (
            t("  service_name: \" \"\n"),
            "tracing.service_name",
            "must not be empty",
        ),
        (
            t("  headers: { \"bad header\": x }\n"),
            "tracing.headers.bad header",
            "not a valid HTTP header name",
        ),
        (t("  timeout: 0s\n"), "tracing.timeout", "more than 0"),
        (t("  protocol: grpc\n"), "tracing.protocol", "unknown field"),
        (
            "tracing: {}\n".into(),
            "tracing",
            "missing field `otlp_endpoint`",
        ),
    ];
    for (text, path, needle) in cases {
        issue_at(&text, path, needle);
    }
}

#[test]
fn request_log_and_log_bodies_parse_with_defaults() {
    let cfg = load("store: sqlite://s.db\nrequest_log: {}\npolicies:\n  p: { log_bodies: { redact: [content] } }\n")
        .unwrap();
    let rl = cfg.request_log.unwrap();
    assert!(rl.enabled);
    assert_eq!((rl.buffer, rl.batch), (100_000, 1000));
    assert_eq!(rl.retention.unwrap().0.as_secs(), 30 * 86_400);
    let lb = cfg.policies["p"].log_bodies.clone().unwrap();
    assert_eq!(
        (lb.max_bytes, lb.redact),
        (None, vec!["content".to_owned()])
    );
    // Without a store the log can only be turned off.
    load("request_log: { enabled: false }\n").unwrap();
}

#[test]
fn request_log_and_log_bodies_problems_are_explained() {
    let s = |extra: &str| format!("store: sqlite://s.db\n{extra}");
    let cases: Vec<(String, &str, &str)> = vec![
        ("request_log: {}\n".into(), "request_log", "set `store:`"),
        (
            s("request_log: { buffer: 0 }\n"),
            "request_log.buffer",
            "at least 1",
        ),
        (
            s("request_log: { batch: 0 }\n"),
            "request_log.batch",
            "between 1 and 10000",
        ),
        (
            s("request_log: { batch: 20000 }\n"),
            "request_log.batch",
            "between 1 and 10000",
        ),
        (
            s("request_log: { write_timeout: 0s }\n"),
            "request_log.write_timeout",
            "more than 0",
        ),
        (
            s("request_log: { retention: 2h }\n"),
            "request_log.retention",
            "at least 1d",
        ),
        (
            s("request_log: { spill: x }\n"),
            "request_log.spill",
            "unknown field",
        ),
        (
            "policies:\n  p: { log_bodies: { max_bytes: 2MiB } }\n".into(),
            "policies.p.log_bodies.max_bytes",
            "between 1B and 1MiB",
        ),
        (
            "policies:\n  p: { log_bodies: { redact: [\"\"] } }\n".into(),
            "policies.p.log_bodies.redact",
            "empty key name",
        ),
        (
            "policies:\n  p: { log_bodies: { keep: all } }\n".into(),
            "policies.p.log_bodies.keep",
            "unknown field",
        ),
    ];
    for (text, path, needle) in cases {
        issue_at(&text, path, needle);
    }
}

/// A mock provider and a model `m` with `cache` set to `cache`.
fn cached_model(cache: &str) -> String {
    format!("providers:\n  p: {{ kind: mock }}\nmodels:\n  m: {{ cache: {cache}, deployments: [ {{ provider: p, model: x }} ] }}\n")
}

#[test]
fn cache_parses_with_defaults() {
    let cfg = load(&format!("cache: {{}}\n{}", cached_model("{}"))).unwrap();
    let c = cfg.cache.unwrap();
    assert_eq!((c.max_bytes.0, c.max_entry_bytes.0), (256 << 20, 1 << 20));
    assert_eq!(c.ttl.0.as_secs(), 600);
    assert!(cfg.models["m"].cache.unwrap().ttl.is_none());
    // The block may be left out: a model's opt-in is enough.
    let cfg = load(&cached_model("{ ttl: 1h }")).unwrap();
    assert!(cfg.cache.is_none());
    assert_eq!(
        cfg.models["m"].cache.unwrap().ttl.unwrap().0.as_secs(),
        3600
    );
    let snap = crate::snapshot::Snapshot::build(&cfg, 1).unwrap();
    assert_eq!(snap.models["m"].cache_ttl.map(|t| t.as_secs()), Some(3600));
    let cfg = load(&format!("cache: {{ ttl: 5m }}\n{}", cached_model("{}"))).unwrap();
    let snap = crate::snapshot::Snapshot::build(&cfg, 1).unwrap();
    assert_eq!(snap.models["m"].cache_ttl.map(|t| t.as_secs()), Some(300));
}

#[test]
fn cache_problems_are_explained() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "cache: { max_bytes: 1KiB }\n".into(),
            "cache.max_bytes",
            "at least 1MiB",
        ),
        (
            "cache: { max_entry_bytes: 0 }\n".into(),
            "cache.max_entry_bytes",
            "between 1 byte and 64MiB",
        ),
        (
            "cache: { max_entry_bytes: 65MiB }\n".into(),
            "cache.max_entry_bytes",
            "between 1 byte and 64MiB",
        ),
        (
            "cache: { max_bytes: 2MiB, max_entry_bytes: 3MiB }\n".into(),
            "cache.max_entry_bytes",
            "not be larger than `cache.max_bytes`",
        ),
        (
            "cache: { ttl: 0s }\n".into(),
            "cache.ttl",
            "more than 0 and at most 30d",
        ),
        (
            "cache: { ttl: 31d }\n".into(),
            "cache.ttl",
            "more than 0 and at most 30d",
        ),
        ("cache: { ttl: soon }\n".into(), "cache.ttl", ""),
        ("cache: { max_bytes: lots }\n".into(), "cache.max_bytes", ""),
        (
            "cache: { enabled: true }\n".into(),
            "cache.enabled",
            "unknown field",
        ),
        (
            cached_model("{ ttl: 0s }"),
            "models.m.cache.ttl",
            "more than 0 and at most 30d",
        ),
        (
            cached_model("{ ttl: 60d }"),
            "models.m.cache.ttl",
            "more than 0 and at most 30d",
        ),
        (
            cached_model("{ tll: 1h }"),
            "models.m.cache.tll",
            "unknown field",
        ),
        (cached_model("true"), "models.m.cache", ""),
    ];
    for (text, path, needle) in cases {
        issue_at(&text, path, needle);
    }
}
