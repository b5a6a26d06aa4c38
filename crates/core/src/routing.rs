//! The route table's decisions: which route a request names (and its path parameters), which
//! methods a path supports (the `Allow` of a 405), whether the caller must authenticate before
//! learning either, and whether a caller's role passes the route's gate. The table itself is in
//! the edge (`src/routes.rs`), whose handlers these types are generic over.

use crate::auth::{Access, Role};
use thiserror::Error;

/// Who may call a route, and the handler it runs: `P` needs no credential, `A` an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate<P, A> {
    /// No credential: health, provider callbacks, carrier media, the OpenAPI document.
    Public(P),
    /// Any role of the tenant.
    Read(A),
    /// Operators and admins.
    Operate(A),
    /// Admins.
    Administer(A),
    /// Only the deployment's bootstrap `ADMIN_API_KEY` (tenants span the deployment).
    Bootstrap(A),
}

/// What a gated route asks of the caller's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A role that grants this access.
    Role(Access),
    /// The bootstrap key.
    Bootstrap,
}

/// Why a credential does not pass a route's gate (a 403).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    #[error("this API key's role does not allow that")]
    Role,
    #[error("only ADMIN_API_KEY manages tenants")]
    NotBootstrap,
}

impl Need {
    /// Whether a key with `role` (`bootstrap` when it is the `ADMIN_API_KEY`) may pass.
    pub fn admit(self, role: Role, bootstrap: bool) -> Result<(), Forbidden> {
        match self {
            Need::Role(access) if role.allows(access) => Ok(()),
            Need::Role(_) => Err(Forbidden::Role),
            Need::Bootstrap if bootstrap => Ok(()),
            Need::Bootstrap => Err(Forbidden::NotBootstrap),
        }
    }
}

/// One line of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<P, A> {
    /// `"METHOD /path/{param}"`: the route's name in logs and in the OpenAPI document.
    pub label: &'static str,
    pub gate: Gate<P, A>,
}

impl<P, A> Route<P, A> {
    /// The method part of the label.
    pub fn method(&self) -> &'static str {
        self.label.split_once(' ').map_or(self.label, |(m, _)| m)
    }

    /// The path template part of the label.
    pub fn template(&self) -> &'static str {
        self.label.split_once(' ').map_or("", |(_, t)| t)
    }

    /// Whether the route needs no credential.
    pub fn is_public(&self) -> bool {
        matches!(self.gate, Gate::Public(_))
    }

    /// The path parameters if `segments` fit the template (a `{name}` segment fits any one).
    fn params<'p>(&self, segments: &[&'p str]) -> Option<Vec<&'p str>> {
        let template = segments_of(self.template());
        if template.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (t, s) in template.iter().zip(segments) {
            if t.starts_with('{') && t.ends_with('}') {
                params.push(*s);
            } else if t != s {
                return None;
            }
        }
        Some(params)
    }
}

/// What the table says about a request, before any credential is looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'p, H> {
    /// Run the handler with the path parameters, in template order.
    Run {
        label: &'static str,
        handler: H,
        params: Vec<&'p str>,
    },
    /// The path exists, the method does not: 405 with `allow` (e.g. `"GET, PATCH"`).
    MethodNotAllowed {
        template: &'static str,
        allow: String,
    },
    /// No route has this path.
    NotFound,
}

/// The answer split by whether a credential comes first.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<'t, 'p, P, A> {
    /// Answer without authenticating: a public route, or a 405/404 outside the private space.
    Open(Outcome<'p, &'t P>),
    /// Authenticate first, then check `Need` before running: an unauthenticated caller learns
    /// nothing about which private paths or methods exist.
    Private(Outcome<'p, (Need, &'t A)>),
}

/// Splits a path the way the table's templates are split (outer slashes ignored).
fn segments_of(path: &str) -> Vec<&str> {
    path.trim_matches('/').split('/').collect()
}

