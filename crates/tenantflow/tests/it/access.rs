//! Admission on every route: no request without a valid credential reaches a handler, and a
//! credential without grants sees nothing and changes nothing.

use crate::harness::ALPHA;
use crate::matrix::{body as body_for, concrete};
use crate::on_every_backend;
use reqwest::StatusCode;
use serde_json::json;
use tf_server::access::Access;

on_every_backend!(no_request_without_a_valid_credential_reaches_a_handler, |srv| {
    // Invariant: every route but the health checks answers 401 to a missing, malformed, unknown,
    // expired or revoked credential, and changes nothing.
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, StatusCode::CREATED);
    let platform = srv.store().platform();
    let expired = platform.create_token("service_account", "old", None, "", Some(1)).await.unwrap().secret;
    let revoked = platform.create_token("service_account", "gone", None, "", None).await.unwrap();
    assert!(platform.revoke_token(&revoked.info.id).await.unwrap());
    let bad: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("garbage", Some("not-a-token".into())),
        ("forged", Some(format!("{}x", srv.admin))),
        ("expired", Some(expired)),
        ("revoked", Some(revoked.secret)),
    ];
    let routes = tf_server::table::routes();
    let public: Vec<&str> = routes.iter().filter(|r| r.access == Access::Public).map(|r| r.path).collect();
    assert_eq!(public, ["/healthz", "/readyz"], "only health checks may be public");
    for r in &routes {
        let path = concrete(r.path);
        for (label, tok) in &bad {
            let (s, b) = srv.call(r.method.as_str(), &path, tok.as_deref(), body_for(r.method.as_str(), r.path)).await;
            if r.access == Access::Public {
                assert!(s.is_success(), "{} {path} should be public", r.method);
            } else {
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{} {path} with {label} credential: {b}", r.method);
                assert_eq!(b["code"], "unauthenticated");
            }
        }
    }
    // Unknown routes and wrong methods need a credential too.
    assert_eq!(srv.call("GET", "/api/v1/nothing-here", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.call("PATCH", "/api/v1/projects", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(srv.get("/api/v1/nothing-here").await.0, StatusCode::NOT_FOUND);
    assert_eq!(srv.call("PATCH", "/api/v1/projects", Some(&srv.admin), None).await.0, StatusCode::METHOD_NOT_ALLOWED);
    // Nothing was changed by any of it.
    let (_, p) = srv.get("/api/v1/projects/ml-alpha").await;
    assert_eq!(p["description"], "");
    assert_eq!(srv.get("/api/v1/projects/intruder").await.0, StatusCode::NOT_FOUND);
    assert_eq!(srv.get("/api/v1/tenants/intruder").await.0, StatusCode::NOT_FOUND);
    srv.stop().await;
});

on_every_backend!(a_credential_without_grants_sees_and_changes_nothing, |srv| {
    // Invariant: deny by default — a valid non-admin credential gets 404 for every project
    // route (never a hint that the project exists), 403 for platform operations, empty lists.
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, StatusCode::CREATED);
    let sa = srv
        .store()
        .platform()
        .create_token("service_account", "robot", Some("team-beta"), "", None)
        .await
        .unwrap()
        .secret;
    for r in tf_server::table::routes() {
        let path = concrete(r.path);
        let (s, b) = srv.call(r.method.as_str(), &path, Some(&sa), body_for(r.method.as_str(), r.path)).await;
        let text = b.to_string();
        match r.access {
            Access::Public | Access::Authenticated => {
                assert!(
                    s != StatusCode::UNAUTHORIZED && !s.is_server_error() && !super::matrix::admission(&b),
                    "{} {path}: {s} {b}",
                    r.method
                )
            }
            Access::Project(_) | Access::ProjectVisible | Access::Tenant(_) => {
                assert_eq!(s, StatusCode::NOT_FOUND, "{} {path}: {b}", r.method);
                assert!(!text.contains("ml-alpha") && !text.contains("load-data"), "{} {path} leaks: {text}", r.method);
            }
            Access::Platform(_) => assert_eq!(s, StatusCode::FORBIDDEN, "{} {path}: {b}", r.method),
            // A tenant's audit and usage: its own tenant reads as absent to a caller without grants.
            Access::Collection(_) if ["/api/v1/audit", "/api/v1/usage"].contains(&r.path) => {
                assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
            }
            Access::Collection(_) if r.method == "GET" => {
                assert_eq!(s, StatusCode::OK);
                assert_eq!(b["items"], json!([]), "{path} lists what the caller may not see");
            }
            // Creating in a tenant or project the caller cannot see: refused, and the target
            // reads as absent.
            Access::Collection(_) => assert!(
                s == StatusCode::FORBIDDEN
                    || (s == StatusCode::BAD_REQUEST && b["details"]["field"] == "tenant")
                    || (s == StatusCode::NOT_FOUND && !text.contains("ml-alpha")),
                "{} {path}: {b}",
                r.method
            ),
        }
    }
    // The same answer for a project that does not exist: existence is not revealed.
    let (s1, b1) = srv.call("GET", "/api/v1/projects/ml-alpha", Some(&sa), None).await;
    let (s2, b2) = srv.call("GET", "/api/v1/projects/no-such-project", Some(&sa), None).await;
    assert_eq!((s1, &b1), (s2, &b2));
    let (_, p) = srv.get("/api/v1/projects/ml-alpha").await;
    assert_eq!(p["description"], "");
    assert_eq!(srv.get("/api/v1/projects/intruder").await.0, StatusCode::NOT_FOUND);
    srv.stop().await;
});

on_every_backend!(replicas_sharing_a_database_converge_on_access_changes, |srv| {
    // Invariant: a change of access made through one server holds on every server sharing the
    // database within a couple of seconds — a removed binding stops working everywhere.
    let (replica, base) = srv.replica().await;
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    srv.role("team-alpha", "reader", &["workflows:read"], &["ml-alpha"], &["*"]).await;
    let sa = srv.service_account("team-alpha", "robot", "reader").await;
    let on_replica = |tok: String| {
        let url = format!("{base}/api/v1/workflows/ml-alpha/development");
        async move { reqwest::Client::new().get(url).bearer_auth(tok).send().await.unwrap().status() }
    };
    let wait_for = |want: StatusCode| {
        let on_replica = &on_replica;
        let sa = sa.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let got = on_replica(sa.clone()).await;
                if got == want {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "replica still answers {got}, expected {want}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(StatusCode::OK).await;
    let del = "/api/v1/tenants/team-alpha/bindings?role=reader&subject_kind=service_account&subject=robot";
    assert_eq!(srv.call("DELETE", del, Some(&srv.admin), None).await.0, StatusCode::OK);
    wait_for(StatusCode::NOT_FOUND).await;
    // Registrations through one server show in the other's (cached) listings too.
    let admin = srv.admin.clone();
    let list = |base: String| {
        let admin = admin.clone();
        async move {
            let r = reqwest::Client::new()
                .get(format!("{base}/api/v1/tasks/ml-alpha/development"))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()["items"].as_array().map(|a| a.len()).unwrap_or(0)
        }
    };
    assert_eq!(list(base.clone()).await, 0);
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while list(base.clone()).await != 2 {
        assert!(std::time::Instant::now() < deadline, "the replica never showed the new registration");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    replica.shutdown().await.unwrap();
    srv.stop().await;
});
