#!/usr/bin/env python3
"""Structural checks of an ARM template, offline: usage `lint-arm.py TEMPLATE.json...`.

No Azure validator reaches this machine's registries (the Bicep CLI, arm-ttk and `az deployment
validate` all need GitHub, PowerShell Gallery or Azure itself), so this checks what can be
checked without Azure's schemas:

- the JSON parses, with `$schema`, `contentVersion` and `resources`;
- every `[...]` expression parses (strings, numbers, calls, `.property`, `[index]`), calls only
  ARM template functions, and names only declared parameters and variables (`reference` and
  `list*` never in `variables`, where ARM refuses them);
- parameters have a valid type, and a default (and allowed values) of that type;
- resources have a `type` with a namespace, a dated `apiVersion` and a `name` with one segment
  per level of the type (`a/b/c` types take `x/y` names), and each `dependsOn` or
  `resourceId(...)` names a type that the template declares.

It does not know Azure's resource schemas (property names and values are not checked).
Exit status 1 and one line per problem when anything is wrong.
"""

import json
import re
import sys

FUNCTIONS = {
    # https://learn.microsoft.com/azure/azure-resource-manager/templates/template-functions
    "array", "concat", "contains", "createArray", "empty", "first", "indexOf", "intersection",
    "items", "last", "lastIndexOf", "length", "max", "min", "range", "skip", "take", "union",
    "coalesce", "equals", "greater", "greaterOrEquals", "less", "lessOrEquals", "and", "bool",
    "false", "if", "not", "or", "true", "dateTimeAdd", "dateTimeFromEpoch", "dateTimeToEpoch",
    "utcNow", "environment", "add", "copyIndex", "div", "float", "int", "mod", "mul", "sub",
    "createObject", "json", "null", "objectKeys", "shallowMerge", "tryGet", "extensionResourceId",
    "managementGroupResourceId", "pickZones", "providers", "reference", "references", "resourceId",
    "subscriptionResourceId", "tenantResourceId", "resourceGroup", "subscription", "tenant",
    "managementGroup", "deployment", "parameters", "variables", "base64", "base64ToJson",
    "base64ToString", "dataUri", "dataUriToString", "endsWith", "format", "guid", "join",
    "lastIndexOf", "newGuid", "padLeft", "replace", "split", "startsWith", "string", "substring",
    "toLower", "toUpper", "trim", "uniqueString", "uri", "uriComponent", "uriComponentToString",
    "listKeys", "listAccountSas", "listServiceSas", "listSecrets", "listCredentials",
}
PARAMETER_TYPES = {"string", "securestring", "int", "bool", "object", "secureobject", "array"}
PYTHON_TYPES = {"string": str, "securestring": str, "int": int, "bool": bool, "object": dict,
                "secureobject": dict, "array": list}


class Expression:
    """A recursive-descent parser of one ARM expression, recording what it calls."""

    TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(.))")

    def __init__(self, text):
        self.tokens = [m.groups() for m in self.TOKEN.finditer(text) if m.group(0).strip()]
        self.at = 0
        self.calls = []  # (function name, first argument if a string literal)

    def peek(self):
        return self.tokens[self.at] if self.at < len(self.tokens) else (None, None, None, None)

    def take(self, symbol):
        if self.peek()[3] != symbol:
            raise ValueError(f"expected {symbol!r} at token {self.at + 1}")
        self.at += 1

    def parse(self):
        self.value()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected text after token {self.at}")
        return self

    def value(self):
        string, number, name, symbol = self.peek()
        if string is not None or number is not None:
            self.at += 1
            return string
        if name is None:
            raise ValueError(f"expected a value at token {self.at + 1}, found {symbol!r}")
        self.at += 1
        self.take("(")
        first = None
        if self.peek()[3] != ")":
            first = self.value()
            while self.peek()[3] == ",":
                self.at += 1
                self.value()
        self.take(")")
        self.calls.append((name, first[1:-1] if first else None))
        while self.peek()[3] in (".", "["):
            if self.peek()[3] == ".":
                self.at += 1
                if self.peek()[2] is None:
                    raise ValueError("expected a property name after '.'")
                self.at += 1
            else:
                self.at += 1
                self.value()
                self.take("]")
        return None


