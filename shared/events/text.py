"""Free text that reaches a patient's message (names): printable, visible, one line, in NFC.

Refused: C0/C1 control characters (NUL, BEL, ESC, CR, LF...), line and paragraph separators,
bidirectional controls (U+202A-U+202E, U+2066-U+2069, LRM/RLM/ALM), invisible format characters
(zero-width space, soft hyphen, word joiner, BOM), and text with no visible
character. Zero-width (non-)joiners stay: several scripts need them. What passes is composed (NFC)
and stripped of surrounding whitespace.

The rule is one regular expression, published as the JSON Schema `pattern`, so a consumer or an
integrator validating against the schema refuses exactly what the code refuses.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

_UNSAFE = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb"
)
DISPLAY_TEXT_PATTERN = rf"^[^\S{_UNSAFE}]*[^\s{_UNSAFE}][^{_UNSAFE}]*$"
_DISPLAY_TEXT = re.compile(DISPLAY_TEXT_PATTERN)
NAME_MAX_LENGTH = 200


def clean_display_text(value: str) -> str:
    if not _DISPLAY_TEXT.fullmatch(value):
        raise ValueError(
            "must contain a visible character and no control characters, line breaks, "
            "bidirectional or invisible formatting characters"
        )
    return unicodedata.normalize("NFC", value).strip()


DisplayName = Annotated[
    str,
    Field(min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(clean_display_text),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH, "pattern": DISPLAY_TEXT_PATTERN}
    ),
]
