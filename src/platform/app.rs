//! Per-request context: bindings, configuration (parsed once per request) and request id.

use crate::platform::http::ApiError;
use phone_agent_core::config::{Config, ConfigError};
use worker::{d1::D1Database, kv::KvStore, Context, Env};

/// Everything a handler needs about the current request's world.
pub struct App {
    pub env: Env,
    pub ctx: Context,
    pub request_id: String,
    config: Result<Config, ConfigError>,
}

impl App {
    /// Reads the configuration from the environment; an invalid one is kept as an error so
    /// routes that need no configuration (health) still answer.
    pub fn new(env: Env, ctx: Context, request_id: String) -> Self {
        let config = load_config(&env);
        App {
            env,
            ctx,
            request_id,
            config,
        }
    }

    /// The parsed configuration, or a 500 naming the variable at fault.
    pub fn config(&self) -> Result<&Config, ApiError> {
        self.config.as_ref().map_err(|e| ApiError::from(e.clone()))
    }

    /// The configuration problem, if any (for health).
    pub fn config_error(&self) -> Option<&ConfigError> {
        self.config.as_ref().err()
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
