"""The Python client (client/, package preflab_client) against a live server (gunicorn on the test
database, as tests/annotation/test_import_server.py starts it)."""
import json

import httpx
import pytest

from annotation.models import Membership, Record, Response
from tests.annotation import test_import_server
from tests.factories import MembershipFactory, ResponseFactory, TokenFactory, UserFactory, WorkspaceFactory
from tests.helpers import need

try:
    import preflab_client
except ImportError:  # pip install -e ./client (.ci/test does)
    preflab_client = None

server = test_import_server.server  # the live server fixture
pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = [{"name": "prompt", "kind": "text"}, {"name": "response-1", "kind": "text"},
          {"name": "response-2", "kind": "text"}]
QUESTIONS = [{"name": "ranking", "kind": "ranking", "options": {"values": ["response-1", "response-2"]}}]


@pytest.fixture
def live(server):
    need(preflab_client is not None, "preflab_client", "not installed (pip install -e ./client)")
    workspace = WorkspaceFactory()
    admin = UserFactory(username="client-admin")
    MembershipFactory(user=admin, workspace=workspace, role=Membership.Role.ADMIN)
    token = TokenFactory(user=admin)
    with preflab_client.Client(server, token=token.key, backoff=0.01) as client:
        yield client, workspace


def _rank_all(dataset_id: int, better: str = "response-1") -> None:
    worse = "response-2" if better == "response-1" else "response-1"
    user = UserFactory()
    for record in Record.objects.filter(dataset_id=dataset_id):
        ResponseFactory(record=record, user=user, values={"ranking": [{"value": better, "rank": 1},
                                                                      {"value": worse, "rank": 2}]},
                        display_order=["response-1", "response-2"])


def test_readme_example_from_a_dataset_to_a_dpo_ready_dataset(live):
    from datasets import Dataset

    client, workspace = live
    # --- as in README ---
    source = Dataset.from_dict({"question": ["What is 2+2?", "Name a colour."], "a": ["4", "Blue"],
                                "b": ["5", "Seven"], "id": ["q1", "q2"]})
    ds = client.create_dataset(workspace=workspace.pk, name="arith", fields=FIELDS, questions=QUESTIONS)
    client.log(ds, source, mapping={"id": "external_id", "question": "prompt", "a": "response-1", "b": "response-2"},
               progress=False)
    _rank_all(ds["id"])  # annotators rank in the browser
    dpo = client.triplets(ds, trl_margin="vote_margin")
    # ---
    assert isinstance(dpo, Dataset) and dpo.num_rows == 2
    assert dpo["prompt"] == ["What is 2+2?", "Name a colour."] and dpo["chosen"] == ["4", "Blue"]
    assert dpo["rejected"] == ["5", "Seven"] and dpo["margin"] == [1.0, 1.0]
    assert dpo.features["annotators"].dtype == "int64" and dpo.features["tie"].dtype == "bool"


def test_log_in_batches_from_dicts_and_pandas_with_a_progress_bar(live, capsys):
    import pandas as pd

    client, workspace = live
    ds = client.create_dataset(workspace=workspace.pk, name="many", fields=FIELDS, questions=QUESTIONS)
    rows = [{"external_id": f"e{i}", "prompt": f"p{i}", "response-1": "x", "response-2": "y", "metadata.topic": "t"}
            for i in range(7)]
    report = client.log(ds, rows, batch_size=3)
    assert report["created"] == 7 and report["total_lines"] == 7
    assert "7/7" in capsys.readouterr().err  # tqdm's bar
    stored = Record.objects.get(dataset_id=ds["id"], external_id="e6")
    assert stored.fields == {"prompt": "p6", "response-1": "x", "response-2": "y"} and stored.metadata == {"topic": "t"}
    frame = pd.DataFrame({"external_id": ["e0", "f1"], "prompt": ["new", "q"], "response-1": ["a", "b"],
                          "response-2": ["c", "d"], "priority": [2.0, 0.0]})
    report = client.log(ds, frame, progress=False)
    assert (report["created"], report["updated"]) == (1, 1)
    assert Record.objects.get(dataset_id=ds["id"], external_id="e0").fields["prompt"] == "new"


