//! `/metrics` in the Prometheus text format (0.0.4): HTTP requests by route, method and status
//! (counter and latency histogram), the engine's phase transitions, attempts and admission
//! waits, executor slots and queue depth, per-tenant quota use, workspace reconciliation, and
//! store and executor health.
//!
//! Invariant: the number of series is bounded whatever the number of tenants — routes are
//! templates (`/api/v1/projects/{project}`), phases are a fixed set, and tenant-labelled
//! series are emitted only for the [`TOP_TENANTS`] tenants using the most now; the rest are
//! summed into unlabelled totals.

use crate::AppState;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Tenants with their own series: the busiest ones now.
pub const TOP_TENANTS: usize = 20;
/// Upper bounds (seconds) of the request latency histogram.
const LATENCY_BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    /// Per bucket (not cumulative), then overflow.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
}

/// Request counts and latencies: by route template, then (method, status). A request already
/// seen costs a lookup by `&str` and no allocation.
#[derive(Default)]
pub struct HttpMetrics {
    series: Mutex<HashMap<String, Vec<MethodStatus>>>,
}

/// One route's series for a method and status.
type MethodStatus = (&'static str, u16, Series);

/// Standard methods by name; anything else is `OTHER` (bounded labels).
fn method_label(m: &str) -> &'static str {
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"].into_iter().find(|x| *x == m).unwrap_or("OTHER")
}

