//! Malformed bundles: every one gets a 4xx that names the document and field, none writes
//! anything, none produces a 5xx.

use crate::harness::ALPHA;
use crate::on_every_backend;
use reqwest::StatusCode;

const TASK: &str = "kind: Task\nname: load\ninterface:\n  inputs: {path: {type: string}}\n  outputs: {table: {type: file}, rows: {type: integer}}\ncontainer: {command: [python3, load.py]}\n";
const TASK2: &str = "kind: Task\nname: proc\ninterface:\n  inputs: {table: {type: file}}\n  outputs: {result: {type: file}}\ncontainer: {command: [python3, proc.py]}\n";

fn wf(nodes: &str, outputs: &str) -> String {
    format!("{TASK}---\n{TASK2}---\nkind: Workflow\nname: wf\ninterface:\n  inputs: {{p: {{type: string}}}}\n  outputs: {{result: {{type: file}}}}\nnodes:\n{nodes}\noutputs: {outputs}\n")
}

const GOOD_NODES: &str = "  - {id: load, task: load, inputs: {path: \"{{ inputs.p }}\"}}\n  - {id: proc, task: proc, inputs: {table: \"{{ load.outputs.table }}\"}}";
const GOOD_OUT: &str = "{result: \"{{ proc.outputs.result }}\"}";

struct Case {
    name: &'static str,
    body: Vec<u8>,
    content_type: &'static str,
    version: &'static str,
    status: StatusCode,
    /// The first violation's document and field, when the error is a validation error.
    at: Option<(&'static str, &'static str)>,
    says: &'static str,
}

fn case(
    name: &'static str,
    body: impl Into<String>,
    at: Option<(&'static str, &'static str)>,
    says: &'static str,
) -> Case {
    Case {
        name,
        body: body.into().into_bytes(),
        content_type: "application/yaml",
        version: "v1",
        status: StatusCode::BAD_REQUEST,
        at,
        says,
    }
}