def test_rejected_lines_and_server_errors_carry_the_line_and_the_reason(live):
    client, workspace = live
    with pytest.raises(preflab_client.PreflabError) as err:
        client.create_dataset(workspace=workspace.pk, name="bad", fields=FIELDS,
                              questions=[{"name": "ranking", "kind": "ranking", "options": {"values": ["nope"]}}])
    assert err.value.status == 400 and err.value.field == "questions[0].options.values"
    assert "at least two fields" in err.value.reason
    ds = client.create_dataset(workspace=workspace.pk, name="strict", fields=FIELDS, questions=QUESTIONS)
    rows = [{"external_id": f"e{i}", "prompt": "p", "response-1": "x", "response-2": "y"} for i in range(5)]
    rows[3]["prompt\x00"] = "unknown field with a NUL"
    with pytest.raises(preflab_client.RejectedLines) as err:
        client.log(ds, rows, batch_size=2, progress=False)
    assert err.value.line == 4 and err.value.rejected[0]["line"] == 4  # line 2 of the second batch
    assert err.value.reason and err.value.stored == 4
    assert Record.objects.filter(dataset_id=ds["id"]).count() == 4  # the valid lines are stored
    with pytest.raises(preflab_client.PreflabError) as err:
        client.triplets(ds, trl_margin="loudness")
    assert err.value.status == 400 and err.value.field == "trl_margin" and "must be one of" in err.value.reason
    with pytest.raises(preflab_client.PreflabError) as err:
        client.triplets(999_999)
    assert err.value.status == 404


def test_import_pairs_from_records_and_from_a_file(live, tmp_path):
    client, workspace = live
    ds = client.create_dataset(workspace=workspace.pk, name="pairs", fields=FIELDS, questions=QUESTIONS)
    report = client.import_pairs(ds, [{"q": "Why?", "good": "Because.", "bad": "No.", "key": "k1"}],
                                 mapping={"q": "prompt", "good": "chosen", "bad": "rejected", "key": "id"},
                                 progress=False)
    assert report["created"] == 1
    file = tmp_path / "pairs.jsonl"
    file.write_text(json.dumps({"id": "k2", "prompt": "How?", "chosen": "Thus.", "rejected": "?", "system": "S"}) + "\n")
    report = client.import_pairs(ds, file, format="jsonl")
    assert report["created"] == 1
    record = Record.objects.get(dataset_id=ds["id"], external_id="k2")
    assert record.metadata["system"] == "S" and set(record.fields.values()) == {"How?", "Thus.", "?"}


def test_exports_and_leaderboard_as_datasets_or_lists(live):
    from datasets import Dataset

    client, workspace = live
    ds = client.create_dataset(workspace=workspace.pk, name="board", fields=FIELDS, questions=QUESTIONS)
    client.log(ds, [{"external_id": f"e{i}", "prompt": f"p{i}", "response-1": "long answer", "response-2": "short",
                     "metadata": {"models": {"response-1": "big", "response-2": "small"}}} for i in range(3)],
               progress=False)
    _rank_all(ds["id"])
    responses = client.responses(ds)
    assert isinstance(responses, Dataset) and responses.num_rows == 3
    assert set(responses["status"]) == {"submitted"} and responses.features["display_order"].feature.dtype == "string"
    assert client.responses(ds, status="discarded", as_list=True) == []
    Record.objects.filter(dataset_id=ds["id"], external_id="e0").update(is_gold=True)
    assert len(client.responses(ds, as_list=True)) == 2  # gold records are left out unless asked
    assert len(client.responses(ds, include_gold=True, include_excluded=False, as_list=True)) == 3
    Record.objects.filter(dataset_id=ds["id"], external_id="e0").update(is_gold=False)
    unpaired = client.unpaired(ds, style="conversational")
    assert unpaired.num_rows == 6 and sorted(unpaired["label"]) == [False, False, False, True, True, True]
    as_list = client.triplets(ds, as_list=True)
    assert [r["chosen"] for r in as_list] == ["long answer"] * 3 and "margin" not in as_list[0]
    board = client.leaderboard(ds, reference="small", as_list=True)
    by_model = {row["model"]: row for row in board}
    assert by_model["big"]["win_rate"] > by_model["small"]["win_rate"]
    assert isinstance(client.leaderboard(ds, reference="small"), Dataset)
    assert Response.objects.filter(dataset_id=ds["id"]).count() == 3


def test_retries_when_the_server_is_briefly_unavailable(server, live):
    _, workspace = live
    calls = []

    class Flaky(httpx.BaseTransport):
        def __init__(self):
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request):
            calls.append(request.url.path)
            if len(calls) <= 2:
                return httpx.Response(503, json={"detail": "restarting"})
            return self.inner.handle_request(request)

    from rest_framework.authtoken.models import Token

    token = Token.objects.get(user=Membership.objects.get(workspace=workspace, role="admin").user)
    client = preflab_client.Client(server, token=token.key, transport=Flaky(), backoff=0.01)
    ds = client.create_dataset(workspace=workspace.pk, name="flaky", fields=FIELDS, questions=QUESTIONS)
    assert ds["name"] == "flaky" and len(calls) == 3
    stubborn = preflab_client.Client(server, token=token.key, retries=1, backoff=0.01,
                                     transport=httpx.MockTransport(lambda r: httpx.Response(503, json={"detail": "down"})))
    with pytest.raises(preflab_client.PreflabError) as err:
        stubborn.triplets(ds)
    assert err.value.status == 503 and err.value.reason == "down"
