"""The public preference formats, each in its published column schema and file types, imported
with the CLI, the API and the import page: every record, the original chosen, external ids,
metadata, Argilla's human responses and suggestions, and multi-turn prompts kept whole."""
import csv
import io
import json
import uuid

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from annotation.agreement import dataset_quality
from annotation.exports import triplets_export
from annotation.jobs import job_chunk_execute, job_create
from annotation.models import Dataset, Field, Job, Membership, Record, Response, Suggestion
from annotation.services import next_record_for
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

MSG = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))


def conv(*turns):
    """conv(("user", "hi"), ("assistant", "hello")) -> a message list."""
    return [{"content": c, "role": r} for r, c in turns]


# --- files in the published schemas ------------------------------------------------------------

def orca_rows(n=3):
    return [{"system": f"You are assistant {i}.", "question": f"What is {i}+{i}?", "chosen": f"It is {2 * i}.",
             "rejected": f"It is {2 * i + 1}."} for i in range(n)]


ORCA_SCHEMA = pa.schema([("system", pa.string()), ("question", pa.string()), ("chosen", pa.string()),
                         ("rejected", pa.string())])


def ultrafeedback_rows(n=3):
    rows = []
    for i in range(n):
        prompt = f"Write a haiku about {i}."
        chosen = conv(("user", prompt), ("assistant", f"good haiku {i}"))
        rows.append({"prompt": prompt, "prompt_id": f"{i:064x}", "chosen": chosen,
                     "rejected": conv(("user", prompt), ("assistant", f"bad haiku {i}")), "messages": chosen,
                     "score_chosen": 8.5, "score_rejected": 3.0})
    return rows


UF_SCHEMA = pa.schema([("prompt", pa.string()), ("prompt_id", pa.string()), ("chosen", MSG), ("rejected", MSG),
                       ("messages", MSG), ("score_chosen", pa.float64()), ("score_rejected", pa.float64())])


def clair_rows(n=3):
    return [{"prompt": f"Explain {i}.", "chosen": conv(("user", f"Explain {i}."), ("assistant", f"revised {i}")),
             "rejected": conv(("user", f"Explain {i}."), ("assistant", f"original {i}")),
             "rational": f"the revision fixes {i}"} for i in range(n)]


CLAIR_SCHEMA = pa.schema([("prompt", pa.string()), ("chosen", MSG), ("rejected", MSG), ("rational", pa.string())])

ARGILLA_USERS = [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]


def argilla_rows(n=3):
    rows = []
    for i in range(n):
        first_best = [{"rank": 1, "value": "response-1"}, {"rank": 2, "value": "response-2"}]
        second_best = [{"rank": 1, "value": "response-2"}, {"rank": 2, "value": "response-1"}]
        rows.append({
            "instruction": f"Question {i}?", "response-1": f"answer A{i}", "response-2": f"answer B{i}",
            "preference": [{"user_id": ARGILLA_USERS[0], "value": first_best, "status": "submitted"},
                           {"user_id": ARGILLA_USERS[1], "value": second_best if i == 0 else first_best,
                            "status": "discarded" if i == 2 else "submitted"}],
            "preference-suggestion": second_best,
            "preference-suggestion-metadata": {"type": "model", "score": 0.75, "agent": "gpt-4"},
            "external_id": f"arg-{i}", "metadata": json.dumps({"source": "evol", "round": i}),
        })
    return rows


RANK = pa.list_(pa.struct([("rank", pa.int64()), ("value", pa.string())]))
ARGILLA_SCHEMA = pa.schema([
    ("instruction", pa.string()), ("response-1", pa.string()), ("response-2", pa.string()),
    ("preference", pa.list_(pa.struct([("user_id", pa.string()), ("value", RANK), ("status", pa.string())]))),
    ("preference-suggestion", RANK),
    ("preference-suggestion-metadata", pa.struct([("type", pa.string()), ("score", pa.float64()), ("agent", pa.string())])),
    ("external_id", pa.string()), ("metadata", pa.string())])


