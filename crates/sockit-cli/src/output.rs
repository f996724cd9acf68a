//! Output conventions shared by the subcommands (DESIGN.md, "Output conventions").

use std::io::Write;

/// A JSON error object: `{"kind":…,"op":…,"code":…,"message":…}` (the library's serde
/// form of its error; `kind` `other` for an error from outside the library).
pub fn json_error(err: &anyhow::Error) -> serde_json::Value {
    match crate::exit::sockit_error(err) {
        Some(e) => serde_json::to_value(e).unwrap_or_default(),
        None => serde_json::json!({"kind": "other", "op": null, "code": null,
                                   "message": crate::exit::python_text(err)}),
    }
}

/// The `{"event":"error",…}` object of an error that ends a command.
pub fn error_event(err: &anyhow::Error) -> serde_json::Value {
    let mut v = serde_json::json!({"event": "error"});
    if let (serde_json::Value::Object(o), serde_json::Value::Object(e)) = (&mut v, json_error(err))
    {
        o.extend(e);
    }
    v
}

/// With `--json`, a command's error that ends it is also printed on stdout as
/// `{"error":{"kind","code","message"}}` (the `sockit: …` line still goes to stderr and
/// the exit code is the error's); a broken stdout stays quiet.
pub fn also_json<T>(json: bool, result: anyhow::Result<T>) -> anyhow::Result<T> {
    if let Err(err) = &result
        && json
        && !crate::exit::is_broken_pipe(err)
    {
        let obj = serde_json::json!({ "error": json_error(err) });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{obj}");
        let _ = out.flush();
    }
    result
}
