//! The HTTP server for real on 127.0.0.1: /healthz, /metrics, and the traceback API over a
//! store filled by replaying a sipp capture. Requests are raw HTTP/1.1 over a TCP socket.

mod common;

use serde_json::Value;
use shaken_sensor::config::HttpConfig;
use shaken_sensor::health::Health;
use shaken_sensor::http::{spawn, HttpState};
use shaken_sensor::metrics::Metrics;
use shaken_sensor::shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::Arc;

const TOKEN: &str = "s3cret-token";

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    common::http(addr, method, path, token, body.map(str::as_bytes), "")
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

struct Server {
    addr: SocketAddr,
    health: Arc<Health>,
    stop: Shutdown,
    _dir: tempfile::TempDir,
    call: Value,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

fn server(token: Option<&str>) -> Server {
    server_with(token, HttpConfig::default())
}

fn server_with(token: Option<&str>, config: HttpConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let replay_config = "[sensor]\nworkers = 2\n[[peers]]\nname = \"lab\"\nocn = \"4321\"\ncidrs = [\"127.0.0.0/8\"]\n";
    let r = common::replay_with(
        &[&common::pcap("udp-outcomes.pcap")],
        replay_config,
        &["--store", store.to_str().unwrap()],
    );
    let call = r
        .records
        .iter()
        .find(|c| c["call_id"] == "outcome-notfound-1@uac.shaken-sensor.test")
        .unwrap()
        .clone();
    let stop = Shutdown::new();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(&metrics));
    let state = HttpState {
        health: health.clone(),
        metrics,
        store: Some(store),
        token: token.map(str::to_string),
        config,
    };
    let s = spawn("127.0.0.1:0".parse().unwrap(), state, stop.clone()).unwrap();
    Server {
        addr: s.addr,
        health,
        stop,
        _dir: dir,
        call,
    }
}

