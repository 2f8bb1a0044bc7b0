//! Readiness for `/healthz`: a registry of named components (capture, sinks, and whatever a
//! later stage registers, e.g. the collector pusher), each with an ok flag and a reason.
//! Ready means every registered component is ok and at least one is registered.
//!
//! Components flip their own flag (an atomic store, no lock); the registry's lock is taken only
//! to register and when /healthz is asked. This module never blocks a stage.

use crate::metrics::Metrics;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Names used by the pipeline; other stages pick their own (e.g. "push").
pub const CAPTURE: &str = "capture";
pub const SINK_JSONL: &str = "sink_jsonl";
pub const TRACEBACK_STORE: &str = "traceback_store";
pub const PUSH: &str = "push";

/// One component's state. Cheap to update from its own thread.
#[derive(Debug)]
pub struct Component {
    ok: AtomicBool,
    reason: Mutex<String>,
    gauge: prometheus::IntGauge,
}

impl Component {
    pub fn set_ok(&self) {
        if !self.ok.swap(true, Ordering::Relaxed) {
            self.gauge.set(1);
        }
    }

    /// Marks the component unhealthy with the reason /healthz shows.
    pub fn set_failed(&self, reason: impl Into<String>) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason.into();
        self.ok.store(false, Ordering::Relaxed);
        self.gauge.set(0);
    }

    pub fn is_ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Health {
    components: RwLock<BTreeMap<String, Arc<Component>>>,
    gauges: prometheus::IntGaugeVec,
}

impl Health {
    /// A registry whose flags are mirrored in `shaken_sensor_component_healthy{component}`.
    pub fn new(metrics: &Metrics) -> Self {
        Health {
            components: RwLock::new(BTreeMap::new()),
            gauges: metrics.component_healthy.clone(),
        }
    }

    /// Registers (or returns the already registered) component `name`, in state `ok` with
    /// `reason` while it is not.
    pub fn register(&self, name: &str, ok: bool, reason: &str) -> Arc<Component> {
        let mut map = self.components.write().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_string())
            .or_insert_with(|| {
                let gauge = self.gauges.with_label_values(&[name]);
                gauge.set(i64::from(ok));
                Arc::new(Component {
                    ok: AtomicBool::new(ok),
                    reason: Mutex::new(reason.to_string()),
                    gauge,
                })
            })
            .clone()
    }

    /// Whether the sensor is ready, and the JSON body of /healthz:
    /// `{"status":"ok"|"unavailable","components":{"capture":{"ok":true},...}}`.
    pub fn report(&self) -> (bool, Value) {
        let map = self.components.read().unwrap_or_else(|e| e.into_inner());
        let mut components = Map::new();
        let mut ready = !map.is_empty();
        for (name, c) in map.iter() {
            let ok = c.is_ok();
            ready &= ok;
            let mut v = json!({ "ok": ok });
            if !ok {
                v["reason"] = json!(c.reason.lock().unwrap_or_else(|e| e.into_inner()).clone());
            }
            components.insert(name.clone(), v);
        }
        if map.is_empty() {
            components.insert(
                "pipeline".into(),
                json!({"ok": false, "reason": "not started"}),
            );
        }
        let status = if ready { "ok" } else { "unavailable" };
        (
            ready,
            json!({ "status": status, "components": Value::Object(components) }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is_ok_and_the_body_names_the_failing_one() {
        let m = Metrics::new();
        let h = Health::new(&m);
        let (ready, body) = h.report();
        assert!(!ready);
        assert_eq!(body["components"]["pipeline"]["reason"], "not started");
        let capture = h.register(CAPTURE, false, "capture not started");
        let sink = h.register(SINK_JSONL, true, "");
        assert!(!h.report().0);
        capture.set_ok();
        let (ready, body) = h.report();
        assert!(ready);
        assert_eq!(
            body,
            json!({"status":"ok","components":{"capture":{"ok":true},"sink_jsonl":{"ok":true}}})
        );
        sink.set_failed("writing records.jsonl: disk full");
        let (ready, body) = h.report();
        assert!(!ready);
        assert_eq!(body["status"], "unavailable");
        assert_eq!(
            body["components"]["sink_jsonl"],
            json!({"ok": false, "reason": "writing records.jsonl: disk full"})
        );
        assert!(m
            .render()
            .contains("shaken_sensor_component_healthy{component=\"sink_jsonl\"} 0"));
        // Registering again returns the same component.
        assert!(Arc::ptr_eq(&sink, &h.register(SINK_JSONL, true, "")));
    }
}
