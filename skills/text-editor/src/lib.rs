//! The `text_editor` skill: view, create and edit text files in the caller's sandbox.
//!
//! Semantics follow Anthropic's text editor tool (`view`, `create`, `str_replace`, `insert`,
//! `undo_edit`). The skill does no path policing of its own: it hands absolute paths to WASI,
//! and the host's capability sandbox (only the user's directory, preopened as `/tmp`) decides
//! what exists.

mod editor;
mod history;

wit_bindgen::generate!({ path: "../../wit", world: "skill" });

struct TextEditor;

impl Guest for TextEditor {
    fn describe() -> Descriptor {
        Descriptor {
            name: "text_editor".into(),
            description: "View, create and edit text files. Files live under /tmp and persist \
                          between calls. Commands: view (file with line numbers, or a directory \
                          listing), create, str_replace (old_str must match exactly once), \
                          insert (after line insert_line; 0 inserts at the top), undo_edit."
                .into(),
            parameters: editor::SCHEMA.into(),
        }
    }

    fn invoke(arguments: String, _context: CallContext) -> Result<String, SkillError> {
        editor::run(&arguments)
    }
}

export!(TextEditor);
