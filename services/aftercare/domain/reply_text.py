"""A reply reduced to plain lower-case text, so rules need not care about accents, emoji or quotes."""
from __future__ import annotations

import re
import unicodedata

# `(?<![\W_])`: a run of symbols is tried once, from its start, whether it ends the text or not.
EDGE_SYMBOLS = re.compile(r"^[\W_]+|(?<![\W_])[\W_]+$")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    for curly in "\u2019\u2018\u02bc`\u00b4":
        text = text.replace(curly, "'")
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2192", "->")
    # Dropping marks makes "ARRÊT", "fièvre" and keycap digits ("5️⃣" = 5 + FE0F + 20E3) plain.
    decomposed = unicodedata.normalize("NFD", text.casefold())
    plain = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))
    return " ".join(plain.split())
