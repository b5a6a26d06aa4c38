//! Per-request context: bindings, configuration (parsed once per isolate) and request id.

use crate::platform::http::{ApiError, LogValue};
use phone_agent_core::config::{Config, ConfigError};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{d1::D1Database, kv::KvStore, Context, Env};

thread_local! {
    /// The configuration parsed by the isolate's first request. Vars and secrets are bound to
    /// the deployed version and an isolate runs one version, so they cannot change under it;
    /// parsing them again (a JS lookup per setting) was a cost on every webhook.
    static CONFIG: RefCell<Option<Rc<Result<Config, ConfigError>>>> = const { RefCell::new(None) };
}

/// The request line's own fields, which a handler's field must not repeat.
const RESERVED_LOG_KEYS: [&str; 8] = [
    "level",
    "msg",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "request_id",
];

/// Everything a handler needs about the current request's world.
pub struct App {
    pub env: Env,
    pub ctx: Context,
    pub request_id: String,
    config: Rc<Result<Config, ConfigError>>,
    /// What the handler adds to this request's log line (see [`App::log_field`]).
    log_fields: RefCell<Vec<(&'static str, LogValue)>>,
}

impl App {
    /// Takes the isolate's configuration (read from the environment on first use); an invalid
    /// one is kept as an error so routes that need no configuration (health) still answer.
    pub fn new(env: Env, ctx: Context, request_id: String) -> Self {
        let config = CONFIG.with(|cached| {
            cached
                .borrow_mut()
                .get_or_insert_with(|| Rc::new(load_config(&env)))
                .clone()
        });
        App {
            env,
            ctx,
            request_id,
            config,
            log_fields: RefCell::new(Vec::new()),
        }
    }

    /// Adds `key` to the request's one log line, so what a handler did (e.g. the event a
    /// webhook stored) is logged with the route and status instead of on a line of its own.
    /// `key` is a name of the handler's own: the line's fixed fields (`level`, `msg`, `method`,
    /// `route`, `path`, `status`, `duration_ms`, `request_id`) are not overridden.
    pub fn log_field(&self, key: &'static str, value: impl Into<LogValue>) {
        debug_assert!(!RESERVED_LOG_KEYS.contains(&key), "{key} is a fixed field");
        self.log_fields.borrow_mut().push((key, value.into()));
    }

    /// The fields handlers added to the request's log line, in the order they were added.
    pub fn take_log_fields(&self) -> Vec<(&'static str, LogValue)> {
        std::mem::take(&mut *self.log_fields.borrow_mut())
    }

    /// The parsed configuration, or a 500 naming the variable at fault.
    pub fn config(&self) -> Result<&Config, ApiError> {
        (*self.config)
            .as_ref()
            .map_err(|e| ApiError::from(e.clone()))
    }

    /// The configuration problem, if any (for health).
    pub fn config_error(&self) -> Option<&ConfigError> {
        (*self.config).as_ref().err()
    }

    /// The D1 database binding `DB`.
    pub fn db(&self) -> Result<D1Database, ApiError> {
        self.env.d1("DB").map_err(ApiError::internal)
    }

    /// The KV namespace binding `KV`.
    pub fn kv(&self) -> Result<KvStore, ApiError> {
        self.env.kv("KV").map_err(ApiError::internal)
    }
}

/// Parses configuration from the worker's vars and secrets (both are string bindings).
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
}
