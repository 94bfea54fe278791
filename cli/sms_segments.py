"""How many SMS segments a text costs: GSM-7 when every character fits, UCS-2 otherwise."""
from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 default alphabet, and the extension table whose characters take two septets.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}  # (single message, each part of a multipart)


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    length: int  # in the encoding's units: septets, or UTF-16 code units
    segments: int
    forcing_ucs2: str  # the characters that are not in GSM-7, in order of first appearance

    @property
    def per_segment(self) -> int:
        single, per_part = _LIMITS[self.encoding]
        return single if self.segments == 1 else per_part


def sms_size(text: str) -> SmsSize:
    outside = "".join(dict.fromkeys(ch for ch in text if ch not in _GSM7_BASIC and ch not in _GSM7_EXTENDED))
    if outside:
        encoding, length = "UCS-2", len(text.encode("utf-16-le")) // 2
    else:
        encoding, length = "GSM-7", sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)
    single, per_part = _LIMITS[encoding]
    segments = 1 if length <= single else -(-length // per_part)
    return SmsSize(encoding=encoding, length=length, segments=segments, forcing_ucs2=outside)
