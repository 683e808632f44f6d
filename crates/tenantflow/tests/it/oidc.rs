//! OIDC end to end: tokens signed by a standard JWT library, keys served as JWKS on loopback,
//! the seed's access rules enforced over HTTP, and tokens that must never get in.

use crate::harness::{backends, TestServer, ALPHA};
use axum::routing::get;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const AUD: &str = "tenantflow";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/it/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A loopback identity provider: discovery document and JWKS, with a switch for key rotation
/// and a counter of key fetches.
pub struct Idp {
    pub issuer: String,
    pub rotated: Arc<AtomicBool>,
    pub jwks_hits: Arc<AtomicUsize>,
}

impl Idp {
    pub async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let rotated = Arc::new(AtomicBool::new(false));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let (iss, rot, hits) = (issuer.clone(), rotated.clone(), jwks_hits.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let iss = iss.clone();
                    async move { axum::Json(json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks")})) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let (rot, hits) = (rot.clone(), hits.clone());
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let f = if rot.load(Ordering::SeqCst) { "jwks-rotated.json" } else { "jwks.json" };
                        axum::Json(serde_json::from_str::<Value>(&fixture(f)).unwrap())
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Idp { issuer, rotated, jwks_hits }
    }

    pub fn auth(&self) -> tf_server::AuthOptions {
        serde_json::from_value(json!({"oidc": {"issuer": self.issuer, "audience": AUD}})).unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    /// Claims for a user, valid for an hour.
    pub fn claims(&self, user: &str, groups: &[&str]) -> Value {
        json!({"iss": self.issuer, "aud": AUD, "sub": format!("sub-{user}"), "email": user, "groups": groups,
               "iat": Self::now(), "exp": Self::now() + 3600})
    }

    pub fn sign(&self, claims: &Value, alg: Algorithm, kid: &str) -> String {
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(fixture(&format!("{kid}.pem")).as_bytes()).unwrap(),
            Algorithm::ES256 => EncodingKey::from_ec_pem(fixture(&format!("{kid}.pem")).as_bytes()).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(fixture(&format!("{kid}.pem")).as_bytes()).unwrap(),
            other => panic!("no fixture for {other:?}"),
        };
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        encode(&h, claims, &key).unwrap()
    }

    pub fn token(&self, user: &str, groups: &[&str]) -> String {
        self.sign(&self.claims(user, groups), Algorithm::RS256, "rsa1")
    }
}

/// Sets up the seed's teams, projects, roles and user/group bindings through the API.
pub async fn seed_access(srv: &TestServer) {
    for (id, tenant, domains) in [
        ("ml-alpha", "team-alpha", &["development", "staging", "production"][..]),
        ("web-alpha", "team-alpha", &["development", "production"][..]),
        ("data-beta", "team-beta", &["development", "production"][..]),
        ("api-beta", "team-beta", &["development", "production"][..]),
    ] {
        srv.project(id, tenant, domains).await;
    }
    let dev = [
        "workflows:create",
        "workflows:read",
        "workflows:execute",
        "launchplans:create",
        "launchplans:read",
        "executions:read",
        "executions:create",
    ];
    let senior = [&dev[..], &["workflows:update", "launchplans:update", "executions:terminate"]].concat();
    srv.role("team-alpha", "alpha-developer", &dev, &["ml-alpha", "web-alpha"], &["development", "staging"]).await;
    srv.role(
        "team-alpha",
        "alpha-senior",
        &senior,
        &["ml-alpha", "web-alpha"],
        &["development", "staging", "production"],
    )
    .await;
    srv.role("team-beta", "beta-developer", &dev, &["data-beta", "api-beta"], &["development"]).await;
    srv.role("team-beta", "beta-lead", &senior, &["data-beta", "api-beta"], &["development", "production"]).await;
    srv.bind("team-alpha", "alpha-developer", "user", "alice@company.com").await;
    srv.bind("team-alpha", "alpha-senior", "user", "bob@company.com").await;
    srv.bind("team-beta", "beta-developer", "user", "charlie@company.com").await;
    srv.bind("team-beta", "beta-lead", "user", "diana@company.com").await;
    srv.bind("team-beta", "beta-lead", "group", "team-beta-leads").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_access_control_verification() {
    // Invariant: teams can only access their own projects and workflows (seed: "Access Control
    // Verification"), with identities from real OIDC tokens.
    for backend in backends() {
        let idp = Idp::start().await;
        let srv = TestServer::start_with(backend, idp.auth()).await;
        seed_access(&srv).await;
        assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, StatusCode::CREATED);
        assert_eq!(srv.register("data-beta", "development", "v1", crate::harness::BETA).await.0, StatusCode::CREATED);
        let as_ = |user: &str, groups: &[&str]| idp.token(user, groups);
        let alice = as_("alice@company.com", &[]);

        // alice lists ml-alpha/development workflows.
        let (s, l) = srv.call("GET", "/api/v1/workflows/ml-alpha/development", Some(&alice), None).await;
        assert_eq!(s, StatusCode::OK, "{l}");
        assert_eq!(l["items"][0]["name"], "alpha-ml-workflow");
        // data-beta is invisible to her: 404 on every path, absent from lists.
        for path in [
            "/api/v1/workflows/data-beta/development",
            "/api/v1/projects/data-beta",
            "/api/v1/launch_plans/data-beta/development/beta-daily/v1",
        ] {
            let (s, b) = srv.call("GET", path, Some(&alice), None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
            assert!(!b.to_string().contains("beta-daily"), "{b}");
        }
        let (_, l) = srv.call("GET", "/api/v1/projects", Some(&alice), None).await;
        let ids: Vec<&str> = l["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["ml-alpha", "web-alpha"]);
        // She cannot register into production, but can into development.
        let prod = "/api/v1/register/ml-alpha/production?version=v2";
        let (s, b) = srv.call("POST", prod, Some(&alice), Some(("application/yaml", ALPHA.as_bytes().to_vec()))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        let (s, _) = srv.call("GET", "/api/v1/workflows/ml-alpha/production", Some(&alice), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let dev = "/api/v1/register/ml-alpha/development?version=v2";
        let (s, b) = srv.call("POST", dev, Some(&alice), Some(("application/yaml", ALPHA.as_bytes().to_vec()))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");

        // bob may terminate in production (shown through explain until executions exist).
        let bob = as_("bob@company.com", &[]);
        let q = "/api/v1/authz/explain?permission=executions:terminate&project=ml-alpha&domain=production";
        let (s, e) = srv.call("GET", q, Some(&bob), None).await;
        assert_eq!(s, StatusCode::OK, "{e}");
        assert_eq!(e["explanation"]["decision"], "allowed");
        assert_eq!(e["explanation"]["grant"]["role"], "alpha-senior");
        assert_eq!(e["explanation"]["grant"]["binding"], json!({"kind": "user", "name": "bob@company.com"}));
        let (_, e) = srv.call("GET", q, Some(&alice), None).await;
        assert_eq!(e["explanation"]["decision"], "denied");

        // charlie works only in data-beta/api-beta development.
        let charlie = as_("charlie@company.com", &[]);
        for (path, want) in [
            ("/api/v1/workflows/data-beta/development", StatusCode::OK),
            ("/api/v1/workflows/api-beta/development", StatusCode::OK),
            ("/api/v1/workflows/data-beta/production", StatusCode::FORBIDDEN),
            ("/api/v1/workflows/ml-alpha/development", StatusCode::NOT_FOUND),
        ] {
            assert_eq!(srv.call("GET", path, Some(&charlie), None).await.0, want, "charlie {path}");
        }

        // No binding of their own, but in group team-beta-leads: beta-lead rights.
        let lead = as_("frank@company.com", &["team-beta-leads"]);
        assert_eq!(
            srv.call("GET", "/api/v1/workflows/data-beta/production", Some(&lead), None).await.0,
            StatusCode::OK
        );
        let q = "/api/v1/authz/explain?permission=executions:terminate&project=data-beta&domain=production";
        let (_, e) = srv.call("GET", q, Some(&lead), None).await;
        assert_eq!(e["explanation"]["grant"]["binding"], json!({"kind": "group", "name": "team-beta-leads"}));
        assert_eq!(
            srv.call("GET", "/api/v1/workflows/ml-alpha/development", Some(&lead), None).await.0,
            StatusCode::NOT_FOUND
        );

        // /me tells each user what they may do where.
        let (_, me) = srv.call("GET", "/api/v1/me", Some(&alice), None).await;
        assert_eq!(me["subject"], "alice@company.com");
        let ml = me["projects"].as_array().unwrap().iter().find(|p| p["project"] == "ml-alpha").unwrap();
        assert!(ml["domains"]["development"].as_array().unwrap().contains(&json!("workflows:create")));
        assert_eq!(ml["domains"]["production"], json!([]));

        // A personal credential acts as its user; revoking it locks it out at once.
        let (s, t) = srv
            .call(
                "POST",
                "/api/v1/me/tokens",
                Some(&alice),
                Some(("application/json", json!({"expires_in": "1d"}).to_string().into_bytes())),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        let personal = t["token"].as_str().unwrap().to_string();
        assert_eq!(
            srv.call("GET", "/api/v1/workflows/ml-alpha/development", Some(&personal), None).await.0,
            StatusCode::OK
        );
        assert_eq!(
            srv.call("GET", "/api/v1/workflows/data-beta/development", Some(&personal), None).await.0,
            StatusCode::NOT_FOUND
        );
        let (_, mine) = srv.call("GET", "/api/v1/me/tokens", Some(&alice), None).await;
        assert_eq!(mine["items"].as_array().unwrap().len(), 1);
        let id = t["id"].as_str().unwrap();
        assert_eq!(
            srv.call("DELETE", &format!("/api/v1/me/tokens/{id}"), Some(&bob), None).await.0,
            StatusCode::NOT_FOUND,
            "not bob's"
        );
        assert_eq!(srv.call("DELETE", &format!("/api/v1/me/tokens/{id}"), Some(&alice), None).await.0, StatusCode::OK);
        assert_eq!(
            srv.call("GET", "/api/v1/workflows/ml-alpha/development", Some(&personal), None).await.0,
            StatusCode::UNAUTHORIZED
        );

        // The seed's owner/contributor roles are built-in templates.
        let (s, b) = srv
            .put(
                "/api/v1/tenants/team-alpha/roles/ws-contributor",
                &json!({"template": "contributor", "projects": ["ml-alpha"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["role"]["domains"], json!(["development", "staging"]));
        srv.bind("team-alpha", "ws-contributor", "user", "carol@company.com").await;
        let carol = as_("carol@company.com", &[]);
        let q = |perm: &str, d: &str| format!("/api/v1/authz/explain?permission={perm}&project=ml-alpha&domain={d}");
        assert_eq!(
            srv.call("GET", &q("executions:create", "staging"), Some(&carol), None).await.1["explanation"]["decision"],
            "allowed"
        );
        assert_eq!(
            srv.call("GET", &q("executions:create", "production"), Some(&carol), None).await.1["explanation"]
                ["decision"],
            "denied"
        );

        // A tenant administrator manages their tenant's access, never beyond what they hold.
        srv.role("team-alpha", "alpha-admin", &["roles:*", "workflows:*", "projects:create"], &["*"], &["*"]).await;
        srv.bind("team-alpha", "alpha-admin", "user", "ada@company.com").await;
        let ada = as_("ada@company.com", &[]);
        let role = |perms: &[&str]| {
            Some((
                "application/json",
                json!({"permissions": perms, "projects": ["ml-alpha"], "domains": ["development"]})
                    .to_string()
                    .into_bytes(),
            ))
        };
        let (s, b) =
            srv.call("PUT", "/api/v1/tenants/team-alpha/roles/readers", Some(&ada), role(&["workflows:read"])).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = srv
            .call("PUT", "/api/v1/tenants/team-alpha/roles/killers", Some(&ada), role(&["executions:terminate"]))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no escalation: {b}");
        let (s, _) =
            srv.call("PUT", "/api/v1/tenants/team-beta/roles/readers", Some(&ada), role(&["workflows:read"])).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "another tenant is invisible");
        let (s, b) = srv
            .call(
                "POST",
                "/api/v1/projects",
                Some(&ada),
                Some((
                    "application/json",
                    json!({"id": "ml-gamma-new", "tenant": "team-alpha"}).to_string().into_bytes(),
                )),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (_, l) = srv.call("GET", "/api/v1/projects", Some(&ada), None).await;
        assert!(l["items"].as_array().unwrap().iter().any(|p| p["id"] == "ml-gamma-new"), "{l}");

        // Removing a binding takes effect on the very next request.
        let del =
            "/api/v1/tenants/team-alpha/bindings?role=alpha-developer&subject_kind=user&subject=alice@company.com";
        assert_eq!(srv.call("DELETE", del, Some(&srv.admin), None).await.0, StatusCode::OK);
        assert_eq!(
            srv.call("GET", "/api/v1/workflows/ml-alpha/development", Some(&alice), None).await.0,
            StatusCode::NOT_FOUND
        );
        srv.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_attacks_are_all_401() {
    // Invariant: only a token signed by the issuer's published key, for our audience, within
    // its validity, identifies anyone; every other token is a 401 and never a 5xx.
    let idp = Idp::start().await;
    let srv = TestServer::start_with(crate::harness::Backend::Sqlite, idp.auth()).await;
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    srv.role("team-alpha", "reader", &["workflows:read"], &["ml-alpha"], &["*"]).await;
    srv.bind("team-alpha", "reader", "user", "alice@company.com").await;
    let path = "/api/v1/workflows/ml-alpha/development";
    let ok = |t: &str| {
        let t = t.to_string();
        let srv = &srv;
        async move { srv.call("GET", path, Some(&t), None).await }
    };
    // Valid tokens of each accepted algorithm get in.
    let claims = idp.claims("alice@company.com", &[]);
    for (alg, kid) in [(Algorithm::RS256, "rsa1"), (Algorithm::ES256, "ec1"), (Algorithm::EdDSA, "ed1")] {
        let (s, b) = ok(&idp.sign(&claims, alg, kid)).await;
        assert_eq!(s, StatusCode::OK, "{alg:?}: {b}");
    }
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let good = idp.token("alice@company.com", &[]);
    let parts: Vec<&str> = good.split('.').collect();
    let mut attacks: Vec<(&str, String)> = vec![];
    attacks.push(("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1])));
    attacks.push((
        "alg none with signature",
        format!("{}.{}.{}", b64(&json!({"alg": "none", "kid": "rsa1"})), parts[1], parts[2]),
    ));
    let hs = encode(
        &{
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("rsa1".into());
            h
        },
        &claims,
        &EncodingKey::from_secret(fixture("rsa1.pub.pem").as_bytes()),
    )
    .unwrap();
    attacks.push(("HS256 with the public key", hs));
    let mut c = claims.clone();
    c["iss"] = json!("https://evil.example.com/");
    attacks.push(("wrong issuer", idp.sign(&c, Algorithm::RS256, "rsa1")));
    let mut c = claims.clone();
    c["aud"] = json!("someone-else");
    attacks.push(("wrong audience", idp.sign(&c, Algorithm::RS256, "rsa1")));
    let mut c = claims.clone();
    c["exp"] = json!(Idp::now() - 3600);
    attacks.push(("expired", idp.sign(&c, Algorithm::RS256, "rsa1")));
    let mut c = claims.clone();
    c["nbf"] = json!(Idp::now() + 3600);
    attacks.push(("not yet valid", idp.sign(&c, Algorithm::RS256, "rsa1")));
    let mut c = claims.clone();
    c.as_object_mut().unwrap().remove("exp");
    attacks.push(("no expiry", idp.sign(&c, Algorithm::RS256, "rsa1")));
    attacks.push(("unknown kid", idp.sign(&claims, Algorithm::RS256, "rsa2")));
    attacks.push(("key of another kid", {
        let t = idp.sign(&claims, Algorithm::RS256, "rsa2");
        let p: Vec<&str> = t.split('.').collect();
        format!("{}.{}.{}", b64(&json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"})), p[1], p[2])
    }));
    let mut c = claims.clone();
    c["email"] = json!("bob@company.com");
    attacks.push(("tampered payload", format!("{}.{}.{}", parts[0], b64(&c), parts[2])));
    attacks.push(("truncated", good[..good.len() - 10].to_string()));
    attacks.push(("two parts", format!("{}.{}", parts[0], parts[1])));
    attacks.push(("garbage", "not.a.jwt".into()));
    attacks.push(("empty segments", "..".into()));
    attacks.push(("huge", "a".repeat(20_000)));
    for (name, token) in &attacks {
        let (s, b) = ok(token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{name}: {b}");
        assert_eq!(b["code"], "unauthenticated", "{name}");
    }
    // Key rotation: a token from a newly published key works after one refresh; a flood of
    // unknown kids does not hammer the issuer.
    let before = idp.jwks_hits.load(Ordering::SeqCst);
    for i in 0..50 {
        let _ = ok(&idp.sign(&claims, Algorithm::RS256, if i % 2 == 0 { "rsa2" } else { "rsa1" })).await;
    }
    assert!(
        idp.jwks_hits.load(Ordering::SeqCst) - before <= 2,
        "JWKS fetched {} times",
        idp.jwks_hits.load(Ordering::SeqCst) - before
    );
    idp.rotated.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let (s, b) = ok(&idp.sign(&claims, Algorithm::RS256, "rsa2")).await;
    assert_eq!(s, StatusCode::OK, "rotated key: {b}");
    srv.stop().await;
}
