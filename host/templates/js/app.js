// {{name}}: turns rows of data into a Markdown table, columns aligned.
// Replace it with what your skill does; `molten skill test` runs tests.toml. componentize-js
// puts this module and a JavaScript engine (SpiderMonkey) into one component. There is no
// filesystem API for JavaScript skills; HTTP goes through fetch() to what the operator granted.
import { log } from "molten:skill/log@0.1.0";

const SCHEMA = {
  type: "object",
  properties: {
    rows: {
      type: "array",
      items: { type: "object" },
      minItems: 1,
      maxItems: 500,
      description: "The rows, each an object of column name to value.",
    },
    columns: {
      type: "array",
      items: { type: "string" },
      description: "The columns, in order (default: every key, in first-seen order).",
    },
  },
  required: ["rows"],
  additionalProperties: false,
};

export function describe() {
  return {
    name: "{{name}}",
    description: "Formats rows of data (objects) as a Markdown table with aligned columns.",
    parameters: JSON.stringify(SCHEMA),
  };
}

function cell(value) {
  if (value === undefined || value === null) return "";
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

// An error for the model is thrown as { tag: "invalid-input" | "denied" | "failed", val: "..." }.
export function invoke(args, context) {
  // molten has checked the arguments against SCHEMA before this runs.
  const { rows, columns } = JSON.parse(args);
  const names = columns ?? [...new Set(rows.flatMap((row) => Object.keys(row)))];
  if (names.length === 0) {
    throw { tag: "invalid-input", val: "the rows have no columns; give objects with keys" };
  }
  log("debug", `formatting ${rows.length} rows for ${context.userId}`);
  const table = [names, ...rows.map((row) => names.map((name) => cell(row[name])))];
  const widths = names.map((_, i) => Math.max(3, ...table.map((line) => line[i].length)));
  const line = (cells) => "| " + cells.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  return [line(table[0]), line(widths.map((w) => "-".repeat(w))), ...table.slice(1).map(line)].join("\n");
}