def alpacafarm_rows():
    prefs = [1, 2, 0, 1.5]
    return [{"instruction": f"Task {i}", "input": "some input" if i == 0 else "", "output_1": f"first {i}",
             "output_2": f"second {i}", "preference": p} for i, p in enumerate(prefs)]


ALPACA_SCHEMA = pa.schema([("instruction", pa.string()), ("input", pa.string()), ("output_1", pa.string()),
                           ("output_2", pa.string()), ("preference", pa.float64())])


def write(tmp_path, name, rows, filetype, schema=None):
    path = tmp_path / f"{name}.{ {'ndjson': 'jsonl', 'json': 'json', 'csv': 'csv', 'parquet': 'parquet'}[filetype]}"
    if filetype == "ndjson":
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    elif filetype == "json":
        path.write_bytes(orjson.dumps(rows))
    elif filetype == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def cli(*args):
    out = io.StringIO()
    call_command("import_pairs", *map(str, args), "--quiet", stdout=out)
    return out.getvalue()


def created(workspace, name) -> Dataset:
    return workspace.datasets.get(name=name)


def chosen_text(record):
    return record.fields[record.metadata["original_chosen"]]


def other_text(record):
    return record.fields["response-2" if record.metadata["original_chosen"] == "response-1" else "response-1"]


# --- each format, each file type, through the CLI ----------------------------------------------

@pytest.mark.parametrize("filetype", ["ndjson", "json", "csv", "parquet"])
def test_orca_dpo_pairs_every_line_with_system_in_metadata(workspace, tmp_path, filetype):
    path = write(tmp_path, "orca", orca_rows(), filetype, ORCA_SCHEMA)
    text = cli("--workspace", workspace.name, "--create", "orca", path)
    assert "format: orca" in text and "3 created, 0 updated, 0 rejected of 3 lines" in text
    ds = created(workspace, "orca")
    assert ds.fields.get(name="prompt").kind == Field.Kind.TEXT
    for i in range(3):
        record = Record.objects.get(dataset=ds, fields__prompt=f"What is {i}+{i}?")
        assert chosen_text(record) == f"It is {2 * i}." and other_text(record) == f"It is {2 * i + 1}."
        assert record.metadata["system"] == f"You are assistant {i}."


@pytest.mark.parametrize("filetype", ["ndjson", "parquet"])
def test_ultrafeedback_binarized_prompt_id_and_scores(workspace, tmp_path, filetype):
    path = write(tmp_path, "uf", ultrafeedback_rows(), filetype, UF_SCHEMA)
    assert "3 created" in cli("--workspace", workspace.name, "--create", "uf", path)
    ds = created(workspace, "uf")
    assert sorted(ds.records.values_list("external_id", flat=True)) == [f"{i:064x}" for i in range(3)]
    record = Record.objects.get(dataset=ds, external_id=f"{1:064x}")
    assert chosen_text(record) == "good haiku 1" and other_text(record) == "bad haiku 1"
    assert record.fields["prompt"] == conv(("user", "Write a haiku about 1."))
    assert (record.metadata["score_chosen"], record.metadata["score_rejected"]) == (8.5, 3.0)
    assert "messages" not in record.metadata  # the chosen conversation again: not stored twice


@pytest.mark.parametrize("filetype", ["ndjson", "parquet"])
def test_clair_rationale_in_metadata(workspace, tmp_path, filetype):
    path = write(tmp_path, "clair", clair_rows(), filetype, CLAIR_SCHEMA)
    assert "3 created" in cli("--workspace", workspace.name, "--create", "clair", path)
    for record in created(workspace, "clair").records.all():
        i = record.fields["prompt"][0]["content"].split()[1].rstrip(".")
        assert chosen_text(record) == f"revised {i}" and other_text(record) == f"original {i}"
        assert record.metadata["rationale"] == f"the revision fixes {i}"


