//! Stage 4a: conditional routes (`routes:`, `routing/routes.rs`). The first
//! rule the request matches picks the model that serves it; the key's
//! allow-list and subscriptions were checked for the model it asked for (a
//! route is the operator's choice), and the served model's own policies,
//! guards, price and deployments apply from here on.

use std::sync::Arc;

use sluice_types::{ChatRequest, Content, ContentPart};

use crate::config::raw::Tokenizer;
use crate::routing::routes::Request;
use crate::snapshot::{tighter, Model};
use crate::telemetry::metrics::{Label, RouteLabels};
use crate::tokens::{count_chat_input, count_embedding_input};

use super::RequestCtx;

/// What a route can see of a request's body.
struct Shape {
    tools: bool,
    images: bool,
    stream: bool,
}

impl RequestCtx {
    /// Routes a chat request (either inbound format).
    pub fn route_chat(&mut self, model: Arc<Model>, req: &ChatRequest) -> Arc<Model> {
        if self.snap.routes.is_empty() {
            return model;
        }
        let images = req.messages.iter().any(|m| match &m.content {
            Some(Content::Parts(p)) => p.iter().any(|p| matches!(p, ContentPart::ImageUrl { .. })),
            _ => false,
        });
        let shape = Shape {
            tools: req.tools.as_ref().is_some_and(|t| !t.is_empty()),
            images,
            stream: req.is_stream(),
        };
        self.route(model, shape, || count_chat_input(req, Tokenizer::Estimate))
    }

    /// Routes an embeddings request.
    pub fn route_embeddings(&mut self, model: Arc<Model>, input: &serde_json::Value) -> Arc<Model> {
        if self.snap.routes.is_empty() {
            return model;
        }
        let shape = Shape {
            tools: false,
            images: false,
            stream: false,
        };
        self.route(model, shape, || {
            count_embedding_input(input, Tokenizer::Estimate)
        })
    }

    fn route(&mut self, model: Arc<Model>, shape: Shape, tokens: impl Fn() -> u64) -> Arc<Model> {
        let snap = self.snap.clone();
        let Some(key) = self.key.clone() else {
            return model;
        };
        let routes = &snap.routes;
        let input_tokens = if routes.counts_tokens(&model.name) {
            tokens()
        } else {
            0
        };
        let req = Request {
            tenant: key.tenant.as_deref(),
            tier: key.tier.as_deref(),
            app: key.app.as_deref(),
            tags: &self.tags,
            input_tokens,
            tools: shape.tools,
            images: shape.images,
            stream: shape.stream,
            key: key.sticky,
            user: self.user.as_deref(),
        };
        let Some((rule, target)) = routes.pick(&model.name, &req) else {
            return model;
        };
        let Some(served) = snap.models.get(target).cloned() else {
            return model;
        };
        self.app
            .metrics
            .routed
            .get_or_create(&RouteLabels {
                route: Label(rule.label.clone()),
                model: Label(served.name.clone()),
            })
            .inc();
        self.route = Some(rule.label.clone());
        self.limits = tighter(key.limits, served.limits);
        served
    }
}