/// Resolves `method path` against `table`. Paths under `private_prefix` (e.g. `/api/v1`) that
/// no public route serves need a credential before even a 404 or 405.
pub fn resolve<'t, 'p, P, A>(
    table: &'t [Route<P, A>],
    private_prefix: &str,
    method: &str,
    path: &'p str,
) -> Resolution<'t, 'p, P, A> {
    let segments = segments_of(path);
    let fits: Vec<(&'t Route<P, A>, Vec<&'p str>)> = table
        .iter()
        .filter_map(|r| r.params(&segments).map(|p| (r, p)))
        .collect();
    if let Some((route, params)) = fits.iter().find(|(r, _)| r.method() == method) {
        let (label, params) = (route.label, params.clone());
        return match &route.gate {
            Gate::Public(handler) => Resolution::Open(Outcome::Run {
                label,
                handler,
                params,
            }),
            Gate::Read(a) | Gate::Operate(a) | Gate::Administer(a) | Gate::Bootstrap(a) => {
                let need = match route.gate {
                    Gate::Read(_) => Need::Role(Access::Read),
                    Gate::Operate(_) => Need::Role(Access::Operate),
                    Gate::Administer(_) => Need::Role(Access::Administer),
                    _ => Need::Bootstrap,
                };
                Resolution::Private(Outcome::Run {
                    label,
                    handler: (need, a),
                    params,
                })
            }
        };
    }
    if let Some((first, _)) = fits.first() {
        let mut allow: Vec<&str> = Vec::new();
        for (route, _) in &fits {
            if !allow.contains(&route.method()) {
                allow.push(route.method());
            }
        }
        let (template, allow) = (first.template(), allow.join(", "));
        return if fits.iter().all(|(r, _)| r.is_public()) {
            Resolution::Open(Outcome::MethodNotAllowed { template, allow })
        } else {
            Resolution::Private(Outcome::MethodNotAllowed { template, allow })
        };
    }
    if segments.starts_with(&segments_of(private_prefix)) {
        Resolution::Private(Outcome::NotFound)
    } else {
        Resolution::Open(Outcome::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum P {
        Health,
        Webhook,
        Doc,
    }
    #[derive(Debug, PartialEq, Eq)]
    enum A {
        List,
        Create,
        Get,
        Update,
        Redrive,
        Tenants,
    }

    const TABLE: &[Route<P, A>] = &[
        Route {
            label: "GET /health",
            gate: Gate::Public(P::Health),
        },
        Route {
            label: "POST /webhooks/{provider}",
            gate: Gate::Public(P::Webhook),
        },
        Route {
            label: "GET /api/v1/openapi.json",
            gate: Gate::Public(P::Doc),
        },
        Route {
            label: "GET /api/v1/things",
            gate: Gate::Read(A::List),
        },
        Route {
            label: "POST /api/v1/things",
            gate: Gate::Operate(A::Create),
        },
        Route {
            label: "POST /api/v1/things/redrive",
            gate: Gate::Operate(A::Redrive),
        },
        Route {
            label: "GET /api/v1/things/{id}",
            gate: Gate::Read(A::Get),
        },
        Route {
            label: "PATCH /api/v1/things/{id}",
            gate: Gate::Administer(A::Update),
        },
        Route {
            label: "GET /api/v1/tenants",
            gate: Gate::Bootstrap(A::Tenants),
        },
    ];

    fn resolve<'p>(method: &str, path: &'p str) -> Resolution<'static, 'p, P, A> {
        super::resolve(TABLE, "/api/v1", method, path)
    }

    #[test]
    fn public_routes_run_without_a_credential_with_their_params() {
        assert_eq!(
            resolve("POST", "/webhooks/twilio"),
            Resolution::Open(Outcome::Run {
                label: "POST /webhooks/{provider}",
                handler: &P::Webhook,
                params: vec!["twilio"],
            })
        );
        assert!(matches!(
            resolve("GET", "/health/"),
            Resolution::Open(Outcome::Run {
                handler: P::Health,
                ..
            })
        ));
    }

    #[test]
    fn private_routes_carry_what_they_need() {
        assert_eq!(
            resolve("PATCH", "/api/v1/things/th_1"),
            Resolution::Private(Outcome::Run {
                label: "PATCH /api/v1/things/{id}",
                handler: (Need::Role(Access::Administer), &A::Update),
                params: vec!["th_1"],
            })
        );
        assert!(matches!(
            resolve("GET", "/api/v1/tenants"),
            Resolution::Private(Outcome::Run {
                handler: (Need::Bootstrap, A::Tenants),
                ..
            })
        ));
    }

    #[test]
    fn a_literal_segment_and_a_parameter_share_a_path_by_method() {
        assert!(matches!(
            resolve("POST", "/api/v1/things/redrive"),
            Resolution::Private(Outcome::Run {
                handler: (_, A::Redrive),
                ..
            })
        ));
        assert!(matches!(
            resolve("GET", "/api/v1/things/redrive"),
            Resolution::Private(Outcome::Run { handler: (_, A::Get), ref params, .. }) if params == &["redrive"]
        ));
    }

    #[test]
    fn a_wrong_method_lists_the_methods_the_path_supports() {
        assert_eq!(
            resolve("DELETE", "/api/v1/things/th_1"),
            Resolution::Private(Outcome::MethodNotAllowed {
                template: "/api/v1/things/{id}",
                allow: "GET, PATCH".into(),
            })
        );
        assert_eq!(
            resolve("DELETE", "/api/v1/things"),
            Resolution::Private(Outcome::MethodNotAllowed {
                template: "/api/v1/things",
                allow: "GET, POST".into(),
            })
        );
        // Methods are case-sensitive tokens; HEAD is not GET.
        assert!(matches!(
            resolve("HEAD", "/health"),
            Resolution::Open(Outcome::MethodNotAllowed { ref allow, .. }) if allow == "GET"
        ));
    }

    #[test]
    fn a_public_path_answers_405_without_a_credential() {
        assert!(matches!(
            resolve("PUT", "/api/v1/openapi.json"),
            Resolution::Open(Outcome::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            resolve("GET", "/webhooks/twilio"),
            Resolution::Open(Outcome::MethodNotAllowed { ref allow, .. }) if allow == "POST"
        ));
    }

    #[test]
    fn unknown_paths_under_the_private_prefix_need_a_credential_first() {
        for path in [
            "/api/v1",
            "/api/v1/",
            "/api/v1/nothing",
            "/api/v1/openapi.json/x",
            "/api/v1/things/th_1/x",
        ] {
            assert_eq!(
                resolve("GET", path),
                Resolution::Private(Outcome::NotFound),
                "{path}"
            );
        }
        for path in ["/", "/api", "/api/v2/things", "/health/x", "/webhooks"] {
            assert_eq!(
                resolve("GET", path),
                Resolution::Open(Outcome::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn needs_admit_by_role_and_bootstrap() {
        let operate = Need::Role(Access::Operate);
        assert_eq!(operate.admit(Role::Operator, false), Ok(()));
        assert_eq!(operate.admit(Role::Viewer, false), Err(Forbidden::Role));
        assert_eq!(
            Need::Role(Access::Administer).admit(Role::Operator, false),
            Err(Forbidden::Role)
        );
        assert_eq!(
            Need::Bootstrap.admit(Role::Admin, false),
            Err(Forbidden::NotBootstrap)
        );
        assert_eq!(Need::Bootstrap.admit(Role::Admin, true), Ok(()));
    }
}