def strings(node, path):
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key, f"{path}.{key}(key)")
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")


def lint(path):
    problems = []
    try:
        with open(path, encoding="utf-8") as f:
            template = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{path}: not a JSON file: {e}"]
    for key in ("$schema", "contentVersion", "resources"):
        if key not in template:
            problems.append(f"{path}: no {key}")
    parameters = template.get("parameters", {})
    variables = template.get("variables", {})
    resources = template.get("resources", [])
    declared_types = {r.get("type", "").lower() for r in resources}

    for name, spec in parameters.items():
        kind = str(spec.get("type", "")).lower()
        if kind not in PARAMETER_TYPES:
            problems.append(f"{path}: parameter {name} has type {spec.get('type')!r}")
            continue
        default = spec.get("defaultValue")
        expected = PYTHON_TYPES[kind]
        is_expression = isinstance(default, str) and default.startswith("[") and not default.startswith("[[")
        if default is not None and not is_expression and (
            not isinstance(default, expected) or (expected is int and isinstance(default, bool))
        ):
            problems.append(f"{path}: parameter {name}'s default {default!r} is not a {kind}")
        allowed = spec.get("allowedValues")
        if allowed is not None and default is not None and not is_expression and default not in allowed:
            problems.append(f"{path}: parameter {name}'s default {default!r} is not among its allowedValues")

    for where, text in strings(template, "$"):
        if not (text.startswith("[") and text.endswith("]")) or text.startswith("[["):
            continue
        try:
            expression = Expression(text[1:-1]).parse()
        except ValueError as e:
            problems.append(f"{path}: {where}: {e}: {text}")
            continue
        for function, first in expression.calls:
            if function not in FUNCTIONS:
                problems.append(f"{path}: {where}: {function}() is not an ARM template function")
            elif function == "parameters" and first not in parameters:
                problems.append(f"{path}: {where}: parameter {first!r} is not declared")
            elif function == "variables" and first not in variables:
                problems.append(f"{path}: {where}: variable {first!r} is not declared")
            if where.startswith("$.variables") and (function == "reference" or function.startswith("list")):
                problems.append(f"{path}: {where}: {function}() cannot be used in variables")

    for i, resource in enumerate(resources):
        label = f"{path}: resources[{i}] ({resource.get('type', '?')})"
        kind = resource.get("type", "")
        if "/" not in kind:
            problems.append(f"{label}: type has no namespace")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", str(resource.get("apiVersion", ""))):
            problems.append(f"{label}: apiVersion {resource.get('apiVersion')!r} is not a dated version")
        name = resource.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{label}: no name")
            continue
        levels = len(kind.split("/")) - 1
        if "scope" in resource or kind.lower() == "microsoft.authorization/roleassignments":
            levels = 1
        literal = re.match(r"\[format\('([^']*)'", name)
        if name.startswith("[") and literal is None:
            segments = None if levels > 1 else 1
        else:
            segments = len((literal.group(1) if literal else name).split("/"))
        if segments is not None and segments != levels:
            problems.append(f"{label}: name {name!r} has {segments} segment(s), its type takes {levels}")
        for dependency in resource.get("dependsOn", []):
            match = re.match(r"\[resourceId\('([^']+)'", dependency)
            if match and match.group(1).lower() not in declared_types:
                problems.append(f"{label}: depends on a {match.group(1)} the template does not declare")

    for name, output in template.get("outputs", {}).items():
        if "type" not in output or "value" not in output:
            problems.append(f"{path}: output {name} needs a type and a value")
    return problems


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    problems = [p for path in sys.argv[1:] for p in lint(path)]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
