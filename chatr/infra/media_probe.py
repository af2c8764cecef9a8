"""What the server itself can tell about an uploaded file: an image's size and placeholder,
a WAV voice note's duration and waveform, an MP4/MOV/M4A's duration. Also removes an
image's EXIF (GPS location above all) and makes the resized pictures of avatars and covers.

Everything here is blocking file and CPU work on local files: callers run it in a thread
(`asyncio.to_thread`), never on the event loop. Files are read in chunks, never whole.
"""

from __future__ import annotations

import array
import base64
import io
import struct
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

#: Bars in a voice note's waveform.
WAVEFORM_BARS = 100
#: The largest image (in pixels) chatr decodes: a "decompression bomb" is refused.
MAX_IMAGE_PIXELS = 64_000_000
#: The placeholder's longer side, pixels: a tiny JPEG shown blurred until the image loads.
THUMBNAIL_SIDE = 24

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class Unreadable(Exception):
    """The file is not what its magic bytes promised (a truncated or forged image)."""


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    #: `data:image/jpeg;base64,…`, a few hundred bytes.
    thumbnail: str


def _open_image(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise Unreadable("The image has too many pixels.") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise Unreadable("The image cannot be read.") from error
    return image


def _thumbnail(image: Image.Image) -> str:
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=50)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_facts_and_strip(path: Path, stripped: Path) -> tuple[ImageFacts, bool]:
    """The image's displayed size and placeholder; if it carries EXIF (location, camera,
    time), a copy without it is written to `stripped` (turned upright first, since the
    orientation tag goes with the rest) and True is returned."""
    with _open_image(path) as image:
        exif = image.getexif()
        animated = bool(getattr(image, "is_animated", False))
        has_metadata = bool(exif) or "exif" in image.info or "xmp" in image.info
        if has_metadata and not animated and image.format in {"JPEG", "PNG", "WEBP"}:
            upright = ImageOps.exif_transpose(image)
            fmt = image.format
            options: dict[str, object] = {"quality": 95} if fmt in {"JPEG", "WEBP"} else {}
            if upright.mode not in {"RGB", "L"} and fmt == "JPEG":
                upright = upright.convert("RGB")
            # Pillow writes EXIF/XMP only when asked to (`exif=`): the copy has none.
            upright.save(stripped, format=fmt, **options)
            return ImageFacts(upright.width, upright.height, _thumbnail(upright)), True
        return ImageFacts(image.width, image.height, _thumbnail(image)), False


# -- pictures: avatars and covers --------------------------------------------------------------


def resize_cover(path: Path, target: Path, size: tuple[int, int]) -> None:
    """Crop to the size's aspect ratio (centred) and scale to exactly `size`, as JPEG."""
    with _open_image(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
        fitted = ImageOps.fit(upright, size, method=Image.Resampling.LANCZOS)
        fitted.save(target, format="JPEG", quality=88)


def image_size(path: Path) -> tuple[int, int]:
    with _open_image(path) as image:
        return image.width, image.height


# -- audio -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioFacts:
    duration_seconds: float
    #: WAVEFORM_BARS values in 0..1 (None where the format is not decoded here).
    waveform: list[float] | None


_SAMPLE_TYPES = {1: "B", 2: "h", 4: "i"}


def wav_facts(path: Path) -> AudioFacts:
    """Duration and a peak waveform of a PCM WAV file, read a bar at a time."""
    try:
        with wave.open(str(path), "rb") as reader:
            frames = reader.getnframes()
            rate = reader.getframerate()
            width = reader.getsampwidth()
            if rate <= 0:
                raise Unreadable("The WAV file has no sample rate.")
            duration = frames / rate
            typecode = _SAMPLE_TYPES.get(width)
            if typecode is None or frames == 0:
                return AudioFacts(duration, None)
            peaks = []
            per_bar = max(1, frames // WAVEFORM_BARS)
            for bar in range(WAVEFORM_BARS):
                if bar * per_bar >= frames:
                    peaks.append(0.0)
                    continue
                count = per_bar if bar < WAVEFORM_BARS - 1 else frames - bar * per_bar
                data = reader.readframes(count)
                samples = array.array(typecode)
                samples.frombytes(data[: len(data) - len(data) % width])
                if sys.byteorder == "big" and width > 1:
                    samples.byteswap()
                if not samples:
                    peaks.append(0.0)
                    continue
                if width == 1:  # unsigned 8-bit, centred on 128
                    peak = max(max(samples) - 128, 128 - min(samples))
                else:
                    peak = max(max(samples), -min(samples))
                peaks.append(float(peak))
    except (wave.Error, EOFError, struct.error) as error:
        raise Unreadable("The WAV file cannot be read.") from error
    loudest = max(peaks) or 1.0
    return AudioFacts(duration, [round(min(1.0, peak / loudest), 4) for peak in peaks])


# -- ISO base media (MP4, M4A, MOV) ------------------------------------------------------------

_CONTAINERS = {b"moov", b"trak", b"mdia"}


def mp4_duration(path: Path) -> float | None:
    """The movie header's duration (`moov/mvhd`), seeking from box to box; None if absent."""
    try:
        with path.open("rb") as handle:
            end = path.stat().st_size
            return _find_mvhd(handle, 0, end)
    except (OSError, struct.error):
        return None


def _find_mvhd(handle: io.BufferedReader, start: int, end: int) -> float | None:
    position = start
    while position + 8 <= end:
        handle.seek(position)
        header = handle.read(8)
        if len(header) < 8:
            return None
        size, box = struct.unpack(">I4s", header)
        offset = 8
        if size == 1:
            size = struct.unpack(">Q", handle.read(8))[0]
            offset = 16
        elif size == 0:
            size = end - position
        if size < offset:
            return None
        if box == b"mvhd":
            version = handle.read(4)[0]
            if version == 1:
                _, _, timescale, duration = struct.unpack(">QQIQ", handle.read(28))
            else:
                _, _, timescale, duration = struct.unpack(">IIII", handle.read(16))
            return duration / timescale if timescale else None
        if box in _CONTAINERS:
            found = _find_mvhd(handle, position + offset, position + size)
            if found is not None:
                return found
        position += size
    return None
