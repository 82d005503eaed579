//! The JSON shapes of the shell's real answers, recorded for the UI tests.
//!
//! The UI tests (`tests/ui`) script the shell's IPC in Chromium; if their
//! scripted answers drifted from what the shell really returns, they would
//! test a frontend against a backend that does not exist. So every answer
//! these tests get from a real command is reduced to its shape (keys and
//! JSON types, no values) and compared with `tests/ui/shapes/<test>.json`;
//! the UI harness checks every scripted answer against the same files.
//! After a deliberate change to a command's output, rerun with
//! `EXSEARCH_RECORD_SHAPES=1` to rewrite them, then update
//! `tests/ui/backend.mjs` until the UI tests pass again.
//!
//! A shape is `"string"`, `"number"`, `"boolean"`, `"null"` or `"any"`; an
//! object of shapes (a key ending in `?` was absent from some answers); or
//! a one-element array holding the shape of every element (empty when no
//! element was seen).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// The shape of one JSON value.
pub fn shape(value: &Value) -> Value {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "boolean".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => {
            let element = items.iter().map(shape).reduce(|a, b| merge(&a, &b));
            Value::Array(element.into_iter().collect())
        }
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

/// One shape that covers both: null gives way to any other type, keys
/// present in only one object become optional, other conflicts are `any`.
pub fn merge(a: &Value, b: &Value) -> Value {
    match (a, b) {
        _ if a == b => a.clone(),
        (Value::String(s), other) | (other, Value::String(s)) if s == "null" => other.clone(),
        (Value::Array(x), Value::Array(y)) => match (x.first(), y.first()) {
            (Some(x), Some(y)) => Value::Array(vec![merge(x, y)]),
            (Some(e), None) | (None, Some(e)) => Value::Array(vec![e.clone()]),
            (None, None) => Value::Array(vec![]),
        },
        (Value::Object(x), Value::Object(y)) => {
            let plain = |k: &str| k.trim_end_matches('?').to_owned();
            let x: BTreeMap<String, (&String, &Value)> =
                x.iter().map(|(k, v)| (plain(k), (k, v))).collect();
            let y: BTreeMap<String, (&String, &Value)> =
                y.iter().map(|(k, v)| (plain(k), (k, v))).collect();
            let mut out = Map::new();
            for key in x.keys().chain(y.keys()) {
                if out.contains_key(key) || out.contains_key(&format!("{key}?")) {
                    continue;
                }
                match (x.get(key), y.get(key)) {
                    (Some((kx, vx)), Some((ky, vy))) => {
                        let optional = kx.ends_with('?') || ky.ends_with('?');
                        let name = if optional {
                            format!("{key}?")
                        } else {
                            key.clone()
                        };
                        out.insert(name, merge(vx, vy));
                    }
                    (Some((_, v)), None) | (None, Some((_, v))) => {
                        out.insert(format!("{key}?"), (*v).clone());
                    }
                    (None, None) => unreachable!("key from one side"),
                }
            }
            Value::Object(out)
        }
        _ => "any".into(),
    }
}

/// The answers one test got, by command, as shapes.
#[derive(Default)]
pub struct Recorder {
    shapes: std::sync::Mutex<BTreeMap<String, Value>>,
}

impl Recorder {
    pub fn record(&self, cmd: &str, answer: &Value) {
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        let new = shape(answer);
        let merged = match shapes.get(cmd) {
            Some(old) => merge(old, &new),
            None => new,
        };
        shapes.insert(cmd.to_owned(), merged);
    }

    /// Compares what was recorded with `tests/ui/shapes/<name>.json`, or
    /// rewrites it under `EXSEARCH_RECORD_SHAPES=1`.
    pub fn check(&self, name: &str) {
        let shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        let recorded = Value::Object(shapes.clone().into_iter().collect());
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/ui/shapes")
            .join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&recorded).expect("shapes") + "\n";
        if std::env::var_os("EXSEARCH_RECORD_SHAPES").is_some() {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let committed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
        let mut found = Vec::new();
        conflicts(&committed, &recorded, "", &mut found);
        assert!(
            found.is_empty(),
            "the shell's answers no longer have the shapes in {} that the UI tests' scripted \
             backend is checked against:\n  {}\nrerun with EXSEARCH_RECORD_SHAPES=1 and update \
             tests/ui/backend.mjs. Recorded now:\n{text}",
            path.display(),
            found.join("\n  ")
        );
    }
}

/// A real answer kept whole (one whose values do not depend on the machine
/// or the run, like the default settings): compared with
/// `tests/ui/shapes/<name>.sample.json`, or written under
/// `EXSEARCH_RECORD_SHAPES=1`. The UI harness hands these to the scripted
/// backend, which answers with them.
pub fn check_sample(name: &str, answer: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ui/shapes")
        .join(format!("{name}.sample.json"));
    let text = serde_json::to_string_pretty(answer).expect("sample") + "\n";
    if std::env::var_os("EXSEARCH_RECORD_SHAPES").is_some() {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let committed: Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    assert!(
        &committed == answer,
        "{} is not the shell's answer any more; rerun with EXSEARCH_RECORD_SHAPES=1. Now:\n{text}",
        path.display()
    );
}

/// Where `now` disagrees with `committed`: a key one has and the other
/// lacks (unless marked optional), or two different types. A null, `any`
/// or an empty array agrees with anything: whether a run saw a value there
/// can depend on the data, its type cannot.
pub fn conflicts(committed: &Value, now: &Value, at: &str, out: &mut Vec<String>) {
    let loose = |v: &Value| v == "null" || v == "any";
    if loose(committed) || loose(now) {
        return;
    }
    match (committed, now) {
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(a), Some(b)) = (a.first(), b.first()) {
                conflicts(a, b, &format!("{at}[]"), out);
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let find = |m: &Map<String, Value>, k: &str| {
                m.get(k)
                    .map(|v| (v.clone(), false))
                    .or_else(|| m.get(&format!("{k}?")).map(|v| (v.clone(), true)))
            };
            let keys: std::collections::BTreeSet<&str> = a
                .keys()
                .chain(b.keys())
                .map(|k| k.trim_end_matches('?'))
                .collect();
            for key in keys {
                match (find(a, key), find(b, key)) {
                    (Some((x, _)), Some((y, _))) => conflicts(&x, &y, &format!("{at}.{key}"), out),
                    (Some((_, true)), None) | (None, Some((_, true))) => {}
                    (Some(_), None) => out.push(format!("{at}.{key}: no longer in the answer")),
                    (None, Some(_)) => out.push(format!("{at}.{key}: new in the answer")),
                    (None, None) => {}
                }
            }
        }
        _ if committed != now => out.push(format!("{at}: was {committed}, now {now}")),
        _ => {}
    }
}

#[test]
fn shapes_merge_optional_keys_nulls_and_elements() {
    use serde_json::json;
    let a = shape(&json!({"page": null, "items": [{"x": 1}, {"x": 2, "y": "s"}], "n": 1}));
    let b = shape(&json!({"page": 3, "items": [], "extra": true, "n": 2}));
    assert_eq!(
        merge(&a, &b),
        json!({"page": "number", "items": [{"x": "number", "y?": "string"}],
               "n": "number", "extra?": "boolean"})
    );
    assert_eq!(merge(&shape(&json!(1)), &shape(&json!("s"))), json!("any"));
    let mut found = Vec::new();
    conflicts(&a, &b, "", &mut found);
    assert_eq!(found, vec![".extra: new in the answer".to_string()]);
    found.clear();
    conflicts(
        &shape(&json!({"t": {"ms": 1}})),
        &shape(&json!({"t": {"ms": "x"}})),
        "",
        &mut found,
    );
    assert_eq!(
        found,
        vec![".t.ms: was \"number\", now \"string\"".to_string()]
    );
}
