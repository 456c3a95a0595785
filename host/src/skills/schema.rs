//! What a skill tells the model about itself, checked when it loads: the `describe()` fields
//! within size (a plugin's description goes with every model request of every user) and the
//! parameters a valid JSON Schema of an object, compiled once so that every call's arguments
//! are checked against it before the skill runs.

use serde_json::Value;

/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Longest parameter schema, in bytes of JSON.
pub const MAX_PARAMETERS_BYTES: usize = 16 << 10;

/// A skill's parameter schema, compiled for checking arguments.
pub struct Parameters {
    compiled: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Parameters {
    /// Checks a call's JSON `arguments` against the schema; the error lists every mismatch by
    /// its place in the arguments, for the model to correct its call.
    pub fn check(&self, arguments: &str) -> Result<(), String> {
        let value: Value = serde_json::from_str(arguments)
            .map_err(|e| format!("the arguments are not valid JSON ({e}); send a JSON object"))?;
        self.compiled.validate(&value, self.index).map_err(|error| {
            let mut mismatches = Vec::new();
            leaves(&error, &mut mismatches);
            format!(
                "the arguments do not match the skill's parameter schema: {}",
                mismatches.join("; ")
            )
        })
    }
}

/// The innermost causes of a validation error, each as "at <place>: <what>".
fn leaves(error: &boon::ValidationError, out: &mut Vec<String>) {
    if error.causes.is_empty() {
        let place = error.instance_location.to_string();
        let place = if place.is_empty() {
            "the top level".to_owned()
        } else {
            format!("'{place}'")
        };
        out.push(format!("at {place}: {}", error.kind));
    }
    for cause in &error.causes {
        leaves(cause, out);
    }
}

/// Checks `description` and `parameters` as `describe()` returned them and returns the
/// parameter schema (as offered to the model) and its compiled form; the error names the field
/// and says what to change.
pub fn check_describe(description: &str, parameters: &str) -> Result<(Value, Parameters), String> {
    if description.trim().is_empty() {
        return Err(
            "returned an empty description; the LLM needs one to know when to call the skill"
                .into(),
        );
    }
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(format!(
            "returned a description of {} bytes; at most {MAX_DESCRIPTION_BYTES} are allowed, \
             as it is sent with every model request",
            description.len()
        ));
    }
    if parameters.len() > MAX_PARAMETERS_BYTES {
        return Err(format!(
            "returned parameters of {} bytes; at most {MAX_PARAMETERS_BYTES} are allowed",
            parameters.len()
        ));
    }
    let schema: Value = serde_json::from_str(parameters)
        .map_err(|e| format!("returned parameters that are not JSON: {e}"))?;
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err(
            "returned parameters that are not an object schema; use {\"type\": \"object\", ...}"
                .into(),
        );
    }
    let mut compiler = boon::Compiler::new();
    // A skill's schema is one document: no file or URL it names is ever read.
    compiler.use_loader(Box::new(NoLoader));
    let invalid = |e: boon::CompileError| {
        format!("returned parameters that are not a valid JSON Schema: {e}")
    };
    compiler
        .add_resource(LOCATION, schema.clone())
        .map_err(invalid)?;
    let mut compiled = boon::Schemas::new();
    let index = compiler.compile(LOCATION, &mut compiled).map_err(invalid)?;
    Ok((schema, Parameters { compiled, index }))
}

/// Where the schema is filed in its compiler (it has no address of its own).
const LOCATION: &str = "urn:molten:skill-parameters";

/// Refuses every reference to another document.
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("{url}: a skill's parameter schema may not refer to other documents").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_schemas_are_checked() {
        let schema = r#"{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}"#;
        let (offered, parameters) = check_describe("Adds.", schema).unwrap();
        assert_eq!(offered["required"][0], "n");
        parameters.check(r#"{"n": 3}"#).expect("valid arguments");
        let err = parameters.check(r#"{"n": "three"}"#).unwrap_err();
        assert!(
            err.contains("at '/n'") && err.contains("want integer"),
            "{err}"
        );
        let err = parameters.check("{}").unwrap_err();
        assert!(
            err.contains("at the top level") && err.contains("'n'"),
            "{err}"
        );
        let err = parameters.check("[1").unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        for (description, parameters, expected) in [
            ("", "{}", "empty description"),
            (
                &"x".repeat(1025)[..],
                r#"{"type":"object"}"#,
                "description of 1025 bytes",
            ),
            (
                "d",
                r#"{"type":"object","properties":{"n":{"type":7}}}"#,
                "not a valid JSON Schema",
            ),
            (
                "d",
                r#"{"type":"object","$ref":"file:///etc/passwd"}"#,
                "not a valid JSON Schema",
            ),
        ] {
            let Err(err) = check_describe(description, parameters) else {
                panic!("{parameters} accepted");
            };
            assert!(err.contains(expected), "{parameters}: {err}");
        }
    }
}
