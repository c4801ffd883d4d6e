"""The judge-output parsers on realistic outputs: a complete aligned result, or a clear error."""
import pytest

from judging.parsers import JudgeParseError, parse_preference, parse_ratings, parse_revision

WELL_FORMED = [
    # strict JSON
    ('{"ratings": [{"text": 1, "rating": 4, "rationale": "Clear."}, {"text": 2, "rating": 2, "rationale": "Wrong."}]}',
     [4, 2], ["Clear.", "Wrong."]),
    # JSON entries out of order, aligned by their "text" index
    ('{"ratings": [{"text": 2, "rating": 1, "rationale": "b"}, {"text": 1, "rating": 5, "rationale": "a"}]}',
     [5, 1], ["a", "b"]),
    # fenced JSON with prose around it
    ('Sure, here is my evaluation:\n```json\n{"ratings": [{"text": 1, "rating": 3, "rationale": "ok"},'
     ' {"text": 2, "rating": 5, "rationale": "great"}]}\n```\nLet me know if you need more.', [3, 5], ["ok", "great"]),
    # trailing commas
    ('{"ratings": [{"text": 1, "rating": 2, "rationale": "a",}, {"text": 2, "rating": 3, "rationale": "b"},],}',
     [2, 3], ["a", "b"]),
    # parallel lists
    ('{"ratings": [4, 3], "rationales": ["fine", "meh"]}', [4, 3], ["fine", "meh"]),
    # keyed by text, rating as string "4/5"
    ('{"text_1": {"rating": "4/5", "rationale": "x"}, "text_2": {"rating": "2", "rationale": "y"}}', [4, 2], ["x", "y"]),
    # UltraFeedback's own layout
    ("#### Output for Text 1\nRating: 4\nRationale: Accurate and complete.\n\n"
     "#### Output for Text 2\nRating: 2\nRationale: Gets the date wrong.", [4, 2],
     ["Accurate and complete.", "Gets the date wrong."]),
    # bold labels, bullets, prose before and after
    ("Here is my assessment.\n\n**Text 1**\n- **Rating**: 5\n- **Rationale**: Excellent.\n\n"
     "**Text 2**\n- **Rating:** 3/5\n- **Rationale:** Adequate.", [5, 3], ["Excellent.", "Adequate."]),
    # one line per text
    ("Text 1: 4/5 - Accurate but terse.\nText 2: 2 - Misses the point.", [4, 2],
     ["Accurate but terse.", "Misses the point."]),
    # headings, no rationale at all (allowed: empty)
    ("### Text 1\nRating: 4\n\n### Text 2\nRating: 1", [4, 1], ["", ""]),
    # rating inline in the heading, "out of 5"
    ("## Response 1 (Rating: 3 out of 5)\nSome issues.\n## Response 2 (Rating: 5 out of 5)\nPerfect.", [3, 5],
     ["Some issues.", "Perfect."]),
    # numbered list items
    ("1. Text 1 — Rating: 4. Rationale: decent\n2. Text 2 — Rating: 1. Rationale: off-topic", [4, 1],
     ["decent", "off-topic"]),
    # a rationale that mentions the other text does not start a new section
    ("Text 1\nRating: 4\nRationale: Text 2 is worse since it\nlacks detail.\nText 2\nRating: 2\nRationale: thin",
     [4, 2], ["Text 2 is worse since it\nlacks detail.", "thin"]),
    # bold rating with the number bolded too
    ("#### Output for Text 1\n**Rating: 2**\n**Rationale:** vague\n#### Output for Text 2\n**Rating: 4**", [2, 4],
     ["vague", ""]),
    # a label before the number, and a label after it
    ("#### Output for Text 1\nRating: Highly Informative (4)\nRationale: good\n#### Output for Text 2\n"
     "Rating: 2 (Partially Incorrect)\nRationale: wrong date", [4, 2], ["good", "(Partially Incorrect)\nwrong date"]),
    # a markdown table
    ("Here are the ratings:\n\n| Text | Rating | Rationale |\n|------|--------|-----------|\n"
     "| Text 1 | 4 | Clear and correct. |\n| Text 2 | **2** | Off topic. |\n\nHope this helps.", [4, 2],
     ["Clear and correct.", "Off topic."]),
    # three texts, sections given out of order
    ("Text 3: 1\nText 1: 5\nText 2: 3", [5, 3, 1], ["", "", ""]),
]


@pytest.mark.parametrize("text,ratings,rationales", WELL_FORMED)
def test_well_formed_and_messy_outputs_parse_aligned(text, ratings, rationales):
    result = parse_ratings(text, len(ratings))
    assert result.ratings == ratings
    assert result.rationales == rationales


