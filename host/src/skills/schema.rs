//! What a skill tells the model about itself, checked when it loads: the `describe()` fields
//! within size (a plugin's description goes with every model request of every user) and the
//! parameters a valid JSON Schema of an object.

use serde_json::Value;

/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Longest parameter schema, in bytes of JSON.
pub const MAX_PARAMETERS_BYTES: usize = 16 << 10;

/// Checks `description` and `parameters` as `describe()` returned them and returns the
/// parameter schema; the error names the field and says what to change.
pub fn check_describe(description: &str, parameters: &str) -> Result<Value, String> {
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
    compiler
        .compile(LOCATION, &mut boon::Schemas::new())
        .map_err(invalid)?;
    Ok(schema)
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
        assert_eq!(check_describe("Adds.", schema).unwrap()["required"][0], "n");
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
            let err = check_describe(description, parameters).expect_err("refused");
            assert!(err.contains(expected), "{parameters}: {err}");
        }
    }
}