fn cases() -> Vec<Case> {
    let lp =
        |extra: &str| format!("{}---\nkind: LaunchPlan\nname: lp\nworkflow: wf\n{extra}", wf(GOOD_NODES, GOOD_OUT));
    let mut v = vec![
        case("bad yaml", "kind: Task\nname: [unclosed\n", Some(("document[0]", "")), "not valid YAML"),
        case("empty bundle", "", None, "no documents"),
        case("not a mapping", "- 1\n- 2\n", Some(("document[0]", "")), "expected a mapping"),
        case("missing kind", "name: x\n", Some(("document[0]", "kind")), "missing"),
        case("unknown kind", "kind: Pipeline\nname: x\n", Some(("document[0]", "kind")), "unknown kind `Pipeline`"),
        case("typo field", TASK.replace("container:", "retires: 2\ncontainer:"), Some(("Task/load", "retires")), "unknown field `retires`"),
        case("wrong field type", TASK.replace("[python3, load.py]", "python3 load.py"), Some(("Task/load", "container.command")), "expected a sequence"),
        case("unknown type", TASK.replace("{type: string}", "{type: strin}"), Some(("Task/load", "interface.inputs.path.type")), "unknown type `strin`"),
        case("list without items", TASK.replace("{type: string}", "{type: list}"), Some(("Task/load", "interface.inputs.path.type")), "needs an item type"),
        case("default of wrong type", TASK.replace("{type: string}", "{type: integer, default: many}"), Some(("Task/load", "interface.inputs.path.default")), "expected an integer"),
        case("bad name", TASK.replace("name: load", "name: Load_Data"), Some(("Task/Load_Data", "name")), "lowercase"),
        case("empty command", TASK.replace("[python3, load.py]", "[]"), Some(("Task/load", "container.command")), "at least the program"),
        case("bad cpu", format!("{TASK}resources: {{requests: {{cpu: fast}}}}\n"), Some(("Task/load", "resources.requests.cpu")), "cpu quantity"),
        case("request above limit", format!("{TASK}resources: {{requests: {{memory: 2Gi}}, limits: {{memory: 1Gi}}}}\n"), Some(("Task/load", "resources.requests.memory")), "exceeds the limit"),
        case("bad timeout", format!("{TASK}timeout: soon\n"), Some(("Task/load", "timeout")), "duration"),
        case("too many retries", format!("{TASK}retries: 11\n"), Some(("Task/load", "retries")), "at most 10"),
        case("negative retries", format!("{TASK}retries: -1\n"), Some(("Task/load", "retries")), "invalid value"),
        case("cache without version", format!("{TASK}cache: {{enabled: true}}\n"), Some(("Task/load", "cache.version")), "required"),
        case("unknown task", wf(&GOOD_NODES.replace("task: proc", "task: prok"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].task")), "unknown Task `prok`"),
        case("dangling binding: node", wf(&GOOD_NODES.replace("{{ load.outputs.table }}", "{{ lod.outputs.table }}"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].inputs.table")), "unknown node `lod`"),
        case("dangling binding: output", wf(&GOOD_NODES.replace("{{ load.outputs.table }}", "{{ load.outputs.tabel }}"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].inputs.table")), "has no output `tabel`"),
        case("dangling binding: input", wf(&GOOD_NODES.replace("{{ inputs.p }}", "{{ inputs.q }}"), GOOD_OUT), Some(("Workflow/wf", "nodes[0].inputs.path")), "no input `q`"),
        case("type mismatch", wf(&GOOD_NODES.replace("{{ load.outputs.table }}", "{{ load.outputs.rows }}"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].inputs.table")), "type mismatch"),
        case("literal type mismatch", wf(&GOOD_NODES.replace("\"{{ inputs.p }}\"", "42"), GOOD_OUT), Some(("Workflow/wf", "nodes[0].inputs.path")), "expected a string"),
        case("template into a file", wf(&GOOD_NODES.replace("\"{{ load.outputs.table }}\"", "\"x/{{ inputs.p }}\""), GOOD_OUT), Some(("Workflow/wf", "nodes[1].inputs.table")), "placeholders"),
        case("bad binding syntax", wf(&GOOD_NODES.replace("{{ load.outputs.table }}", "{{ load.table }}"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].inputs.table")), "cannot read"),
        case("unclosed binding", wf(&GOOD_NODES.replace("{{ load.outputs.table }}", "{{ load.outputs.table"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].inputs.table")), "unclosed"),
        case("missing required input", wf(&GOOD_NODES.replace("inputs: {path: \"{{ inputs.p }}\"}", "inputs: {}"), GOOD_OUT), Some(("Workflow/wf", "nodes[0].inputs")), "required input `path`"),
        case("unknown node input", wf(&GOOD_NODES.replace("inputs: {path:", "inputs: {pth: x, path:"), GOOD_OUT), Some(("Workflow/wf", "nodes[0].inputs.pth")), "has no input `pth`"),
        case("duplicate node id", wf(&GOOD_NODES.replace("{id: proc", "{id: load"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].id")), "duplicate node id"),
        case("cycle", wf("  - {id: a, task: proc, inputs: {table: \"{{ b.outputs.result }}\"}}\n  - {id: b, task: proc, inputs: {table: \"{{ a.outputs.result }}\"}}", "{result: \"{{ b.outputs.result }}\"}"), Some(("Workflow/wf", "nodes")), "cycle: "),
        case("self reference", wf(&format!("{GOOD_NODES}\n  - {{id: c, task: proc, inputs: {{table: \"{{{{ c.outputs.result }}}}\"}}}}"), GOOD_OUT), Some(("Workflow/wf", "nodes[2]")), "depends on itself"),
        case("unknown after", wf(&GOOD_NODES.replace("{id: proc,", "{id: proc, after: [ghost],"), GOOD_OUT), Some(("Workflow/wf", "nodes[1].after[0]")), "unknown node `ghost`"),
        case("unbound workflow output", wf(GOOD_NODES, "{}"), Some(("Workflow/wf", "outputs")), "not bound"),
        case("unknown workflow output", wf(GOOD_NODES, "{result: \"{{ proc.outputs.result }}\", extra: \"{{ load.outputs.rows }}\"}"), Some(("Workflow/wf", "outputs.extra")), "no output `extra`"),
        case("workflow without nodes", format!("{TASK}---\nkind: Workflow\nname: wf\nnodes: []\n"), Some(("Workflow/wf", "nodes")), "at least one node"),
        case("duplicate document", format!("{TASK}---\n{TASK}"), Some(("Task/load", "name")), "duplicate"),
        case("launch plan: unknown workflow", format!("{TASK}---\nkind: LaunchPlan\nname: lp\nworkflow: nope\n"), Some(("LaunchPlan/lp", "workflow")), "unknown Workflow `nope`"),
        case("launch plan: wrong input type", lp("default_inputs: {p: 3}\n"), Some(("LaunchPlan/lp", "default_inputs.p")), "expected a string"),
        case("launch plan: unknown input", lp("fixed_inputs: {q: x}\n"), Some(("LaunchPlan/lp", "fixed_inputs.q")), "no input `q`"),
        case("launch plan: bad cron", lp("default_inputs: {p: x}\nschedule: {cron: \"every day\"}\n"), Some(("LaunchPlan/lp", "schedule.cron")), "cron"),
        case("launch plan: schedule misses input", lp("schedule: {rate: 10m}\n"), Some(("LaunchPlan/lp", "schedule")), "required input `p`"),
        case("alias bomb", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n", None, ""),
        case("deep nesting", format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)), None, "not valid YAML"),
        case("envelope: documents not a list", "{\"version\": \"v1\", \"documents\": 3}", Some(("", "documents")), "expected a list"),
    ];
    // Atomicity: a good task followed by a bad workflow writes nothing.
    v.push(case(
        "good then bad",
        format!("{TASK}---\nkind: Workflow\nname: wf\nnodes: [{{id: a, task: missing}}]\n"),
        Some(("Workflow/wf", "nodes[0].task")),
        "unknown Task",
    ));
    v.push(Case {
        content_type: "text/html",
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ..case("wrong content type", TASK, None, "Content-Type")
    });
    v.push(Case { body: vec![0xff, 0xfe, 0x00, 0x41], ..case("not utf-8", "", None, "UTF-8") });
    v.push(Case { version: "", ..case("missing version", TASK, None, "version: required") });
    v.push(Case { version: "v%201", ..case("bad version", TASK, Some(("", "version")), "contains ` `") });
    v.push(Case {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        ..case("oversize body", format!("{TASK}description: \"{}\"\n", "x".repeat(2 << 20)), None, "larger")
    });
    v
}

on_every_backend!(malformed_bundles_get_a_clear_4xx_and_write_nothing, |srv| {
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    let all = cases();
    assert!(all.len() >= 20);
    for c in &all {
        let path = if c.version.is_empty() {
            "/api/v1/register/ml-alpha/development".to_string()
        } else {
            format!("/api/v1/register/ml-alpha/development?version={}", c.version)
        };
        let (s, b) = srv.call("POST", &path, Some(&srv.admin), Some((c.content_type, c.body.clone()))).await;
        assert_eq!(s, c.status, "{}: {b}", c.name);
        let msg = b["message"].as_str().unwrap_or_default();
        assert!(msg.contains(c.says), "{}: message `{msg}` should say `{}`", c.name, c.says);
        if let Some((doc, field)) = c.at {
            let v = &b["details"]["violations"][0];
            assert_eq!(v["document"], doc, "{}: {b}", c.name);
            assert_eq!(v["field"], field, "{}: {b}", c.name);
        }
    }
    for kind in ["tasks", "workflows", "launch_plans"] {
        let (_, l) = srv.get(&format!("/api/v1/{kind}/ml-alpha/development")).await;
        assert_eq!(l["items"], serde_json::json!([]), "{kind} written by a rejected bundle");
    }
    // The valid bundle still registers afterwards.
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, StatusCode::CREATED);
    srv.stop().await;
});

on_every_backend!(malformed_requests_elsewhere_are_4xx_naming_the_field, |srv| {
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        ("POST", "/api/v1/projects", "{\"id\": 5}", "id"),
        ("POST", "/api/v1/projects", "{\"id\": \"Bad Id\"}", "id"),
        ("POST", "/api/v1/projects", "{\"id\": \"ok\", \"domains\": []}", "domains"),
        ("POST", "/api/v1/projects", "{\"id\": \"ok\", \"domains\": [\"dev\", \"dev\"]}", "domains[1].id"),
        ("POST", "/api/v1/projects", "{\"id\": \"ok\", \"colour\": \"red\"}", "unknown field"),
        ("POST", "/api/v1/projects", "{\"id\": \"ok\", \"tenant\": \"nobody\"}", "tenant"),
        ("POST", "/api/v1/projects", "{not json", "not valid JSON"),
        ("POST", "/api/v1/tenants", "{\"id\": \"t\", \"labels\": {\"k\": 1}}", "labels.k"),
        ("GET", "/api/v1/projects/NOT_VALID", "", "project"),
        ("GET", "/api/v1/projects?limit=abc", "", "limit"),
        ("GET", "/api/v1/projects?bogus=1", "", "bogus"),
    ];
    for (method, path, body, says) in cases {
        let b = if body.is_empty() { None } else { Some(("application/json", body.as_bytes().to_vec())) };
        let (s, e) = srv.call(method, path, Some(&srv.admin), b).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{method} {path} {body}: {e}");
        assert!(e["message"].as_str().unwrap_or_default().contains(says), "{method} {path} {body}: {e}");
    }
    let (s, _) = srv.call("POST", "/api/v1/projects", Some(&srv.admin), Some(("text/plain", b"{}".to_vec()))).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(srv.get("/api/v1/projects").await.1["items"], serde_json::json!([]));
    srv.stop().await;
});
