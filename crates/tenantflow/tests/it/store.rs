//! The store suite, run on SQLite and PostgreSQL alike: tenant scoping, registration
//! semantics, pagination, credentials, and reopening (migrations are idempotent).

use crate::harness::{backends, TestDb};
use std::collections::BTreeMap;
use tf_model::{compile::NoLookup, compile_bundle, parse_bundle, EntityKind};
use tf_store::{Domain, NewProject, PageRequest, Store};

fn project(id: &str) -> NewProject {
    NewProject {
        id: id.into(),
        name: id.into(),
        description: String::new(),
        labels: BTreeMap::new(),
        domains: vec![Domain { id: "development".into(), name: "development".into() }],
    }
}

fn bundle(yaml: &str, version: &str) -> tf_model::CompiledBundle {
    compile_bundle(&parse_bundle(yaml).unwrap(), version, &NoLookup).unwrap()
}

async fn each(f: impl AsyncFn(Store)) {
    for b in backends() {
        let db = TestDb::new(b).await;
        f(db.store().await).await;
        eprintln!("passed on {b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_scope_confines_every_read_and_write() {
    // Invariant: a TenantStore sees only its tenant's rows, even when asked for another's by name.
    each(async |store: Store| {
        let a = store.tenant("team-alpha");
        let b = store.tenant("team-beta");
        a.create_project(&project("ml-alpha"), true).await.unwrap();
        b.create_project(&project("data-beta"), true).await.unwrap();
        a.register("ml-alpha", "development", &bundle(crate::harness::ALPHA, "v1"), "alice").await.unwrap();

        assert!(b.get_project("ml-alpha").await.unwrap().is_none());
        assert!(b
            .get_entity("ml-alpha", "development", EntityKind::Workflow, "alpha-ml-workflow", None)
            .await
            .unwrap()
            .is_none());
        let listed =
            b.list_entities("ml-alpha", "development", EntityKind::Task, &PageRequest::default()).await.unwrap();
        assert!(listed.items.is_empty());
        let ids: Vec<String> =
            b.list_projects(&PageRequest::default()).await.unwrap().items.into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["data-beta"]);
        // Writes through the wrong tenant fail and change nothing.
        assert!(b
            .update_project(
                "ml-alpha",
                &tf_store::ProjectUpdate { description: Some("x".into()), ..Default::default() }
            )
            .await
            .is_err());
        assert!(b.register("ml-alpha", "development", &bundle(crate::harness::ALPHA, "v9"), "mallory").await.is_err());
        assert!(a
            .get_entity("ml-alpha", "development", EntityKind::Task, "load-data", Some("v9"))
            .await
            .unwrap()
            .is_none());
        assert_eq!(a.get_project("ml-alpha").await.unwrap().unwrap().description, "");
        // The directory knows the owner; only the owner's scope reads the project.
        assert_eq!(store.platform().project_owner("ml-alpha").await.unwrap().as_deref(), Some("team-alpha"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_idempotent_atomic_and_ordered() {
    each(async |store: Store| {
        let t = store.tenant("t");
        t.create_project(&project("p"), true).await.unwrap();
        let v1 = bundle(crate::harness::ALPHA, "v1");
        let out = t.register("p", "development", &v1, "u").await.unwrap();
        assert!(out.iter().all(|o| o.status == "created"));
        let out = t.register("p", "development", &v1, "u").await.unwrap();
        assert!(out.iter().all(|o| o.status == "unchanged"));
        // One changed entity among unchanged ones: conflict, and no new rows at all.
        let mut mixed = bundle(&crate::harness::ALPHA.replace("retries: 2", "retries: 1"), "v1");
        mixed.entities.push(bundle(crate::harness::BETA, "v1").entities.remove(0));
        let err = t.register("p", "development", &mixed, "u").await.unwrap_err();
        assert!(matches!(err, tf_store::Error::Conflict(_)), "{err}");
        assert!(t.get_entity("p", "development", EntityKind::Task, "count-region", None).await.unwrap().is_none());
        // Versions come back newest first; latest resolves to the newest.
        for v in ["v2", "v3"] {
            t.register("p", "development", &bundle(crate::harness::ALPHA, v), "u").await.unwrap();
        }
        let page = t
            .list_versions(
                "p",
                "development",
                EntityKind::Task,
                "load-data",
                &PageRequest { limit: Some(2), token: None },
            )
            .await
            .unwrap();
        let vs: Vec<&str> = page.items.iter().map(|e| e.version.as_str()).collect();
        assert_eq!(vs, ["v3", "v2"]);
        let next = t
            .list_versions(
                "p",
                "development",
                EntityKind::Task,
                "load-data",
                &PageRequest { limit: Some(2), token: page.next_token },
            )
            .await
            .unwrap();
        assert_eq!(next.items.iter().map(|e| e.version.as_str()).collect::<Vec<_>>(), ["v1"]);
        assert!(next.next_token.is_none());
        let latest = t.get_entity("p", "development", EntityKind::Task, "load-data", None).await.unwrap().unwrap();
        assert_eq!(latest.version, "v3");
        assert_eq!(latest.created_by, "u");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_hashed_expire_and_revoke() {
    each(async |store: Store| {
        let p = store.platform();
        let t = p.create_token("service_account", "robot", Some("t"), "ci", None).await.unwrap();
        assert!(t.secret.starts_with("tf_"));
        let got = p.authenticate(&t.secret).await.unwrap().unwrap();
        assert_eq!((got.subject.as_str(), got.tenant.as_deref()), ("robot", Some("t")));
        assert!(p.authenticate("tf_nope").await.unwrap().is_none());
        let old = p.create_token("service_account", "old", None, "", Some(tf_store::now_ms() - 1)).await.unwrap();
        assert!(p.authenticate(&old.secret).await.unwrap().is_none());
        assert!(p.revoke_token(&t.info.id).await.unwrap());
        assert!(p.authenticate(&t.secret).await.unwrap().is_none());
        assert_eq!(p.count_tokens("service_account").await.unwrap(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_skips_applied_migrations() {
    for b in backends() {
        let db = TestDb::new(b).await;
        let s = db.store().await;
        s.tenant("t").create_project(&project("p"), true).await.unwrap();
        s.close().await;
        let s = db.store().await;
        assert!(s.tenant("t").get_project("p").await.unwrap().is_some());
        s.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_record_attempts_once_and_stay_in_their_tenant() {
    use serde_json::json;
    use tf_store::{AttemptEnd, ExecutionFilter, ExecutionKey, NewExecution, NodeUpdate};
    each(async |store: Store| {
        let t = store.tenant("team-alpha");
        t.create_project(&project("ml-alpha"), true).await.unwrap();
        let key = |n: &str| ExecutionKey { project: "ml-alpha".into(), domain: "development".into(), name: n.into() };
        let new = |n: &str| NewExecution {
            key: key(n),
            launch_plan: None,
            workflow_name: "wf".into(),
            workflow_version: "v1".into(),
            inputs: json!({"p": "x"}),
            nodes: vec!["load".into(), "proc".into()],
            created_by: "alice".into(),
            relaunch_of: None,
            max_parallelism: None,
            config: Some(json!({"attributes": {"max_parallelism": 3}, "sources": {}})),
        };
        let e = t.create_execution(&new("e1")).await.unwrap();
        assert_eq!(e.phase, "QUEUED");
        assert!(matches!(t.create_execution(&new("e1")).await, Err(tf_store::Error::Conflict(_))));
        let nodes = t.node_executions(&key("e1")).await.unwrap();
        assert_eq!(
            nodes.iter().map(|n| (n.node.as_str(), n.phase.as_str())).collect::<Vec<_>>(),
            [("load", "WAITING"), ("proc", "WAITING")]
        );

        assert!(t.set_execution_phase(&key("e1"), "RUNNING", None, None, false).await.unwrap());
        t.start_attempt(&key("e1"), "load", 1, "/logs/1").await.unwrap();
        assert!(matches!(t.start_attempt(&key("e1"), "load", 1, "/logs/1").await, Err(tf_store::Error::Conflict(_))));
        let end = AttemptEnd {
            phase: "SUCCEEDED".into(),
            exit_code: Some(0),
            cpu_ms: Some(12),
            stored_bytes: Some(100),
            ..Default::default()
        };
        let upd = NodeUpdate {
            phase: "SUCCEEDED".into(),
            outputs: Some(json!({"rows": 3})),
            finished: true,
            ..Default::default()
        };
        assert!(t.finish_attempt(&key("e1"), "load", 1, &end, &upd).await.unwrap());
        assert!(
            !t.finish_attempt(&key("e1"), "load", 1, &end, &upd).await.unwrap(),
            "a finished attempt is never recorded twice"
        );
        assert_eq!(t.stored_bytes().await.unwrap(), 100, "its stored bytes count once");
        let a = t.attempts(&key("e1"), "load").await.unwrap();
        assert_eq!((a.len(), a[0].phase.as_str(), a[0].cpu_ms), (1, "SUCCEEDED", Some(12)));
        let n = &t.node_executions(&key("e1")).await.unwrap()[0];
        assert_eq!((n.phase.as_str(), n.attempts, n.outputs.clone()), ("SUCCEEDED", 1, Some(json!({"rows": 3}))));

        // Terminal phases are final; abort requests after the end are refused.
        t.create_execution(&new("e2")).await.unwrap();
        assert!(t.request_abort(&key("e2"), "bob").await.unwrap());
        assert_eq!(t.get_execution(&key("e2")).await.unwrap().unwrap().abort_requested.as_deref(), Some("bob"));
        assert!(t.set_execution_phase(&key("e1"), "SUCCEEDED", Some(&json!({"r": 1})), None, true).await.unwrap());
        assert!(!t.set_execution_phase(&key("e1"), "FAILED", None, Some("late"), true).await.unwrap());
        assert!(!t.request_abort(&key("e1"), "bob").await.unwrap());
        let done = t.get_execution(&key("e1")).await.unwrap().unwrap();
        assert_eq!((done.phase.as_str(), done.outputs), ("SUCCEEDED", Some(json!({"r": 1}))));
        assert!(done.finished_at.is_some());

        // Unfinished executions, across tenants, for the engine to resume.
        let open: Vec<String> =
            store.platform().unfinished_executions().await.unwrap().into_iter().map(|(_, k)| k.name).collect();
        assert_eq!(open, ["e2"]);
        // Listing: newest first, by phase, paginated.
        for i in 3..8 {
            t.create_execution(&new(&format!("e{i}"))).await.unwrap();
        }
        let all = t
            .list_executions(
                "ml-alpha",
                "development",
                &Default::default(),
                &PageRequest { limit: Some(4), token: None },
            )
            .await
            .unwrap();
        assert_eq!(all.items.len(), 4);
        let rest = t
            .list_executions(
                "ml-alpha",
                "development",
                &Default::default(),
                &PageRequest { limit: Some(4), token: all.next_token },
            )
            .await
            .unwrap();
        assert_eq!(all.items.len() + rest.items.len(), 7);
        let done = t
            .list_executions(
                "ml-alpha",
                "development",
                &ExecutionFilter { phase: Some("SUCCEEDED".into()), ..Default::default() },
                &PageRequest::default(),
            )
            .await
            .unwrap();
        assert_eq!(done.items.len(), 1);
        // Another tenant sees none of it.
        let b = store.tenant("team-beta");
        assert!(b.get_execution(&key("e1")).await.unwrap().is_none());
        assert!(b.node_executions(&key("e1")).await.unwrap().is_empty());
        assert!(b
            .list_executions("ml-alpha", "development", &Default::default(), &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty());
        assert!(!b.request_abort(&key("e2"), "mallory").await.unwrap());
        assert!(b.create_execution(&new("e9")).await.is_err(), "no execution in a project of another tenant");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_declarations_move_generations_only_on_change() {
    each(async |store: Store| {
        let p = store.platform();
        let spec = serde_json::json!({"name": "Customer Churn Analysis", "members": []});
        let (w, changed) = p.declare_workspace("ws-churn", &spec).await.unwrap();
        assert!(changed);
        assert_eq!((w.generation, w.observed_generation, w.state.as_str()), (1, 0, "active"));
        let (w, changed) = p.declare_workspace("ws-churn", &spec).await.unwrap();
        assert!(!changed, "the same declaration again writes nothing");
        assert_eq!(w.generation, 1);
        assert_eq!(p.pending_workspaces(10).await.unwrap().len(), 1);

        // A change made while generation 1 converged is not marked done by it.
        let spec2 = serde_json::json!({"name": "Churn v2", "members": []});
        assert!(p.declare_workspace("ws-churn", &spec2).await.unwrap().1);
        assert!(!p.workspace_converged("ws-churn", 1).await.unwrap());
        assert!(p.workspace_failed("ws-churn", 2, "store unavailable", None).await.unwrap());
        assert!(!p.workspace_failed("ws-churn", 2, "store unavailable", None).await.unwrap(), "a repeat is not news");
        assert_eq!(
            p.get_workspace("ws-churn").await.unwrap().unwrap().last_error.as_deref(),
            Some("store unavailable")
        );
        assert!(p.workspace_converged("ws-churn", 2).await.unwrap());
        let w = p.get_workspace("ws-churn").await.unwrap().unwrap();
        assert_eq!((w.generation, w.observed_generation, w.last_error), (2, 2, None));
        assert!(p.pending_workspaces(10).await.unwrap().is_empty(), "nothing pending once converged");
        assert!(!p.workspace_converged("ws-churn", 2).await.unwrap(), "marked once");
        let page = p.list_workspaces(&PageRequest::default()).await.unwrap();
        assert_eq!(page.items.len(), 1);
    })
    .await;
}
