"""Reads, with azure-data-tables (Microsoft's official Table SDK for Python), what thisthat-azure
stored in Azurite, and checks that every entity reads as native types: strings, ints, booleans
and datetimes, "none" an absent property, and no JSON text but the photos document.

Run it after Rust tests have left data in the same Azurite (see docs/azure.md, "Checked with
the Python SDK")."""
import datetime, json, os

from azure.data.tables import TableServiceClient

url = os.environ["THISTHAT_AZURITE_TABLE_URL"].rstrip("/")
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
service = TableServiceClient.from_connection_string(
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};TableEndpoint={url};"
)


def numbered(entity, prefix):
    return sorted(k for k in entity if k.startswith(prefix) and k[len(prefix):].isdigit())


def no_json_text(entity, allowed=()):
    for name, value in entity.items():
        if isinstance(value, str) and name not in allowed:
            assert value not in ("", "null"), (name, value)
            try:
                parsed = json.loads(value)
            except ValueError:
                continue
            assert not isinstance(parsed, (dict, list)), f"{name} holds JSON text: {value}"


counts = {"competition": 0, "closed": 0, "vote": 0, "notification": 0, "feed": 0, "device": 0}
shown = False
for table in service.list_tables():
    for e in service.get_table_client(table.name).list_entities():
        pk, rk = e["PartitionKey"], e["RowKey"]
        if rk == "competition":
            counts["competition"] += 1
            assert not {"Body", "Standing", "Outcome"} & set(e), e.keys()
            assert isinstance(e["Owner"], str) and isinstance(e["Status"], str)
            assert "Title" not in e or isinstance(e["Title"], str) and e["Title"]
            assert type(e["PhotoCount"]) is int and type(e["VotesToClose"]) is int
            assert isinstance(e["CreatedAt"], datetime.datetime), type(e["CreatedAt"])
            assert len(numbered(e, "Tally")) == e["PhotoCount"]
            assert all(type(e[k]) is int for k in numbered(e, "Tally"))
            assert all(isinstance(e[k], str) for k in numbered(e, "Category"))
            photos = json.loads(e["Photos"])
            assert isinstance(photos, list) and len(photos) == e["PhotoCount"]
            if "WinnerCount" in e:
                counts["closed"] += 1
                assert e["Status"] == "closed"
                assert len(numbered(e, "Winner")) == e["WinnerCount"]
                assert all(type(e[k]) is int for k in numbered(e, "Winner") + numbered(e, "OutcomeTally"))
                if not shown and photos and photos[0]["labels"]:
                    shown = True
                    print({k: (type(v).__name__, v if k != "Photos" else "[...]") for k, v in e.items()})
            else:
                assert not numbered(e, "Winner") and not numbered(e, "OutcomeTally")
            no_json_text(e, allowed=("Photos",))
        elif rk.startswith("vote_"):
            counts["vote"] += 1
            assert isinstance(e["Voter"], str) and type(e["Choice"]) is int
            assert "Closed" not in e or type(e["Closed"]) is bool
            no_json_text(e)
        elif rk == "notification":
            counts["notification"] += 1
            assert type(e["Delivered"]) is bool and isinstance(e["Owner"], str)
            assert type(e["WinnerCount"]) is int
            for t in ("LeaseUntil", "DeliveredAt"):
                assert t not in e or isinstance(e[t], datetime.datetime), (t, type(e[t]))
            assert all(e[k] is True for k in e if k.startswith("DeliveredTo_"))
            assert "Notification" not in e
            no_json_text(e)
        elif pk == "feed":
            counts["feed"] += 1
            assert isinstance(e["Id"], str) and isinstance(e["Owner"], str)
            assert all(e[k] is True for k in e if k.startswith("Category"))
            assert "Categories" not in e
        elif pk.startswith("user_"):
            counts["device"] += 1
            assert set(e) == {"PartitionKey", "RowKey", "User", "Platform", "Token", "Address"}, e.keys()
            assert all(isinstance(v, str) for v in e.values())
print("entities checked:", counts)
assert counts["closed"] > 0 and counts["notification"] > 0 and counts["device"] > 0
