"""A file's family comes from its first bytes, whatever its name or declared type says."""

from __future__ import annotations

import pytest

from chatr.infra.sniffing import Family, sniff
from tests.media.helpers import EXECUTABLE, jpeg_with_gps, png, wav


@pytest.mark.parametrize(
    ("head", "family"),
    [
        (jpeg_with_gps(), Family.JPEG),
        (png(), Family.PNG),
        (b"GIF89a" + b"\x00" * 20, Family.GIF),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", Family.WEBP),
        (wav(0.1), Family.WAV),
        (b"OggS\x00\x02" + b"\x00" * 20, Family.OGG),
        (b"ID3\x04\x00" + b"\x00" * 20, Family.MPEG_AUDIO),
        (b"\xff\xfb\x90\x00" + b"\x00" * 20, Family.MPEG_AUDIO),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 20, Family.MATROSKA),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 20, Family.MP4),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", Family.MP4),
        (b"%PDF-1.7\n", Family.PDF),
        (b"PK\x03\x04\x14\x00", Family.ZIP),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20, Family.OLE),
        ("Grüße, plain text\n".encode(), Family.TEXT),
        (EXECUTABLE, Family.EXECUTABLE),
        (b"\x7fELF\x02\x01\x01", Family.EXECUTABLE),
        (b"#!/bin/sh\nrm -rf /\n", Family.EXECUTABLE),
        (b"\x00\x01\x02\x03binary", None),
        (b"", None),
    ],
)
def test_sniff_names_the_family_of_the_bytes(head: bytes, family: Family | None) -> None:
    assert sniff(head[:8192]) == family


def test_text_cut_in_the_middle_of_a_character_is_still_text() -> None:
    text = ("é" * 5000).encode()
    assert sniff(text[:8191]) == Family.TEXT
