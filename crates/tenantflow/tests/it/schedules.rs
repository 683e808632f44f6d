//! Launch-plan schedules: a one-second schedule fires exactly once per tick with two servers
//! running the schedule loop over one database, and across a `kill -9` of the server in the
//! middle — ticks missed while it was down collapse into one catch-up run, none runs twice,
//! and nothing fires after deactivation. On SQLite and on PostgreSQL.

use crate::crash::{ready, serve, start};
use crate::engine::{can_run, wait_done};
use crate::harness::{backends, TestDb, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BUNDLE: &str = "kind: Task\nname: noop\ncontainer: {command: [/bin/true]}\n---\nkind: Workflow\nname: noop\nnodes: [{id: a, task: noop}]\n---\nkind: LaunchPlan\nname: every-second\nworkflow: noop\nschedule: {rate: 1s}\n---\nkind: LaunchPlan\nname: manual\nworkflow: noop\n";

/// The ticks (`config.scheduled_at`) of every execution, sorted, with their names.
fn ticks(list: &Value) -> Vec<(i64, String)> {
    let mut t: Vec<(i64, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["config"]["scheduled_at"].as_i64()?, e["name"].as_str()?.to_string())))
        .collect();
    t.sort();
    t
}

/// Every tick lies on the schedule's grid and appears once.
fn check_grid(ticks: &[(i64, String)], anchor: i64) {
    for (t, name) in ticks {
        assert_eq!((t - anchor) % 1000, 0, "tick {t} of {name} is off the 1 s grid from {anchor}");
    }
    let mut distinct: Vec<i64> = ticks.iter().map(|(t, _)| *t).collect();
    distinct.dedup();
    assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {ticks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_tick_with_two_servers() {
    if !can_run() {
        return;
    }
    for backend in backends() {
        let srv = TestServer::start(backend).await;
        let (replica, _) = srv.replica().await;
        srv.project("sched", "team-s", &["development"]).await;
        assert_eq!(srv.register("sched", "development", "v1", BUNDLE).await.0, StatusCode::CREATED);

        // Activation: bad state and unknown versions are refused; a plan without a schedule
        // can be active without ticking.
        let path = "/api/v1/launch_plans/sched/development/every-second/v1";
        let (s, e) = srv.put(path, &json!({"state": "ON"})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(e.to_string().contains("state"), "{e}");
        let (s, _) =
            srv.put("/api/v1/launch_plans/sched/development/every-second/v9", &json!({"state": "ACTIVE"})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, m) = srv.put("/api/v1/launch_plans/sched/development/manual/v1", &json!({"state": "ACTIVE"})).await;
        assert_eq!((s, &m["next_fire_at"]), (StatusCode::OK, &Value::Null), "{m}");

        let (s, st) = srv.put(path, &json!({"state": "ACTIVE"})).await;
        assert_eq!(s, StatusCode::OK, "{st}");
        let anchor = st["anchor_at"].as_i64().expect("anchored");
        assert_eq!(st["next_fire_at"].as_i64(), Some(anchor + 1000), "{st}");
        // Activating again changes nothing: the schedule keeps its ticks.
        let (_, again) = srv.put(path, &json!({"state": "ACTIVE"})).await;
        assert_eq!(again["anchor_at"], st["anchor_at"]);

        let list_path = "/api/v1/executions/sched/development?limit=1000";
        let deadline = Instant::now() + Duration::from_secs(30);
        while ticks(&srv.get(list_path).await.1).len() < 5 {
            assert!(Instant::now() < deadline, "the schedule did not fire 5 times in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, active) = srv.get("/api/v1/active_launch_plans/sched/development").await;
        let names: Vec<&str> = active.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["every-second", "manual"], "{active}");
        let (s, off) = srv.put(path, &json!({"state": "INACTIVE"})).await;
        assert_eq!(
            (s, &off["active_version"], &off["next_fire_at"]),
            (StatusCode::OK, &Value::Null, &Value::Null),
            "{off}"
        );
        let fired = off["fired"].as_u64().unwrap() as usize;
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let all = ticks(&srv.get(list_path).await.1);
        check_grid(&all, anchor);
        assert_eq!(all.len(), fired, "every claimed tick has its execution, and no more: {all:?}");
        assert!(all.windows(2).all(|w| w[1].0 - w[0].0 == 1000), "a tick was skipped while up: {all:?}");
        assert_eq!(all[0].0, anchor + 1000, "the first tick is one period after activation");
        for (_, name) in &all {
            assert_eq!(wait_done(&srv, "sched", "development", name, 30).await["phase"], "SUCCEEDED");
        }
        replica.shutdown().await.expect("replica stops");
        eprintln!("two-server schedule passed on {backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_survives_kill_9_without_double_fire() {
    if !can_run() {
        return;
    }
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let http = reqwest::Client::new();
        let (mut child, port, base, token) = serve(&db, &http).await;
        let call = |method: &str, path: &str, body: Option<(&str, String)>| {
            let mut req = http.request(method.parse().unwrap(), format!("{base}{path}")).bearer_auth(&token);
            if let Some((ct, b)) = body {
                req = req.header("content-type", ct).body(b);
            }
            async move {
                let r = req.send().await.unwrap();
                let status = r.status();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let js = |v: Value| Some(("application/json", v.to_string()));
        let (s, _) = call("POST", "/api/v1/projects", js(json!({"id": "sched", "domains": ["development"]}))).await;
        assert!(s.is_success());
        let (s, _) = call(
            "POST",
            "/api/v1/register/sched/development?version=v1",
            Some(("application/yaml", BUNDLE.to_string())),
        )
        .await;
        assert!(s.is_success());
        let path = "/api/v1/launch_plans/sched/development/every-second/v1";
        let (_, st) = call("PUT", path, js(json!({"state": "ACTIVE"}))).await;
        let anchor = st["anchor_at"].as_i64().expect("anchored");
        let list_path = "/api/v1/executions/sched/development?limit=1000";

        let count = |want: usize| {
            let call = &call;
            async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let t = ticks(&call("GET", list_path, None).await.1);
                    if t.len() >= want {
                        return t;
                    }
                    assert!(Instant::now() < deadline, "fewer than {want} ticks fired in 30 s: {t:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let before = count(3).await;
        child.kill().unwrap(); // SIGKILL, in the middle of the schedule
        child.wait().unwrap();
        let down_at = before.last().unwrap().0;
        tokio::time::sleep(Duration::from_millis(2600)).await;
        let mut child = start(&db, port);
        ready(&http, &base).await;
        let after = count(before.len() + 4).await;
        let (_, off) = call("PUT", path, js(json!({"state": "INACTIVE"}))).await;
        assert_eq!(off["active_version"], Value::Null, "{off}");
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let all = ticks(&call("GET", list_path, None).await.1);
        check_grid(&all, anchor);
        let gaps: Vec<i64> = all.windows(2).map(|w| w[1].0 - w[0].0).filter(|g| *g != 1000).collect();
        // The only gap is the downtime, whose ticks collapsed into one catch-up run.
        assert_eq!(gaps.len(), 1, "one gap, at the restart: {all:?}");
        assert!(gaps[0] >= 2000, "ticks missed while down were not replayed: {all:?}");
        assert!(all.iter().any(|(t, _)| *t > down_at), "fired again after the restart: {all:?}");
        assert!(all.len() >= after.len());
        for (_, name) in &all {
            let (_, e) = call("GET", &format!("/api/v1/executions/sched/development/{name}?wait=30"), None).await;
            assert_eq!(e["phase"], "SUCCEEDED", "{backend:?} {name}: {e}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("schedule across kill -9 passed on {backend:?}");
    }
}