#[test]
fn health_and_metrics() {
    let s = server(Some(TOKEN));
    // Nothing registered yet: not ready.
    let (status, body) = request(s.addr, "GET", "/healthz", None, None);
    assert_eq!(status, 503, "{body}");
    let capture = s.health.register("capture", true, "");
    let sink = s.health.register("sink_jsonl", true, "");
    let (status, body) = request(s.addr, "GET", "/healthz", None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_body(&body),
        serde_json::json!({"status": "ok", "components": {"capture": {"ok": true}, "sink_jsonl": {"ok": true}}})
    );
    sink.set_failed("records.jsonl: No space left on device");
    let (status, body) = request(s.addr, "GET", "/healthz", None, None);
    assert_eq!(status, 503);
    assert_eq!(
        json_body(&body),
        serde_json::json!({"status": "unavailable", "components": {"capture": {"ok": true},
            "sink_jsonl": {"ok": false, "reason": "records.jsonl: No space left on device"}}})
    );
    capture.set_ok();
    let (status, body) = request(s.addr, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(body.contains("shaken_sensor_build_info"), "{body}");
}

#[test]
fn traceback_get_answers_with_the_upstream_hop() {
    let s = server(Some(TOKEN));
    let (orig, dest, at) = (
        s.call["orig_tn"].as_str().unwrap().to_string(),
        s.call["dest_tn"].as_str().unwrap().to_string(),
        s.call["observed_at"].as_str().unwrap().to_string(),
    );
    let path = format!("/v1/traceback?orig={orig}&dest={dest}&at={at}&window_s=30");
    let (status, body) = request(s.addr, "GET", &path, Some(TOKEN), None);
    assert_eq!(status, 200, "{body}");
    let a = json_body(&body);
    let calls = a["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{a}");
    assert_eq!(calls[0]["call_id"], s.call["call_id"]);
    assert_eq!(calls[0]["upstream"]["peer"], "lab");
    assert_eq!(calls[0]["upstream"]["ocn"], "4321");
    assert_eq!(calls[0]["dialog"]["final_code"], 404);
    assert_eq!(calls[0]["shaken"]["verstat"], "No-TN-Validation");
    // Unknown call: an empty answer.
    let (status, body) = request(
        s.addr,
        "GET",
        &format!("/v1/traceback?dest=13035559999&at={at}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(json_body(&body)["calls"].as_array().unwrap().len(), 0);
}

#[test]
fn traceback_refuses_bad_tokens_and_bad_input() {
    let s = server(Some(TOKEN));
    let at = s.call["observed_at"].as_str().unwrap().to_string();
    let ok_path = format!("/v1/traceback?dest=13035550118&at={at}");
    assert_eq!(request(s.addr, "GET", &ok_path, None, None).0, 401);
    assert_eq!(
        request(s.addr, "GET", &ok_path, Some("wrong-token!"), None).0,
        401
    );
    for (query, param) in [
        (format!("at={at}"), "dest"),
        ("dest=13035550118&at=yesterday".to_string(), "at"),
        (
            format!("dest=13035550118&at={at}&window_s=1000000000"),
            "window_s",
        ),
        (format!("dest=abc&at={at}"), "dest"),
    ] {
        let (status, body) = request(
            s.addr,
            "GET",
            &format!("/v1/traceback?{query}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(json_body(&body)["param"], param, "{query}: {body}");
    }
    let no_token = server(None);
    assert_eq!(
        request(no_token.addr, "GET", &ok_path, Some(TOKEN), None).0,
        403
    );
}

#[test]
fn traceback_post_batches_are_capped() {
    let s = server(Some(TOKEN));
    let at = s.call["observed_at"].as_str().unwrap();
    let one = format!(r#"{{"dest":"13035550118","at":"{at}","window_s":60}}"#);
    let body = format!(r#"{{"queries":[{one},{one}]}}"#);
    let (status, resp) = request(s.addr, "POST", "/v1/traceback", Some(TOKEN), Some(&body));
    assert_eq!(status, 200, "{resp}");
    let answers = json_body(&resp)["answers"].as_array().unwrap().clone();
    assert_eq!(answers.len(), 2);
    assert_eq!(
        answers[0]["calls"][0]["call_id"],
        "outcome-notfound-1@uac.shaken-sensor.test"
    );
    let many = vec![one.as_str(); 10_001].join(",");
    let (status, resp) = request(
        s.addr,
        "POST",
        "/v1/traceback",
        Some(TOKEN),
        Some(&format!(r#"{{"queries":[{many}]}}"#)),
    );
    assert_eq!(status, 400, "{resp}");
    assert_eq!(json_body(&resp)["param"], "queries");
    let (status, resp) = request(
        s.addr,
        "POST",
        "/v1/traceback",
        Some(TOKEN),
        Some("not json"),
    );
    assert_eq!(status, 400, "{resp}");
}

#[test]
fn one_traceback_post_shares_one_call_budget_across_its_queries() {
    let s = server_with(
        Some(TOKEN),
        HttpConfig {
            traceback_max_calls: 1,
            ..HttpConfig::default()
        },
    );
    let at = s.call["observed_at"].as_str().unwrap();
    let one = format!(r#"{{"dest":"13035550118","at":"{at}","window_s":60}}"#);
    let body = format!(r#"{{"queries":[{one},{one}]}}"#);
    let (status, resp) = request(s.addr, "POST", "/v1/traceback", Some(TOKEN), Some(&body));
    assert_eq!(status, 200, "{resp}");
    let v = json_body(&resp);
    assert_eq!(v["answers"][0]["calls"].as_array().unwrap().len(), 1);
    assert_eq!(v["answers"][0]["truncated"], false);
    assert_eq!(v["answers"][1]["calls"].as_array().unwrap().len(), 0);
    assert_eq!(v["answers"][1]["truncated"], true);
    assert_eq!(v["truncated"], true);
}

#[test]
fn impossible_dates_are_refused_naming_at() {
    let s = server(Some(TOKEN));
    for at in [
        "2026-11-31T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-29T14:03:07%2B24:00",
    ] {
        let (status, body) = request(
            s.addr,
            "GET",
            &format!("/v1/traceback?dest=13035550118&at={at}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 400, "{at}: {body}");
        assert_eq!(json_body(&body)["param"], "at", "{at}: {body}");
    }
    let body = r#"{"queries":[{"dest":"13035550118","at":"2026-11-29T00:00:00Z"},{"dest":"13035550118","at":"2026-11-31T00:00:00Z"}]}"#;
    let (status, resp) = request(s.addr, "POST", "/v1/traceback", Some(TOKEN), Some(body));
    assert_eq!(status, 400, "{resp}");
    assert!(json_body(&resp)["error"]
        .as_str()
        .unwrap()
        .starts_with("queries[1]"));
}

#[test]
fn a_traceback_body_over_the_cap_is_refused_before_it_is_read() {
    let s = server_with(
        Some(TOKEN),
        HttpConfig {
            max_body_kb: 1,
            ..HttpConfig::default()
        },
    );
    let big = format!(r#"{{"queries":[],"pad":"{}"}}"#, "x".repeat(4096));
    let (status, _) = request(s.addr, "POST", "/v1/traceback", Some(TOKEN), Some(&big));
    assert_eq!(status, 413);
    // Without the token the body is not even considered: 401.
    let (status, _) = request(s.addr, "POST", "/v1/traceback", None, Some(&big));
    assert_eq!(status, 401);
}
