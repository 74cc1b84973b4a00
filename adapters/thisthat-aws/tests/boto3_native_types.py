"""Reads, with boto3 (the official AWS SDK for Python), what thisthat-aws stored in moto, and
checks that a competition reads as native DynamoDB types."""
import os, json, boto3
from boto3.dynamodb.types import TypeDeserializer
url = os.environ["THISTHAT_MOTO_URL"]
d = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing")
def kinds(v):
    (t, x), = v.items()
    if t == "M": return {k: kinds(y) for k, y in x.items()}
    if t == "L": return [kinds(y) for y in x[:2]] + (["…"] if len(x) > 2 else [])
    return t
checked = 0
for table in d.list_tables()["TableNames"]:
    for item in d.scan(TableName=table)["Items"]:
        if item.get("sk", {}).get("S") == "competition" and "outcome" in item and item["photos"]["L"]:
            assert "body" not in item and "notification" not in item, item.keys()
            assert item["title"].keys() == {"S"} and item["created_at"].keys() == {"N"}
            assert item["outcome"]["M"]["tally"]["L"][0].keys() == {"N"}
            assert item["outcome"]["M"]["winners"]["L"][0].keys() == {"N"}
            photo = item["photos"]["L"][0]["M"]
            assert photo["labels"]["L"][0]["M"]["confidence"].keys() == {"N"}
            if checked == 0:
                shown = {k: kinds(v) for k, v in item.items() if k not in ("ballots", "turns")}
                shown["ballots (one)"] = kinds(next(iter(item["ballots"]["M"].values())))
                shown["turns (one)"] = kinds(next(iter(item["turns"]["M"].values())))
                print(json.dumps(shown, indent=1, sort_keys=True))
                py = {k: TypeDeserializer().deserialize(v) for k, v in item.items() if k in ("title", "outcome", "created_at", "tally")}
                print(py)
            checked += 1
        if item.get("sk", {}).get("S", "").startswith("device#"):
            assert set(item) == {"pk", "sk", "user", "platform", "token", "address"}, item.keys()
            assert all(v.keys() == {"S"} for v in item.values())
print("closed competitions checked:", checked)
assert checked > 0