@pytest.mark.parametrize("filetype", ["ndjson", "csv", "parquet"])
def test_alpacafarm_preference_decides_the_chosen_and_keeps_ties(workspace, tmp_path, filetype):
    path = write(tmp_path, "alpaca", alpacafarm_rows(), filetype, ALPACA_SCHEMA)
    assert "4 created" in cli("--workspace", workspace.name, "--create", "alpaca", path)
    ds = created(workspace, "alpaca")
    by_task = {r.metadata["instruction"]: r for r in ds.records.all()}
    assert by_task["Task 0"].fields["prompt"] == "Task 0\n\nsome input" and by_task["Task 0"].metadata["input"] == "some input"
    assert chosen_text(by_task["Task 0"]) == "first 0" and other_text(by_task["Task 0"]) == "second 0"
    assert chosen_text(by_task["Task 1"]) == "second 1" and other_text(by_task["Task 1"]) == "first 1"
    for tie in ("Task 2", "Task 3"):
        assert by_task[tie].metadata["original_tie"] is True and "original_chosen" not in by_task[tie].metadata
        assert {by_task[tie].fields["response-1"], by_task[tie].fields["response-2"]} == {
            f"first {tie[-1]}", f"second {tie[-1]}"}


@pytest.mark.parametrize("filetype", ["ndjson", "parquet"])
def test_argilla_export_brings_records_human_responses_and_suggestions(workspace, tmp_path, filetype):
    path = write(tmp_path, "argilla", argilla_rows(), filetype, ARGILLA_SCHEMA)
    text = cli("--workspace", workspace.name, "--create", "argilla", path)
    assert "3 created" in text and "responses imported: 6" in text and "suggestions imported: 3" in text
    ds = created(workspace, "argilla")
    record = Record.objects.get(dataset=ds, external_id="arg-0")
    assert (record.fields["prompt"], record.fields["response-1"], record.fields["response-2"]) == (
        "Question 0?", "answer A0", "answer B0")  # kept in place: the human answers refer to them
    assert record.metadata["source"] == "evol" and record.metadata["round"] == 0
    members = Membership.objects.filter(workspace=workspace, user__username__in=[f"argilla-{u}" for u in ARGILLA_USERS])
    assert members.count() == 2 and all(m.is_imported and m.role == "annotator" for m in members)
    assert not any(m.user.has_usable_password() for m in members)
    r = Response.objects.get(record=record, user__username=f"argilla-{ARGILLA_USERS[1]}")
    assert r.status == "submitted" and r.values["ranking"] == [{"value": "response-2", "rank": 1},
                                                               {"value": "response-1", "rank": 2}]
    assert Response.objects.get(record__external_id="arg-2", user__username=f"argilla-{ARGILLA_USERS[1]}",
                                record__dataset=ds).status == "discarded"
    record.refresh_from_db()
    assert record.submitted_count == 2
    s = Suggestion.objects.get(record=record)
    assert (s.agent, s.score, s.value[0]["value"]) == ("gpt-4", 0.75, "response-2")
    # agreement and export count the imported annotators like people
    rows = list(triplets_export(dataset=ds, pairs="all", include_ties=True))
    assert {"arg-1", "arg-2"} <= {r["external_id"] for r in rows}
    assert next(r for r in rows if r["external_id"] == "arg-1")["chosen"] == "answer A1"
    assert dataset_quality(ds).pairs
    # re-importing updates, never duplicates
    cli(ds.pk, path)
    assert Response.objects.filter(dataset=ds).count() == 6 and Suggestion.objects.filter(record__dataset=ds).count() == 3


def test_argilla_user_ids_that_would_make_unreadable_names_are_refused(workspace, tmp_path):
    """An Argilla user_id with a text-direction override would become a spoofing user name in every list:
    its responses are not imported (a warning says why), the others are."""
    rows = argilla_rows()
    for row in rows:
        row["preference"][1]["user_id"] = "evil\u202eadmin"
    text = cli("--workspace", workspace.name, "--create", "argilla-spoof", write(tmp_path, "spoof", rows, "ndjson"))
    assert "3 created" in text and "responses imported: 3" in text
    assert "refused" in text and "U+202E" in text
    assert not Membership.objects.filter(user__username__contains="\u202e").exists()


