//! Every route, fed garbage by a fully privileged caller: malformed JSON and YAML, wrong types,
//! deep nesting, binary, huge strings, odd path segments and query strings. Never a 5xx.

use crate::harness::ALPHA;
use crate::matrix::concrete;
use crate::on_every_backend;

fn garbage_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(3000), "}".repeat(3000));
    vec![
        ("application/json", b"{".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[]".to_vec()),
        ("application/json", b"\"string\"".to_vec()),
        ("application/json", br#"{"id": {"nested": true}, "name": 5, "domains": "x"}"#.to_vec()),
        ("application/json", br#"{"permissions": "workflows:read", "projects": [1], "domains": null}"#.to_vec()),
        ("application/json", br#"{"role": 1, "subject_kind": "robot", "subject": ""}"#.to_vec()),
        ("application/json", br#"{"service_account": "Bad Name", "expires_in": "-5d"}"#.to_vec()),
        ("application/json", format!(r#"{{"id": "{}"}}"#, "a".repeat(100_000)).into_bytes()),
        ("application/json", deep.clone().into_bytes()),
        ("application/json", deep_obj.into_bytes()),
        ("application/json", vec![0xff, 0x00, 0xfe, 0x7b]),
        ("application/yaml", b"kind: Task\nname: t\ncontainer: {command: [x]}\ninterface: {inputs: {a: {type: list, items: {type: list, items: {type: strin}}}}}\n".to_vec()),
        ("application/yaml", b"- - - - - - -\n".to_vec()),
        ("application/yaml", b"kind: Workflow\nname: w\nnodes: [{id: a, task: \"t@\"}, {id: b, task: \"@\"}]\n".to_vec()),
        ("application/yaml", b"!!binary aGVsbG8=\n".to_vec()),
        ("application/yaml", b"kind: Task\nname: t\ncontainer: {command: [x]}\ntimeout: 99999999999999999999s\n".to_vec()),
        ("application/yaml", deep.into_bytes()),
        ("text/html", b"<html>".to_vec()),
        ("application/x-www-form-urlencoded", b"a=b".to_vec()),
    ]
}

on_every_backend!(garbage_never_gets_a_5xx, |srv| {
    // Invariant: bad input is a 4xx with our error shape, on every route, even for a caller
    // allowed to do everything.
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, reqwest::StatusCode::CREATED);
    let bodies = garbage_bodies();
    let odd_paths = [
        "/api/v1/projects/%FF%FE",
        "/api/v1/projects/..%2F..%2Fetc",
        "/api/v1/workflows/ml-alpha/development/a%00b/v1",
        "/api/v1/tasks/ml-alpha/development/load-data/..",
        "/api/v1/projects?limit=-1",
        "/api/v1/projects?limit=99999999999999999999",
        "/api/v1/projects?token=%FF",
        "/api/v1/register/ml-alpha/development?version=%00",
        "/api/v1/authz/explain?permission=x&project=ml-alpha",
        "/api/v1/authz/explain?permission=workflows:read&project=ML_ALPHA",
        "/api/v1/tenants/team-alpha/bindings?role=x&subject_kind=nope&subject=y",
    ];
    let mut calls = 0;
    for r in tf_server::table::routes() {
        let path = concrete(r.path);
        let m = r.method.as_str();
        if m == "GET" || m == "DELETE" {
            let (s, b) = srv
                .call(
                    m,
                    &format!("{path}{}bogus=1", if path.contains('?') { "&" } else { "?" }),
                    Some(&srv.admin),
                    None,
                )
                .await;
            assert!(!s.is_server_error(), "{m} {path}?bogus: {s} {b}");
            calls += 1;
            continue;
        }
        for (ct, body) in &bodies {
            let (s, b) = srv.call(m, &path, Some(&srv.admin), Some((ct, body.clone()))).await;
            assert!(!s.is_server_error(), "{m} {path} with {ct} body: {s} {b}");
            if s.is_client_error() {
                assert!(b["code"].is_string() && b["message"].is_string(), "{m} {path}: error without our shape: {b}");
            }
            calls += 1;
        }
    }
    for p in odd_paths {
        let (s, b) = srv.call("GET", p, Some(&srv.admin), None).await;
        assert!(!s.is_server_error(), "{p}: {s} {b}");
        calls += 1;
    }
    assert!(calls > 200);
    // The server is still healthy and the data intact.
    let (s, _) = srv.get("/api/v1/workflows/ml-alpha/development/alpha-ml-workflow/v1").await;
    assert_eq!(s, reqwest::StatusCode::OK);
    srv.stop().await;
});
