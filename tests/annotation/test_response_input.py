"""The submit body's plain check (ResponseListCreateApi.InputSerializer.plain_validated) gives exactly what the
serializer gives, and leaves every body it is not sure of, each invalid one included, to the serializer."""
import pytest

from annotation.api_common import validated_input
from annotation.apis import ResponseListCreateApi

Input = ResponseListCreateApi.InputSerializer
RANKING = {"ranking": [{"value": "a", "rank": 1}, {"value": "b", "rank": 2}]}

TAKEN = [
    {"values": RANKING, "status": "submitted"},
    {"values": RANKING, "status": "draft", "display_order": ["b", "a"], "duration": 3.5},
    {"values": {}, "status": "discarded", "display_order": [], "duration": 0},
    {"values": [1, "x", None], "status": "submitted", "duration": 7},
    {"values": "text", "status": "submitted", "duration": 0.0},
]
LEFT = [
    None, [], "x", {},
    {"values": RANKING},
    {"status": "submitted"},
    {"values": None, "status": "submitted"},
    {"values": RANKING, "status": "submitted", "extra": 1},
    {"values": RANKING, "status": "sent"},
    {"values": RANKING, "status": ""},
    {"values": RANKING, "status": 1},
    {"values": RANKING, "status": "submitted", "display_order": "ab"},
    {"values": RANKING, "status": "submitted", "display_order": ["a", ""]},
    {"values": RANKING, "status": "submitted", "display_order": [" a", "b"]},
    {"values": RANKING, "status": "submitted", "display_order": ["a", 2]},
    {"values": RANKING, "status": "submitted", "display_order": ["a", None]},
    {"values": RANKING, "status": "submitted", "display_order": ["a\x00"]},
    {"values": RANKING, "status": "submitted", "display_order": ["réponse"]},
    {"values": RANKING, "status": "submitted", "display_order": None},
    {"values": RANKING, "status": "submitted", "duration": -1},
    {"values": RANKING, "status": "submitted", "duration": True},
    {"values": RANKING, "status": "submitted", "duration": "3"},
    {"values": RANKING, "status": "submitted", "duration": None},
    {"values": RANKING, "status": "submitted", "duration": float("nan")},
    {"values": RANKING, "status": "submitted", "duration": float("inf")},
    {"values": RANKING, "status": "submitted", "duration": 10**400},
]


def _serializer(data):
    serializer = Input(data=data)
    return dict(serializer.validated_data) if serializer.is_valid() else serializer.errors


@pytest.mark.parametrize("data", TAKEN)
def test_a_well_formed_body_gives_what_the_serializer_gives(data):
    plain = Input.plain_validated(data)
    assert plain is not None
    expected = _serializer(data)
    assert plain == expected and [type(v) for v in plain.values()] == [type(expected[k]) for k in plain]
    assert validated_input(Input, data) == expected


@pytest.mark.parametrize("data", LEFT, ids=repr)
def test_any_other_body_is_left_to_the_serializer(data):
    assert Input.plain_validated(data) is None
