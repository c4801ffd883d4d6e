"""An imported preference set where a judge flipped some pairs (suggestions written directly, no LLM)."""
import io
import json

from annotation.imports import pairs_dataset_create, pairs_import
from annotation.models import Record
from annotation.services import suggestions_upsert

XSS = '<script>window.__pwned = "script"</script><img src=x onerror="window.__pwned = \'img\'">'


def imported_with_flips(workspace, *, n: int = 4, flipped: tuple = ("k0", "k1"), name: str = "to-clean"):
    """Pairs k0..k{n-1}: chosen "GOOD i", rejected "BAD i"; the judge prefers the rejected answer on
    `flipped` (with an HTML rationale) and agrees elsewhere."""
    ds = pairs_dataset_create(workspace=workspace, name=name)
    pairs = [{"id": f"k{i}", "prompt": f"Question {i} {XSS}", "chosen": f"GOOD {i} {XSS}", "rejected": f"BAD {i}"}
             for i in range(n)]
    pairs_import(dataset=ds, stream=io.BytesIO("\n".join(json.dumps(p) for p in pairs).encode()), seed=1)
    items = []
    for r in Record.objects.filter(dataset=ds):
        chosen = r.metadata["original_chosen"]
        other = "response-2" if chosen == "response-1" else "response-1"
        first, second = (other, chosen) if r.external_id in flipped else (chosen, other)
        items.append({"record": r.pk, "question": "ranking", "agent": "judge-x", "score": 2.0,
                      "rationale": f"Because {r.external_id} {XSS}",
                      "value": [{"value": first, "rank": 1}, {"value": second, "rank": 2}]})
    assert not suggestions_upsert(dataset=ds, items=items).errors
    return ds
