"""How SQuAD compares answer texts: the official normalisation (lower case, no punctuation, no articles,
single spaces). Both the label check of the training windows and the metric use it."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

# string.punctuation is ASCII, and an ASCII byte never occurs inside another character's UTF-8 bytes: deleting
# those bytes removes exactly those characters, several times faster than a regular expression or
# str.translate (surrogatepass: a lone surrogate from a JSON file round-trips instead of failing)
_PUNCTUATION = string.punctuation.encode()
# the official r"\b(a|an|the)\b", with each word boundary checked after the article's first letter: a
# pattern that starts with a letter lets the engine skip ahead to the next "a" or "t" (about 1.5x faster)
_ARTICLES = re.compile(r"(?:t(?<!\wt)he|a(?<!\wa)n?)(?!\w)")
SEPARATOR = "\x00"  # joins texts normalised together (see normalized_texts)


def _strip(text: str) -> str:
    """Lower case, then no punctuation, then no articles: the official order (spacing is left to split)."""
    lowered = text.lower().encode("utf-8", "surrogatepass").translate(None, _PUNCTUATION).decode("utf-8", "surrogatepass")
    return _ARTICLES.sub(" ", lowered)


def normalize_answer(text: str) -> str:
    """Make answers that differ only in case, punctuation, articles or spacing compare equal (official order)."""
    return " ".join(_strip(text).split())


def normalized_texts(texts: Sequence[str]) -> list[str]:
    """`normalize_answer` of many texts, with one lower/punctuation/article/spacing pass over all of them.

    The texts are joined with a character that is neither punctuation, nor a word character, nor cased, nor
    whitespace, so every step treats each text as it would alone (article boundaries, final sigma, the
    spaces at its ends); when a text contains that character itself, each text is normalised on its own.
    """
    joined = SEPARATOR.join(texts)
    if joined.count(SEPARATOR) != max(len(texts) - 1, 0):
        return [normalize_answer(text) for text in texts]
    single_spaced = " ".join(_strip(joined).split())  # a separator with spaces around it stays a token of its own
    return single_spaced.replace(f" {SEPARATOR}", SEPARATOR).replace(f"{SEPARATOR} ", SEPARATOR).split(SEPARATOR) if texts else []
