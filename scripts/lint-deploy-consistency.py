#!/usr/bin/env python3
"""Checks that the deployment recipes in deploy/ say what the code and its docs say.

Run by scripts/lint-deploy with the tools' Python (it needs cfn-lint's template loader, which
reads CloudFormation's short-form tags such as !Sub). From the repository root:

- the SAM template's DynamoDB table has the keys, attributes and indexes that
  `DynamoDatabase::create_table` creates (adapters/thisthat-aws/src/database/schema.rs);
- its IAM policy grants exactly the actions docs/aws.md's policy lists (plus writing logs);
- deploy/gcp/firestore.indexes.json holds exactly the indexes docs/gcp.md lists;
- every THISTHAT_* variable the templates set is one the `thisthat` binary reads.

Exit status 1 with one line per difference.
"""

import json
import re
import sys
from pathlib import Path

from cfnlint.decode import decode

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def json_block_after(markdown, heading):
    """The first ```json block after the text `heading` in a Markdown file."""
    text = Path(markdown).read_text(encoding="utf-8")
    match = re.search(re.escape(heading) + r".*?```json\n(.*?)```", text, re.S)
    if match is None:
        raise SystemExit(f"{markdown}: no JSON block after {heading!r}")
    return json.loads(match.group(1))


def aws():
    template, matches = decode("deploy/aws/template.yaml")
    if template is None:
        raise SystemExit(f"deploy/aws/template.yaml does not load: {matches}")
    resources = template["Resources"]

    # The table, against the code that creates it.
    code = Path("adapters/thisthat-aws/src/database/schema.rs").read_text(encoding="utf-8")
    body = code[code.index("pub async fn create_table"):]
    body = body[: body.index("\n    }\n")]
    constants = dict(re.findall(r'const (\w+_INDEX): &str = "(\w+)";', code))
    attributes = re.findall(r'attribute\("(\w+)"\)\?', body)
    indexes = {constants[name]: partition for name, partition in re.findall(r"index\(\s*(\w+),\s*\"(\w+)\"", body)}
    included = re.findall(r'non_key_attributes\("(\w+)"\)', body)
    check(attributes and indexes and included, "database/schema.rs: create_table no longer reads as expected; update this check")
    table = resources["Table"]["Properties"]
    check(sorted(a["AttributeName"] for a in table["AttributeDefinitions"]) == sorted(attributes),
          f"template table attributes differ from create_table's {attributes}")
    check(all(a["AttributeType"] == "S" for a in table["AttributeDefinitions"]), "create_table's attributes are all strings")
    check([(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")],
          "template table keys are not pk (HASH), sk (RANGE)")
    check(table.get("BillingMode") == "PAY_PER_REQUEST", "create_table uses on-demand billing")
    gsis = {g["IndexName"]: g for g in table["GlobalSecondaryIndexes"]}
    check(sorted(gsis) == sorted(indexes), f"template indexes {sorted(gsis)} differ from create_table's {sorted(indexes)}")
    for name, partition in indexes.items():
        gsi = gsis.get(name)
        if gsi is None:
            continue
        check([(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] == [(partition, "HASH"), ("id", "RANGE")],
              f"index {name}: keys differ from create_table's ({partition}, id)")
    check(gsis.get("feed", {}).get("Projection") == {"ProjectionType": "INCLUDE", "NonKeyAttributes": included},
          f"index feed: projection differs from create_table's INCLUDE {included}")
    check(gsis.get("pending", {}).get("Projection") == {"ProjectionType": "KEYS_ONLY"},
          "index pending: create_table projects keys only")

    # The policy, against docs/aws.md.
    documented = {a for s in json_block_after("docs/aws.md", "## IAM permissions")["Statement"]
                  for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    statements = resources["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    granted = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    granted -= {"logs:CreateLogStream", "logs:PutLogEvents"}
    check(granted == documented, f"template grants {sorted(granted - documented)} beyond docs/aws.md and lacks "
                                 f"{sorted(documented - granted)}")
    check(not any("*" in a for a in granted), "no wildcard actions")
    return template


def gcp():
    documented = json_block_after("docs/gcp.md", "Indexes needed in production")["indexes"]
    shipped = json.loads(Path("deploy/gcp/firestore.indexes.json").read_text(encoding="utf-8"))
    check(shipped.get("indexes") == documented, "deploy/gcp/firestore.indexes.json differs from docs/gcp.md's indexes")


def variables_read_by_the_binary():
    source = "\n".join(p.read_text(encoding="utf-8") for p in Path("crates/thisthat-cli/src").glob("*.rs"))
    return set(re.findall(r'"(THISTHAT_[A-Z_]+)"', source))


def environment(template):
    read = variables_read_by_the_binary()
    check("THISTHAT_STORAGE" in read, "the binary no longer names THISTHAT_STORAGE; update this check")
    aws_names = set(template["Resources"]["Function"]["Properties"]["Environment"]["Variables"])
    gcp_names = set(re.findall(r"name: (THISTHAT_[A-Z_]+)", Path("deploy/gcp/service.yaml").read_text(encoding="utf-8")))
    azure_names = set(re.findall(r'"(THISTHAT_[A-Z_]+)"', Path("deploy/azure/azuredeploy.json").read_text(encoding="utf-8")))
    for where, names in (("deploy/aws/template.yaml", aws_names), ("deploy/gcp/service.yaml", gcp_names),
                         ("deploy/azure/azuredeploy.json", azure_names)):
        names = {n for n in names if n.startswith("THISTHAT_")}
        check(names, f"{where}: sets no THISTHAT_* variable")
        unknown = names - read
        check(not unknown, f"{where}: sets {sorted(unknown)}, which the thisthat binary does not read")
        ports = {"THISTHAT_STORAGE", "THISTHAT_DATABASE", "THISTHAT_NOTIFIER", "THISTHAT_CLASSIFIER"}
        check(ports <= names, f"{where}: does not set {sorted(ports - names)}")


def main():
    template = aws()
    gcp()
    environment(template)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
