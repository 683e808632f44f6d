//! Blob storage on a real S3-protocol server (moto, started by `scripts/test-s3.sh`): the
//! Alpha example keeps its inputs, outputs, logs and file outputs under the tenant's prefix in
//! the bucket; a file input given as an `s3://` URI is downloaded for the task of the same
//! tenant and refused for another tenant.

use crate::engine::{can_run, launch, wait_done, ALPHA_EXAMPLE};
use crate::harness::{Backend, TestServer};
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::ObjectStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The S3 endpoint to test against; in CI a missing one is a failure.
fn endpoint() -> Option<String> {
    match std::env::var("TENANTFLOW_TEST_S3_ENDPOINT") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("TENANTFLOW_REQUIRE_ALL").is_ok_and(|v| v == "1") => {
            panic!("TENANTFLOW_REQUIRE_ALL=1 but TENANTFLOW_TEST_S3_ENDPOINT is not set (see scripts/test-s3.sh)")
        }
        _ => {
            eprintln!("note: S3 tests skipped (set TENANTFLOW_TEST_S3_ENDPOINT; see scripts/test-s3.sh)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_keep_their_blobs_in_s3_under_the_tenants_prefix() {
    let Some(endpoint) = endpoint() else { return };
    if !can_run() {
        return;
    }
    // The server reads S3 settings from the usual AWS_* variables (each test is its own process).
    for (k, v) in [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ] {
        std::env::set_var(k, v);
    }
    let http = reqwest::Client::new();
    let bucket = format!("tf-test-{}", std::process::id());
    let r = http.put(format!("{endpoint}/{bucket}")).send().await.expect("S3 server answers");
    assert!(r.status().is_success(), "create bucket: {}", r.status());

    let storage = tf_server::StorageSettings { blob_url: Some(format!("s3://{bucket}/run")) };
    let srv = TestServer::start_with_storage(Backend::Sqlite, storage).await;
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    srv.project("data-beta", "team-beta", &["development"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA_EXAMPLE).await.0, StatusCode::CREATED);
    let data = srv.data_dir("team-alpha").join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.csv"), "category,value,weight\na,1,10\na,3,20\nb,10,5\n").unwrap();

    launch(&srv, "ml-alpha", "development", json!({"launch_plan": "alpha-nightly", "name": "s3-1"})).await;
    let done = wait_done(&srv, "ml-alpha", "development", "s3-1", 60).await;
    assert_eq!(done["phase"], "SUCCEEDED", "{done}");
    let uri = done["outputs"]["result"].as_str().unwrap().to_string();
    let prefix = format!("s3://{bucket}/run/tenants/team-alpha/ml-alpha/development/executions/s3-1/process/1/");
    assert!(uri.starts_with(&prefix), "{uri}");
    // The file output is really in the bucket, with the task's content.
    let s3 = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket).build().unwrap();
    let key = uri.strip_prefix(&format!("s3://{bucket}/")).unwrap();
    let stored = s3.get(&ObjPath::parse(key).unwrap()).await.unwrap().bytes().await.unwrap();
    let result: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(result["a"]["value"], json!(2.0));
    // Logs are served from the bucket.
    let r = http
        .get(format!("{}/api/v1/executions/ml-alpha/development/s3-1/nodes/process/attempts/1/logs", srv.base))
        .bearer_auth(&srv.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Everything the execution stored is under the tenant's prefix: inputs, outputs and logs.
    let keys: Vec<String> =
        s3.list(Some(&ObjPath::from("run"))).map(|m| m.unwrap().location.to_string()).collect().await;
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k.starts_with("run/tenants/team-alpha/")), "{keys:?}");
    for name in ["load/1/inputs.json", "load/1/outputs.json", "load/1/log", "process/1/log"] {
        assert!(keys.iter().any(|k| k.ends_with(name)), "{name} missing from {keys:?}");
    }

    // An s3:// file input is downloaded for a task of the same tenant...
    let reader = "kind: Task\nname: size\ninterface: {inputs: {f: {type: file}}, outputs: {n: {type: integer}}}\ncontainer:\n  command: [python3, -c, \"import json, os; i = json.load(open(os.environ['TENANTFLOW_INPUTS'])); json.dump({'n': len(open(i['f']).read())}, open(os.environ['TENANTFLOW_OUTPUTS'], 'w'))\"]\n---\nkind: Workflow\nname: size-wf\ninterface: {inputs: {f: {type: file}}, outputs: {n: {type: integer}}}\nnodes: [{id: a, task: size, inputs: {f: '{{ inputs.f }}'}}]\noutputs: {n: '{{ a.outputs.n }}'}\n";
    assert_eq!(srv.register("ml-alpha", "development", "v2", reader).await.0, StatusCode::CREATED);
    assert_eq!(srv.register("data-beta", "development", "v1", reader).await.0, StatusCode::CREATED);
    launch(&srv, "ml-alpha", "development", json!({"workflow": "size-wf", "name": "read", "inputs": {"f": uri}})).await;
    let d = wait_done(&srv, "ml-alpha", "development", "read", 60).await;
    assert_eq!(d["phase"], "SUCCEEDED", "{d}");
    assert_eq!(d["outputs"]["n"].as_u64(), Some(stored.len() as u64), "the task read the stored file: {d}");
    // ...and refused for another tenant's task.
    launch(&srv, "data-beta", "development", json!({"workflow": "size-wf", "name": "steal", "inputs": {"f": uri}}))
        .await;
    let d = wait_done(&srv, "data-beta", "development", "steal", 60).await;
    assert_eq!(d["phase"], "FAILED", "{d}");
    assert!(d["error"].as_str().unwrap().contains("not in this tenant's storage"), "{d}");
    srv.stop().await;
}