def test_trl_implicit_prompt_multi_turn_kept_whole(workspace, tmp_path):
    history = conv(("system", "Be kind."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Tell me a joke"))
    rows = [{"chosen": history + conv(("assistant", "A funny joke")), "rejected": history + conv(("assistant", "No."))}]
    path = write(tmp_path, "implicit", rows, "parquet", pa.schema([("chosen", MSG), ("rejected", MSG)]))
    assert "format: trl-implicit" in cli("--workspace", workspace.name, "--create", "implicit", path)
    record = created(workspace, "implicit").records.get()
    assert record.fields["prompt"] == history
    assert chosen_text(record) == "A funny joke" and other_text(record) == "No."


# --- multi-turn: stored, shown, exported whole --------------------------------------------------

def multi_turn_rows():
    prompt = conv(("system", "You are terse."), ("user", "Hi <b>there</b>"), ("assistant", "Hello."),
                  ("user", "<script>alert(1)</script> What is 2+2?"))
    return [{"id": "mt-1", "prompt": prompt, "chosen": conv(("assistant", "4")), "rejected": conv(("assistant", "5"))}]


def test_multi_turn_prompt_is_stored_shown_and_exported_whole(workspace, tmp_path):
    path = write(tmp_path, "mt", multi_turn_rows(), "ndjson")
    cli("--workspace", workspace.name, "--create", "mt", path)
    ds = created(workspace, "mt")
    assert ds.fields.get(name="prompt").kind == Field.Kind.CHAT
    record = ds.records.get()
    assert record.fields["prompt"] == multi_turn_rows()[0]["prompt"]  # every turn, system included
    assert chosen_text(record) == "4" and other_text(record) == "5"
    # the annotate page shows the turns as a conversation, escaped
    user = UserFactory()
    MembershipFactory(user=user, workspace=workspace, role=Membership.Role.ANNOTATOR)
    Dataset.objects.filter(pk=ds.pk).update(status=Dataset.Status.PUBLISHED)
    client = Client()
    client.force_login(user)
    html = client.get(reverse("annotate", args=[ds.pk])).content.decode()
    for role in ("system", "user", "assistant"):
        assert f'<span class="role">{role}</span>' in html
    assert "You are terse." in html and "Hello." in html and "What is 2+2?" in html
    assert "<script>alert(1)</script>" not in html
    assert html.count('class="bubble bubble-user"') >= 2
    # the conversational export gives the whole history back; the standard one a readable flattening
    rec = next_record_for(user, ds) or record
    Response.objects.create(record=rec, dataset=ds, user=user, status="submitted",
                            values={"ranking": [{"value": record.metadata["original_chosen"], "rank": 1},
                                                {"value": "response-2" if record.metadata["original_chosen"] == "response-1"
                                                 else "response-1", "rank": 2}]})
    [c] = list(triplets_export(dataset=ds, style="conversational"))
    assert c["prompt"] == [{"role": m["role"], "content": m["content"]} for m in multi_turn_rows()[0]["prompt"]]
    assert c["chosen"] == [{"role": "assistant", "content": "4"}] and c["rejected"] == [{"role": "assistant", "content": "5"}]
    [s] = list(triplets_export(dataset=ds))
    assert s["prompt"] == ("System: You are terse.\n\nUser: Hi <b>there</b>\n\nAssistant: Hello.\n\n"
                           "User: <script>alert(1)</script> What is 2+2?")
    assert (s["chosen"], s["rejected"]) == ("4", "5")


def test_multi_turn_into_a_text_prompt_is_refused_not_cut(dataset, tmp_path):
    path = write(tmp_path, "mt", multi_turn_rows() + [{"prompt": conv(("user", "single")), "chosen": "a",
                                                       "rejected": "b"}], "ndjson")
    out = cli(dataset.pk, path)
    assert "line 1: rejected: prompt: a conversation of 4 turns needs a chat prompt field" in out
    assert "1 created, 0 updated, 1 rejected" in out
    assert Record.objects.get(dataset=dataset).fields["prompt"] == "single"


# --- detection, forcing, mapping, strict ------------------------------------------------------

def test_unknown_columns_name_the_formats_and_their_columns(dataset, tmp_path):
    path = write(tmp_path, "odd", [{"q": "x", "a": "y", "b": "z"}], "ndjson")
    with pytest.raises(CommandError) as err:
        cli(dataset.pk, path)
    message = str(err.value)
    assert "cannot tell the format from the columns q, a, b" in message and "nothing stored" in message
    for name, columns in (("orca", "question, chosen, rejected"), ("alpacafarm", "instruction, output_1, output_2, preference"),
                          ("trl-implicit", "chosen, rejected")):
        assert f"{name} ({columns})" in message
    with pytest.raises(CommandError, match="the orca format needs the columns question, chosen, rejected; this file lacks"):
        cli(dataset.pk, path, "--format", "orca")
    assert not Record.objects.filter(dataset=dataset).exists()


def test_mapping_renames_columns_and_unmapped_ones_go_to_metadata(dataset, tmp_path):
    rows = [{"question": "Q?", "answer_a": "A", "answer_b": "B", "judge": "x", "qid": "k1"}]
    path = write(tmp_path, "mapped", rows, "csv")
    out = cli(dataset.pk, path, "--map", "prompt=question", "--map", "response-1=answer_a", "--map",
              "response-2=answer_b", "--map", "id=qid")
    assert "1 created" in out
    record = Record.objects.get(dataset=dataset, external_id="k1")
    assert (record.fields["prompt"], record.fields["response-1"], record.fields["response-2"]) == ("Q?", "A", "B")
    assert record.metadata["judge"] == "x" and "original_chosen" not in record.metadata
    with pytest.raises(CommandError, match="nothing stored"):
        cli(dataset.pk, path, "--map", "prompt=question", "--map", "response-1=answer_a", "--map",
            "response-2=answer_b", "--strict")
    with pytest.raises(CommandError, match="the accepted targets are"):
        cli(dataset.pk, path, "--map", "question_text=question")
    with pytest.raises(CommandError, match="the mapping names columns this file does not have: nope"):
        cli(dataset.pk, path, "--map", "prompt=nope")


def test_strict_names_the_extra_columns(dataset, tmp_path):
    rows = orca_rows(1)
    rows[0]["extra_col"] = 1
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_pairs", str(dataset.pk), str(write(tmp_path, "o", rows, "ndjson")), "--strict", "--quiet",
                     stdout=out)
    assert "columns: not read by the orca format: extra_col" in out.getvalue()


# --- nothing stored -----------------------------------------------------------------------------

def test_every_line_rejected_fails_and_create_leaves_no_dataset(workspace, tmp_path):
    path = write(tmp_path, "bad", [{"prompt": "q", "chosen": "", "rejected": "r"}] * 3, "ndjson")
    with pytest.raises(CommandError, match="nothing stored: all 3 of 3 lines were rejected"):
        cli("--workspace", workspace.name, "--create", "empty", path)
    assert not workspace.datasets.filter(name="empty").exists()
    odd = write(tmp_path, "odd", [{"x": 1}], "ndjson")
    with pytest.raises(CommandError, match="cannot tell the format"):
        cli("--workspace", workspace.name, "--create", "empty", odd)
    assert not workspace.datasets.filter(name="empty").exists()


def test_parquet_is_read_as_parquet_whatever_its_name(dataset, tmp_path):
    path = write(tmp_path, "orca", orca_rows(), "parquet", ORCA_SCHEMA)
    renamed = path.rename(tmp_path / "orca.jsonl")
    assert "3 created" in cli(dataset.pk, renamed)


# --- API ---------------------------------------------------------------------------------------

def api_url(ds, query=""):
    return f"/api/v1/datasets/{ds.pk}/import-pairs/{query}"


def q(**params):
    from urllib.parse import urlencode
    return "?" + urlencode(params)


@pytest.mark.parametrize("name,rows,filetype,schema,ctype", [
    ("orca", orca_rows(), "csv", None, "text/csv"),
    ("orca", orca_rows(), "parquet", ORCA_SCHEMA, "application/vnd.apache.parquet"),
    ("ultrafeedback", ultrafeedback_rows(), "parquet", UF_SCHEMA, "application/json"),  # sniffed: Parquet
    ("clair", clair_rows(), "json", None, "application/json"),
    ("alpacafarm", alpacafarm_rows(), "ndjson", None, "application/x-ndjson"),
    ("argilla", argilla_rows(), "parquet", ARGILLA_SCHEMA, "application/vnd.apache.parquet"),
])
def test_api_imports_each_format(workspace, admin_client_api, tmp_path, name, rows, filetype, schema, ctype):
    from annotation.imports import pairs_dataset_create

    ds = pairs_dataset_create(workspace=workspace, name=name, prompt_kind="chat")
    body = write(tmp_path, name, rows, filetype, schema).read_bytes()
    resp = admin_client_api.generic("POST", api_url(ds, "?seed=5"), body, content_type=ctype)
    assert resp.status_code == 200, resp.content
    assert resp.json()["created"] == len(rows) and resp.json()["rejected_count"] == 0
    if name == "argilla":
        assert resp.json()["responses_imported"] == 6 and resp.json()["suggestions_imported"] == 3
        members = admin_client_api.get(f"/api/v1/workspaces/{workspace.pk}/members/").json()
        members = members.get("results", members) if isinstance(members, dict) else members
        imported = {m["username"] for m in members if m["is_imported"]}
        assert imported == {f"argilla-{u}" for u in ARGILLA_USERS}
    else:
        assert all("original_chosen" in r.metadata or r.metadata.get("original_tie") for r in ds.records.all())


def test_api_format_mapping_strict_and_nothing_stored(dataset, admin_client_api):
    body = orjson.dumps({"question": "Q", "good": "G", "bad": "B", "note": "n"}) + b"\n"
    resp = admin_client_api.generic("POST", api_url(dataset), body, content_type="application/x-ndjson")
    assert resp.status_code == 400 and "cannot tell the format" in resp.json()["detail"]
    mapping = json.dumps({"prompt": "question", "chosen": "good", "rejected": "bad"})
    resp = admin_client_api.generic("POST", api_url(dataset, q(format="trl", strict="true", mapping=mapping)), body,
                                    content_type="application/x-ndjson")
    assert resp.status_code == 400 and resp.json()["detail"] == "nothing stored: all 1 of 1 lines were rejected"
    assert "not read by the trl format: note" in resp.json()["rejected"][0]["reason"]
    resp = admin_client_api.generic("POST", api_url(dataset, q(mapping=mapping)), body,
                                    content_type="application/x-ndjson")
    assert resp.status_code == 200 and resp.json()["created"] == 1
    record = Record.objects.get(dataset=dataset)
    assert chosen_text(record) == "G" and record.metadata["note"] == "n"
    resp = admin_client_api.generic("POST", api_url(dataset, "?format=nope"), body, content_type="application/x-ndjson")
    assert resp.status_code == 400 and "format" in resp.json()


# --- jobs and the import page -------------------------------------------------------------------

def test_import_job_of_every_line_rejected_fails_with_nothing_stored(dataset, tmp_path):
    path = write(tmp_path, "bad", [{"prompt": "q", "chosen": "c", "rejected": ""}], "ndjson")
    job = job_create(kind="import", workspace=dataset.workspace, dataset=dataset, input_file=str(path),
                     params={"format": "pairs"}, start=False)
    job_chunk_execute(job_id=job.pk, index=0)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "nothing stored" in job.error


def test_import_page_previews_columns_escaped_and_imports_with_the_mapping(dataset, admin_user, tmp_path):
    client = Client()
    client.force_login(admin_user)
    rows = [{"q": "<img src=x onerror=alert(1)>", "A": "a", "B": "b"}]
    body = write(tmp_path, "p", rows, "csv").read_bytes()

    def upload():
        from django.core.files.uploadedfile import SimpleUploadedFile
        return SimpleUploadedFile("p.csv", body, content_type="text/csv")

    preview = client.post(reverse("dataset-import-preview", args=[dataset.pk]), {"file": upload(), "format": "pairs"},
                          HTTP_HX_REQUEST="true")
    html = preview.content.decode()
    assert preview.status_code == 200 and "cannot tell the format" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '<option value="q">q</option>' in html and 'name="map-prompt"' in html
    mapped = client.post(reverse("dataset-import-preview", args=[dataset.pk]),
                         {"file": upload(), "format": "pairs", "map-prompt": "q", "map-chosen": "A", "map-rejected": "B"})
    assert 'data-preview-format="trl"' in mapped.content.decode()
    resp = client.post(reverse("dataset-import", args=[dataset.pk]),
                       {"file": upload(), "format": "pairs", "map-prompt": "q", "map-chosen": "A", "map-rejected": "B"})
    assert resp.status_code == 302
    job = Job.objects.get(dataset=dataset, kind="import")
    assert job.params["mapping"] == {"prompt": "q", "chosen": "A", "rejected": "B"}
    job_chunk_execute(job_id=job.pk, index=0)
    assert chosen_text(Record.objects.get(dataset=dataset)) == "a"


# --- dataset creation ---------------------------------------------------------------------------

def test_a_dataset_whose_prompt_field_is_missing_is_refused_at_creation(workspace, admin_client_api, admin_user):
    body = {"workspace": workspace.pk, "name": "np",
            "fields": [{"name": "question", "kind": "text"}, {"name": "response-1", "kind": "markdown"},
                       {"name": "response-2", "kind": "markdown"}],
            "questions": [{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}}]}
    resp = admin_client_api.post("/api/v1/datasets/", body, format="json")
    assert resp.status_code == 400 and "prompt_field" in json.dumps(resp.json())
    assert not Dataset.objects.filter(name="np").exists()
    assert admin_client_api.post("/api/v1/datasets/", {**body, "prompt_field": "question"}, format="json").status_code == 201

    client = Client()
    client.force_login(admin_user)
    resp = client.post(reverse("dataset-create"), {
        "workspace": workspace.pk, "name": "np2", "preset": "advanced", "min_submitted": 1, "responses": 2,
        "response_kind": "markdown",
        "fields_json": json.dumps(body["fields"]), "questions_json": json.dumps(body["questions"])})
    assert resp.status_code == 422 and "&#x27;prompt&#x27; is not a field of this dataset" in resp.content.decode()
    assert not Dataset.objects.filter(name="np2").exists()


def test_unreadable_lines_first_then_the_format_is_told_from_the_first_object(dataset, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"{broken\n[1, 2]\n" + orjson.dumps(orca_rows(1)[0]) + b"\n")
    out = cli(dataset.pk, path)
    assert "line 1: rejected: malformed JSON" in out and "line 2: rejected: record: must be an object" in out
    assert "1 created, 0 updated, 2 rejected of 3 lines" in out
    assert Record.objects.get(dataset=dataset).metadata["system"] == "You are assistant 0."


def test_api_sniffs_json_lines_sent_with_any_content_type(dataset, admin_client_api):
    body = b"\n".join(orjson.dumps(r) for r in orca_rows(2))
    resp = admin_client_api.generic("POST", api_url(dataset), body, content_type="text/plain")
    assert resp.status_code == 200 and resp.json()["created"] == 2


def test_import_records_command_fails_when_nothing_is_stored(dataset, tmp_path):
    path = tmp_path / "recs.jsonl"
    path.write_bytes(b'{"external_id": "a", "fields": {"nope": 1}}\n')
    with pytest.raises(CommandError, match="nothing stored: all 1 of 1 lines were rejected"):
        call_command("import_records", str(dataset.pk), str(path), "--quiet", stdout=io.StringIO())
