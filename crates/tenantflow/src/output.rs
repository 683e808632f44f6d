//! Printing results: `-o json` and `-o yaml` print the API's data as is; `-o table` prints the
//! columns a person wants to scan.

use crate::cli::Format;
use serde_json::Value;

/// A column: header and how to read it from an item (a JSON pointer).
pub type Column = (&'static str, &'static str);

pub fn print(format: Format, data: &Value, columns: &[Column]) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(data).unwrap_or_default()),
        Format::Yaml => print!("{}", serde_yaml::to_string(data).unwrap_or_default()),
        Format::Table => {
            let items: Vec<&Value> = match data {
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            print!("{}", table(&items, columns));
        }
    }
}

fn cell(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                x => x.get("id").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| x.to_string()),
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) if pointer.ends_with("_at") => other.as_i64().map(format_ms).unwrap_or_else(|| other.to_string()),
        Some(other) => other.to_string(),
    }
}

/// Renders rows with columns padded to their widest cell.
pub fn table(items: &[&Value], columns: &[Column]) -> String {
    let rows: Vec<Vec<String>> = items.iter().map(|it| columns.iter().map(|(_, p)| cell(it, p)).collect()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(columns.iter().map(|(h, _)| *h).collect(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00");
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14 22:13:20");
        let a = json!({"id": "ml-alpha", "domains": [{"id": "development"}, {"id": "production"}]});
        let t = table(&[&a], &[("ID", "/id"), ("DOMAINS", "/domains"), ("X", "/missing")]);
        assert_eq!(t, "ID        DOMAINS                 X\nml-alpha  development,production  -\n");
    }
}