impl HttpMetrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let method = method_label(method);
        let mut m = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let by = match m.get_mut(route) {
            Some(v) => v,
            None => m.entry(route.to_string()).or_default(),
        };
        let i = match by.iter().position(|(me, st, _)| *me == method && *st == status) {
            Some(i) => i,
            None => {
                by.push((method, status, Series::default()));
                by.len() - 1
            }
        };
        let s = &mut by[i].2;
        s.count += 1;
        s.sum += secs;
        let b = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        s.buckets[b] += 1;
    }

    /// Every series as `((method, route, status), series)`.
    fn snapshot(&self) -> HashMap<(String, String, u16), Series> {
        let m = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = HashMap::new();
        for (route, v) in m.iter() {
            for (method, st, s) in v {
                out.insert((method.to_string(), route.clone(), *st), s.clone());
            }
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, bounds: &[f64], counts: &[u64], sum: f64) {
    let mut cumulative = 0;
    let sep = if labels.is_empty() { "" } else { "," };
    for (b, c) in bounds.iter().zip(counts) {
        cumulative += c;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
    }
    cumulative += counts.last().copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}

/// Renders every metric.
pub async fn render(s: &AppState) -> String {
    let mut out = String::with_capacity(64 * 1024);
    {
        let series = s.http_metrics.snapshot();
        let mut keys: Vec<_> = series.keys().cloned().collect();
        keys.sort();
        header(
            &mut out,
            "tenantflow_http_requests_total",
            "counter",
            "HTTP requests by route template, method and status.",
        );
        for k in &keys {
            let (m, r, st) = k;
            let _ = writeln!(
                out,
                "tenantflow_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{st}\"}} {}",
                esc(r),
                series[k].count
            );
        }
        // Latency by route, method and status class (2xx, 4xx, 5xx), to bound the histogram series.
        let mut by_route: HashMap<(String, String, String), Series> = HashMap::new();
        for ((m, r, st), v) in &series {
            let class = format!("{}xx", st / 100);
            let e = by_route.entry((m.clone(), r.clone(), class)).or_default();
            e.count += v.count;
            e.sum += v.sum;
            for (a, b) in e.buckets.iter_mut().zip(v.buckets) {
                *a += b;
            }
        }
        let mut routes: Vec<_> = by_route.into_iter().collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        header(
            &mut out,
            "tenantflow_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by route template, method and status class.",
        );
        for ((m, r, class), v) in routes {
            let labels = format!("method=\"{m}\",route=\"{}\",status=\"{class}\"", esc(&r));
            histogram(
                &mut out,
                "tenantflow_http_request_duration_seconds",
                &labels,
                &LATENCY_BUCKETS,
                &v.buckets,
                v.sum,
            );
        }
    }

    let c = s.engine.counters();
    header(
        &mut out,
        "tenantflow_execution_transitions_total",
        "counter",
        "Execution phase transitions recorded, by phase.",
    );
    for (phase, n) in &c.executions {
        let _ = writeln!(out, "tenantflow_execution_transitions_total{{phase=\"{}\"}} {n}", esc(phase));
    }
    header(&mut out, "tenantflow_node_transitions_total", "counter", "Node phase transitions recorded, by phase.");
    for (phase, n) in &c.nodes {
        let _ = writeln!(out, "tenantflow_node_transitions_total{{phase=\"{}\"}} {n}", esc(phase));
    }
    header(&mut out, "tenantflow_attempts_started_total", "counter", "Task attempts started.");
    let _ = writeln!(out, "tenantflow_attempts_started_total {}", c.attempts_started);
    header(&mut out, "tenantflow_attempts_finished_total", "counter", "Task attempts finished.");
    let _ = writeln!(out, "tenantflow_attempts_finished_total {}", c.attempts_finished);
    header(
        &mut out,
        "tenantflow_admission_wait_seconds",
        "histogram",
        "How long attempts waited for admission (quota and executor slots).",
    );
    histogram(
        &mut out,
        "tenantflow_admission_wait_seconds",
        "",
        &tf_engine::metrics::WAIT_BUCKETS,
        &c.admission_wait.counts,
        c.admission_wait.sum,
    );

    let load = s.engine.load().await;
    let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
        header(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    };
    gauge(&mut out, "tenantflow_executor_slots", "Attempts the executor can run at once.", load.slots as f64);
    gauge(&mut out, "tenantflow_executor_slots_used", "Attempts running now.", load.slots_used as f64);
    let waiting: u64 = load.tenants.iter().map(|(_, u, _)| u.waiting).sum();
    gauge(&mut out, "tenantflow_queue_depth", "Attempts waiting for admission.", waiting as f64);
    gauge(
        &mut out,
        "tenantflow_executions_in_flight",
        "Executions the engine is driving (running or queued).",
        load.executions as f64,
    );
    gauge(&mut out, "tenantflow_tenants_busy", "Tenants with attempts running or waiting.", load.tenants.len() as f64);

    // Per-tenant series only for the busiest tenants.
    let mut busiest = load.tenants.clone();
    busiest.sort_by(|a, b| (b.1.tasks + b.1.waiting, &a.0).cmp(&(a.1.tasks + a.1.waiting, &b.0)));
    busiest.truncate(TOP_TENANTS);
    type Reading = fn(&tf_engine::TenantUsage) -> f64;
    let per_tenant: [(&str, &str, Reading); 4] = [
        ("tenantflow_tenant_running_tasks", "Attempts running, for the busiest tenants.", |u| u.tasks as f64),
        ("tenantflow_tenant_waiting_tasks", "Attempts waiting for admission, for the busiest tenants.", |u| {
            u.waiting as f64
        }),
        ("tenantflow_tenant_cpu_cores_in_use", "CPU admitted (cores), for the busiest tenants.", |u| {
            u.cpu_millis as f64 / 1000.0
        }),
        ("tenantflow_tenant_memory_bytes_in_use", "Memory admitted, for the busiest tenants.", |u| {
            u.memory_bytes as f64
        }),
    ];
    for (name, help, f) in per_tenant {
        header(&mut out, name, "gauge", help);
        for (t, u, _) in &busiest {
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {}", esc(t), f(u));
        }
    }
    header(
        &mut out,
        "tenantflow_tenant_quota_used_ratio",
        "gauge",
        "Share of the quota in use (cpu, memory, running_tasks), for the busiest tenants with a quota.",
    );
    for (t, u, q) in &busiest {
        for (res, used, limit) in [
            ("cpu", u.cpu_millis, q.cpu_millis),
            ("memory", u.memory_bytes, q.memory_bytes),
            ("running_tasks", u.tasks, q.running_tasks),
        ] {
            if let Some(l) = limit.filter(|l| *l > 0) {
                let _ = writeln!(
                    out,
                    "tenantflow_tenant_quota_used_ratio{{tenant=\"{}\",resource=\"{res}\"}} {}",
                    esc(t),
                    used as f64 / l as f64
                );
            }
        }
    }

    if let Some(p) = s.workspaces.last_pass.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        gauge(
            &mut out,
            "tenantflow_workspace_reconcile_seconds",
            "Duration of the last full reconciliation pass.",
            p.wall_ms / 1000.0,
        );
        gauge(
            &mut out,
            "tenantflow_workspaces",
            "Workspaces seen by the last full reconciliation pass.",
            p.workspaces as f64,
        );
        gauge(
            &mut out,
            "tenantflow_workspace_reconcile_failed",
            "Workspaces whose convergence failed in the last full pass.",
            p.failed as f64,
        );
    }

    let t = Instant::now();
    let store_up = s.store.ping().await.is_ok();
    gauge(
        &mut out,
        "tenantflow_store_up",
        "Whether the store answers (1) or not (0).",
        if store_up { 1.0 } else { 0.0 },
    );
    gauge(
        &mut out,
        "tenantflow_store_ping_seconds",
        "Round trip of a trivial query to the store.",
        t.elapsed().as_secs_f64(),
    );
    let ready = s.engine.readiness().refused.is_none();
    gauge(
        &mut out,
        "tenantflow_executor_ready",
        "Whether tasks can run on this host (1) or are refused (0).",
        if ready { 1.0 } else { 0.0 },
    );
    gauge(&mut out, "tenantflow_projects", "Projects known to this server.", s.authz.read().project_count() as f64);
    out
}

/// `GET /metrics`.
pub async fn handler(axum::extract::State(s): axum::extract::State<AppState>) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&s).await)
}
