"""What a file really is, from its first bytes (magic numbers), never from its name or the
type a client claimed.

`sniff` names a file's container family; `chatr.services.uploads` accepts an upload only if
that family is one the claimed content type may have (a `.docx` is a zip, an `audio/webm`
voice note is a Matroska file). Executables are recognised so that one renamed `.jpg` is
refused by name in the error, not merely as "not a JPEG".
"""

from __future__ import annotations

import enum

#: Enough for every signature below (and for a fair look at whether text is text).
SNIFF_BYTES = 8192


class Family(enum.StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    WEBP = "webp"
    WAV = "wav"
    OGG = "ogg"
    MPEG_AUDIO = "mpeg-audio"
    #: ISO base media: MP4, M4A, QuickTime (MOV).
    MP4 = "mp4"
    #: Matroska and WebM.
    MATROSKA = "matroska"
    PDF = "pdf"
    #: Zip, and the Office Open XML documents (docx, xlsx, pptx) that are zips.
    ZIP = "zip"
    #: OLE2 compound files: the old Office documents (doc, xls, ppt).
    OLE = "ole"
    TEXT = "text"
    EXECUTABLE = "executable"


_EXECUTABLE_PREFIXES = (
    b"MZ",  # Windows PE / DOS
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",  # Mach-O, 32 and 64 bit, both byte orders
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O universal (and Java classes)
    b"#!",  # scripts
)
#: QuickTime files may start with one of these atoms instead of `ftyp`.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _is_mpeg_audio(head: bytes) -> bool:
    if head.startswith(b"ID3"):
        return True
    # An MPEG audio frame sync: 11 set bits, a valid layer, not the reserved bitrate.
    return (
        len(head) >= 3
        and head[0] == 0xFF
        and head[1] & 0xE0 == 0xE0
        and head[1] & 0x06 != 0
        and head[2] & 0xF0 != 0xF0
    )


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # Cut off in the middle of a character by the sniffing window: still text.
        if error.start < len(head) - 3:
            return False
    return True


def sniff(head: bytes) -> Family | None:
    """The family of a file that starts with `head` (its first `SNIFF_BYTES`), or None."""
    if head.startswith(_EXECUTABLE_PREFIXES):
        return Family.EXECUTABLE
    if head.startswith(b"\xff\xd8\xff"):
        return Family.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Family.PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Family.GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Family.WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Family.WAV
    if head.startswith(b"OggS"):
        return Family.OGG
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Family.MATROSKA
    if head[4:8] == b"ftyp" or head[4:8] in _QUICKTIME_ATOMS:
        return Family.MP4
    if head.startswith(b"%PDF-"):
        return Family.PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Family.ZIP
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return Family.OLE
    if _is_mpeg_audio(head):
        return Family.MPEG_AUDIO
    if _is_text(head):
        return Family.TEXT
    return None
