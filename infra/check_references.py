"""Checks infra/terraform without Terraform: every file parses (python-hcl2); every var., local.,
data. and resource reference names something declared; every variable is described and used;
every Key Vault secret molten reads is set by the operator or given as environment; every
MOLTEN_* variable the apps set is one molten reads. Exits 1 naming each problem."""

import pathlib
import re
import sys

import hcl2

ROOT = pathlib.Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "infra" / "terraform"
problems = []

modules = {}
for path in sorted(TERRAFORM.glob("*.tf")):
    with path.open() as f:
        try:
            modules[path.name] = hcl2.load(f)
        except Exception as e:  # the parser's errors name the line
            problems.append(f"{path.name}: does not parse: {e}")

variables, locals_, resources, data, outputs = {}, {}, set(), set(), set()
for name, module in modules.items():
    for block in module.get("variable", []):
        for var, body in block.items():
            variables[var.strip('"')] = (name, body)
    for block in module.get("locals", []):
        for key, value in block.items():
            locals_[key] = value
    for block in module.get("resource", []):
        for kind, named in block.items():
            for res in named:
                resources.add(f"{kind.strip(chr(34))}.{res.strip(chr(34))}")
    for block in module.get("data", []):
        for kind, named in block.items():
            for res in named:
                data.add(f"{kind.strip(chr(34))}.{res.strip(chr(34))}")
    for block in module.get("output", []):
        outputs.update(o.strip('"') for o in block)

text = "\n".join(p.read_text() for p in sorted(TERRAFORM.glob("*.tf")))
# Comments and quoted text outside ${} are not references.
code = re.sub(r"#[^\n]*", "", text)
used_vars = set(re.findall(r"\bvar\.(\w+)", code))
for var in sorted(used_vars - variables.keys()):
    problems.append(f"var.{var} is used but not declared")
for var, (name, body) in sorted(variables.items()):
    if var not in used_vars:
        problems.append(f"{name}: variable {var} is declared but never used")
    if not body.get("description"):
        problems.append(f"{name}: variable {var} has no description")
for key in sorted(set(re.findall(r"\blocal\.(\w+)", code)) - locals_.keys()):
    problems.append(f"local.{key} is used but not declared")
for kind, res in sorted(set(re.findall(r"\bdata\.(\w+)\.(\w+)", code))):
    if f"{kind}.{res}" not in data:
        problems.append(f"data.{kind}.{res} is used but not declared")
for kind, res in sorted(set(re.findall(r"(?<![\w.])((?:azurerm|random)_\w+)\.(\w+)", code))):
    if f"{kind}.{res}" not in resources:
        problems.append(f"{kind}.{res} is used but not declared")
if not outputs:
    problems.append("no outputs")

# Key Vault: what molten reads there, from its source.
key_vault = (ROOT / "host" / "src" / "azure" / "key_vault.rs").read_text()
table = key_vault[key_vault.index("CONFIG_SECRETS"):]
table = table[: table.index("];")]
read = set(re.findall(r'\("([a-z0-9-]+)",\s*"MOLTEN_', table))
for manifest in (ROOT / "skills").glob("*/skill.toml"):
    read.update(re.findall(r'name\s*=\s*"([a-z0-9-]+)"', manifest.read_text().split("[[capabilities.secrets]]", 1)[-1])
                if "[[capabilities.secrets]]" in manifest.read_text() else [])
if not read:
    problems.append("found no Key Vault secret names in molten's source")
def names(local):
    """A list local's strings (the parser may wrap the list once more)."""
    value = locals_.get(local, [])
    while len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    return set(value)


declared = names("operator_secrets") | names("environment_settings") | names("host_made_secrets")
for secret in sorted(read - declared):
    problems.append(f"molten reads Key Vault secret {secret}, which local.operator_secrets does not list")
for secret in sorted(declared - read):
    problems.append(f"local.operator_secrets lists {secret}, which molten never reads")

# Environment: every MOLTEN_* the apps set is read by molten.
source = "\n".join(p.read_text() for p in (ROOT / "host" / "src").rglob("*.rs"))
known = set(re.findall(r'"(MOLTEN_[A-Z0-9_]+)"', source)) | set(re.findall(r'env = "(MOLTEN_[A-Z0-9_]+)"', source))
for var in sorted(set(re.findall(r"\b(MOLTEN_[A-Z0-9_]+)\s*=", code)) - known):
    problems.append(f"the apps set {var}, which molten does not read")

for problem in problems:
    print(f"infra-check: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(
    f"infra-check: {len(modules)} files, {len(variables)} variables, {len(resources)} resources, "
    f"{len(outputs)} outputs; {len(read)} Key Vault secrets accounted for",
    file=sys.stderr,
)
