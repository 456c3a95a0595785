"""{{name}}: reads a CSV file from the user's sandbox and summarises each column.

Replace it with what your skill does; `molten skill test` runs tests.toml. The bindings
(`wit_world`) are generated from .molten/wit by componentize-py when the skill is built.
"""

import csv
import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, types
from wit_world.imports.log import Level

SCHEMA = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "A CSV file under /tmp, e.g. /tmp/sales.csv."},
        "max_columns": {"type": "integer", "minimum": 1, "maximum": 50},
    },
    "required": ["path"],
    "additionalProperties": False,
}


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def summarise(path, max_columns):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return f"{path} is empty"
    header, body = rows[0], rows[1:]
    lines = [f"{path}: {len(body)} rows, {len(header)} columns"]
    for i, name in enumerate(header[:max_columns]):
        values = [row[i] for row in body if i < len(row) and row[i] != ""]
        numbers = [n for n in map(number, values) if n is not None]
        if values and len(numbers) == len(values):
            lines.append(
                f"{name}: numeric, min {min(numbers):g}, max {max(numbers):g}, "
                f"mean {sum(numbers) / len(numbers):g}"
            )
        else:
            distinct = sorted(set(values))
            shown = ", ".join(distinct[:5]) + (", ..." if len(distinct) > 5 else "")
            lines.append(f"{name}: {len(distinct)} distinct values ({shown})")
    return "\n".join(lines)


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Descriptor:
        return types.Descriptor(
            name="{{name}}",
            description="Summarises a CSV file under /tmp: rows, columns, and per column its "
            "range and mean (numbers) or distinct values (text).",
            parameters=json.dumps(SCHEMA),
        )

    def invoke(self, arguments: str, context: types.CallContext) -> str:
        # molten has checked the arguments against SCHEMA before this runs.
        args = json.loads(arguments)
        log.log(Level.DEBUG, f"summarising {args['path']} for {context.user_id}")
        try:
            return summarise(args["path"], args.get("max_columns", 20))
        except FileNotFoundError:
            raise Err(types.SkillError_InvalidInput(f"{args['path']} does not exist"))
        except (OSError, csv.Error, UnicodeDecodeError) as e:
            raise Err(types.SkillError_Failed(f"cannot read {args['path']}: {e}"))
