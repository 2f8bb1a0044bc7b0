//! The Grafana dashboard in config/: valid JSON of a dashboard model with a Prometheus
//! datasource variable, and every metric its queries use is one the sensor defines — so a
//! renamed metric cannot leave a NOC panel silently empty.

mod common;

use serde_json::Value;
use std::collections::BTreeSet;

fn dashboard() -> Value {
    let text =
        std::fs::read_to_string(common::repo().join("config/grafana-dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("config/grafana-dashboard.json is JSON")
}

/// The metric names defined in src/metrics/names.rs (its string constants).
fn defined_names() -> BTreeSet<String> {
    let src = std::fs::read_to_string(common::repo().join("src/metrics/names.rs")).unwrap();
    src.lines()
        .filter(|l| l.trim_start().starts_with("pub const"))
        .filter_map(|l| l.split('"').nth(1))
        .map(str::to_string)
        .collect()
}

fn metric_names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("shaken_sensor_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn panels(d: &Value) -> Vec<&Value> {
    let mut v = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        v.push(p);
        if let Some(inner) = p["panels"].as_array() {
            v.extend(inner.iter());
        }
    }
    v
}

#[test]
fn dashboard_is_a_grafana_model_with_a_prometheus_datasource_variable() {
    let d = dashboard();
    assert_eq!(d["uid"], "shaken-sensor");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 30);
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["type"] == "datasource").unwrap();
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id");
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{p}"
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["type"], "prometheus", "{}", p["title"]);
        assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            assert!(!t["expr"].as_str().unwrap().is_empty());
        }
    }
}

#[test]
fn every_metric_the_dashboard_queries_is_defined() {
    let d = dashboard();
    let defined = defined_names();
    let histograms: BTreeSet<&str> = ["shaken_sensor_stage_latency_seconds"].into();
    let mut used = BTreeSet::new();
    for p in panels(&d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            for name in metric_names_in(t["expr"].as_str().unwrap()) {
                used.insert(name);
            }
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            used.extend(metric_names_in(q));
        }
    }
    let mut unknown = Vec::new();
    for name in &used {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| histograms.contains(b))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| name.clone());
        if !defined.contains(&base) {
            unknown.push(name.clone());
        }
    }
    assert!(
        unknown.is_empty(),
        "dashboard uses undefined metrics: {unknown:?}"
    );
    // What the NOC needs is on it.
    for needed in [
        "shaken_sensor_packets_total",
        "shaken_sensor_capture_drops_total",
        "shaken_sensor_verifications_total",
        "shaken_sensor_verification_failures_total",
        "shaken_sensor_detections_total",
        "shaken_sensor_spool_bytes",
        "shaken_sensor_push_batches_total",
        "shaken_sensor_push_oldest_undelivered_seconds",
        "shaken_sensor_stage_latency_seconds_bucket",
    ] {
        assert!(used.contains(needed), "no panel uses {needed}");
    }
    // The histogram names really are what the binary exposes.
    let rendered = shaken_sensor::metrics::Metrics::new().render();
    assert!(rendered.contains("# TYPE shaken_sensor_stage_latency_seconds histogram"));
    assert!(rendered
        .contains("shaken_sensor_stage_latency_seconds_bucket{stage=\"verify\",le=\"0.001\"} 0"));
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        metric_names_in(
            "histogram_quantile(0.99, sum by (le) (rate(shaken_sensor_a_bucket{x=\"1\"}[5m]))) / shaken_sensor_b"
        ),
        ["shaken_sensor_a_bucket", "shaken_sensor_b"]
    );
}
