"""Which records an annotator is handed: when a gold record is due, and which (annotator, record)
assignments show the judges' suggestions (the anchoring experiment). Pure functions of ids and
counts, so the hot path (annotation.services.next_record_for, response_upsert) decides without a
query of its own.

Gold schedule: an annotator's handed records are numbered n = 0, 1, 2, ... (n = how many of the
dataset's records they have a response to, drafts and discards included, so a record handed but
never answered does not move it on). At rate r the numbers fall into blocks of about 1/r: block k
holds the n with floor(n * r) = k. Exactly one position of each block, chosen per (dataset, user,
block) by a keyed hash of the installation's SECRET_KEY, is gold. So any run of handed records holds
floor or ceil of r times its length in gold records (exact share), and where the gold falls in the
next block cannot be told from where it fell in earlier ones, nor computed without the secret key.
"""
from __future__ import annotations

import hashlib
import math
import random
from fractions import Fraction
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=64)
def _rate(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(1_000_000)


def _secret() -> bytes:
    return hashlib.blake2b(str(settings.SECRET_KEY).encode(), digest_size=32).digest()


def gold_block_position(*, dataset_id: int, user_id: int, block: int, size: int) -> int:
    """The offset (0 <= offset < size) of the gold record in one block of an annotator's schedule."""
    digest = hashlib.blake2b(f"gold:{dataset_id}:{user_id}:{block}".encode(), key=_secret(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % size


def gold_due(*, dataset_id: int, user_id: int, handed: int, rate: float) -> bool:
    """Whether the annotator's record number `handed` (0-based: how many records of the dataset they
    have a response to) should be a gold record, at `rate` (Dataset.gold_rate). See the module text."""
    if not rate or rate <= 0 or handed < 0:
        return False
    if rate >= 1:
        return True
    r = _rate(float(rate))
    if r == 0:
        return False
    block = math.floor(handed * r)
    start, end = math.ceil(block / r), math.ceil((block + 1) / r)
    return handed == start + gold_block_position(dataset_id=dataset_id, user_id=user_id, block=block, size=end - start)


def suggestion_assigned(*, record_id: int, user_id: int, share: float) -> bool:
    """Whether this (record, annotator) assignment is one of the `share` (Dataset.suggestion_share) shown
    the judges' suggestions. Deterministic per pair (a reload shows the same), independent of the
    shuffle of the responses (annotation.services.display_order_for)."""
    if share >= 1:
        return True
    if share <= 0:
        return False
    return random.Random(f"suggest:{record_id}:{user_id}").random() < share