BROKEN = [
    ("#### Output for Text 1\nRating: N/A\nRationale: cannot judge\n#### Output for Text 2\nRating: 3", "N/A"),
    ('{"ratings": [{"text": 1, "rating": "N/A"}, {"text": 2, "rating": 4}]}', "N/A"),
    ('{"ratings": [{"text": 1, "rating": null}, {"text": 2, "rating": 4}]}', "no rating"),
    ("#### Output for Text 1\nRating: 4\nRationale: fine", "missing text 2"),  # wrong number of sections
    ("#### Output for Text 1\nRating: 4\n#### Output for Text 2\nRating: 3\n#### Output for Text 3\nRating: 5",
     "unexpected text 3"),
    ("#### Output for Text 1\nRating: 4\n#### Output for Text 1\nRating: 3", "more than one section"),
    ('{"ratings": [{"text": 1, "rating": 4, "rationale": "fine"}]}', "1 ratings for 2 texts"),
    ('{"ratings": [{"text": 1, "rating": 4, "rationale": "ok"}, {"text": 2, "rat', "truncated JSON"),  # cut off
    ("#### Output for Text 1\nRating: 4\nRationale: fine\n#### Output for Text 2\nRat", "no rating found"),
    ("I'm sorry, but I can't help with evaluating these responses.", "refused"),
    ("As an AI language model, I cannot provide ratings for this content.", "refused"),
    ("#### Output for Text 1\nRating: 6\n#### Output for Text 2\nRating: 3", "outside 1-5"),
    ("#### Output for Text 1\nRating: 4.5\n#### Output for Text 2\nRating: 3", "not a whole number"),
    ("Text 1: 8/10\nText 2: 6/10", "scale"),
    ("| Text | Rating |\n|---|---|\n| 1 | 4 |", "1 rows for 2 texts"),
    ("| Text | Rating |\n|---|---|\n| 1 | 4 |\n| 2 | N/A |", "N/A"),
    ("#### Output for Text 1\nRating: between 3 and 4\n#### Output for Text 2\nRating: 2", "not a number"),
    ("Both answers are decent, the first is slightly better.", "no sections"),
    ("", "empty"),
    ('{"ratings": [{"text": 1, "rating": 4}, {"text": 1, "rating": 2}]}', "rated twice"),
]


@pytest.mark.parametrize("text,reason", BROKEN)
def test_unreadable_outputs_are_errors_never_nulls_or_misaligned(text, reason):
    with pytest.raises(JudgeParseError) as exc:
        parse_ratings(text, 2)
    assert reason.lower() in str(exc.value).lower()


def test_none_output_is_an_error():
    with pytest.raises(JudgeParseError, match="empty"):
        parse_ratings(None, 2)


def test_a_bracketed_list_inside_prose_is_not_taken_for_ratings():
    text = "Text 1: 2\nText 2: 5\nNote: on a list like [4, 1] both would be wrong."
    assert parse_ratings(text, 2).ratings == [2, 5]


def test_single_text_without_section_header():
    assert parse_ratings("Rating: 4\nRationale: good", 1).ratings == [4]


@pytest.mark.parametrize("text,expected", [
    ('{"reasoning": "A is wrong.", "preferred": "B"}', "B"),
    ('```json\n{"preferred": "tie", "reasoning": "same"}\n```', "tie"),
    ("Reasoning: A cites the right law.\nPreferred: A", "A"),
    ("**Reasoning:** both fine\n**Preferred:** tie", "tie"),
    ("**Winner:** Answer B", "B"),
    ("After comparing, my verdict: [[A]]", "A"),
    ("Output (b)", "B"),
    ("B", "B"),
    ("The better response is A.", "A"),
])
def test_preference_outputs(text, expected):
    assert parse_preference(text).preferred == expected


@pytest.mark.parametrize("text,reason", [
    ("Preferred: A\nOn reflection, Preferred: B", "contradictory"),
    ("I cannot help with that request.", "refused"),
    ('{"preferred": "C"}', "not A, B or tie"),
    ('{"reasoning": "A is more complete and', "truncated"),
    ("Both have merits and flaws.", "no verdict"),
])
def test_preference_errors(text, reason):
    with pytest.raises(JudgeParseError, match=reason):
        parse_preference(text)


def test_preference_reasoning_is_kept():
    assert parse_preference("Reasoning: A is wrong.\nPreferred: B").reasoning == "A is wrong."


@pytest.mark.parametrize("text,revision,reasoning", [
    ('{"reasoning": "Off by one.", "revision": "It is 4."}', "It is 4.", "Off by one."),
    ("<reasoning>\nOff by one.\n</reasoning>\n<revision>\nIt is 4.\n</revision>", "It is 4.", "Off by one."),
    ("Some preamble.\n<REASONING>x</REASONING>\n<revision>It is 4.</revision>\nThanks!", "It is 4.", "x"),
    ("## Reasoning\nOff by one.\n\n## Revision\nIt is 4.", "It is 4.", "Off by one."),
])
def test_revision_outputs(text, revision, reasoning):
    parsed = parse_revision(text)
    assert (parsed.revision, parsed.reasoning) == (revision, reasoning)


@pytest.mark.parametrize("text,reason", [
    ("<reasoning>Off by one.</reasoning>\n<revision>\nIt is", "not closed"),
    ("<reasoning>x</reasoning><revision>  </revision>", "empty"),
    ('{"reasoning": "x", "revision": ""}', "empty"),
    ("I'm sorry, I can't help with that.", "refused"),
    ("The answer looks fine to me.", "no <revision>"),
])
def test_revision_errors(text, reason):
    with pytest.raises(JudgeParseError, match=reason):
        parse_revision(text)


def test_revision_headings_cut_off_by_length_are_errors():
    with pytest.raises(JudgeParseError, match="cut off"):
        parse_revision("## Reasoning\nx\n## Revision\nIt is", finish_reason="length")
