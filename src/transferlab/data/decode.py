"""Robust image decoding: anything PIL reads becomes a correct 8-bit RGB image.

Grayscale (15 Scene), palette, CMYK, RGBA/LA (composited on white), 16-bit and 32-bit integer or
float images, and EXIF-rotated photos. Unreadable files raise :class:`ImageDecodeError`; images
above ``max_pixels`` are refused before decoding (decompression bombs, huge scans).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from ..errors import DataError

_COMMON_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# suffixes Pillow registers but cannot decode by itself: stubs that need another library (BUFR, GRIB, HDF5,
# MPEG), Windows-only metafiles, and PostScript (decoded by running Ghostscript)
_NOT_DECODED = {".bufr", ".grib", ".h5", ".hdf", ".mpeg", ".mpg", ".emf", ".wmf", ".eps", ".ps"}


def _pillow_suffixes() -> tuple[str, ...]:
    """Every suffix of a format this Pillow opens (TGA, JPEG 2000, PSD, ICO, QOI...), the common ones first."""
    Image.init()
    opened = {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return _COMMON_SUFFIXES + tuple(sorted(opened - set(_COMMON_SUFFIXES) - _NOT_DECODED))


IMAGE_SUFFIXES = _pillow_suffixes()
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb threshold (~ 9459 x 9459)

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a half-grey image


class ImageDecodeError(DataError):
    """One image cannot be used; extraction skips it and reports the reason."""


def check_image_header(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, str]:
    """Open only the header: return (width, height, mode) or raise :class:`ImageDecodeError`."""
    path = Path(path)
    if not path.is_file():
        raise ImageDecodeError(f"{path}: no such file; check the path")
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings(), _pil_limit(max_pixels):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height, mode = img.width, img.height, img.mode
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's words quote its own limit; ours is --max-pixels
        raise ImageDecodeError(f"{path}: image has more than {max_pixels:,} pixels, the limit; downscale it or "
                               "raise --max-pixels") from exc
    except Exception as exc:  # PIL raises many classes for non-images
        raise ImageDecodeError(f"{path}: not a readable image ({exc.__class__.__name__})") from exc
    if width * height > max_pixels:
        raise ImageDecodeError(f"{path}: {width}x{height} = {width * height:,} pixels is more than the limit of "
                               f"{max_pixels:,}; downscale it or raise --max-pixels")
    return width, height, mode


def load_rgb(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` fully into an RGB ``PIL.Image`` (EXIF orientation applied)."""
    path = Path(path)
    check_image_header(path, max_pixels)
    try:
        with warnings.catch_warnings(), _pil_limit(max_pixels):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                return to_rgb(img)
    except ImageDecodeError:
        raise
    except Exception as exc:  # truncated or corrupt data shows up only when decoding
        raise ImageDecodeError(f"{path}: corrupt or truncated image ({exc.__class__.__name__}: {exc})") from exc


@contextlib.contextmanager
def _pil_limit(max_pixels: int):
    """Let PIL open images up to ``max_pixels`` when --max-pixels is above PIL's own bomb limit (it refuses
    images of more than twice ``Image.MAX_IMAGE_PIXELS``); our own check on the header is the limit."""
    previous = Image.MAX_IMAGE_PIXELS
    if previous is None or 2 * previous >= max_pixels:
        yield
        return
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without clipping high-bit-depth data or losing transparency."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_rescale_to_uint8(np.asarray(img), mode)).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _rescale_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    array = array.astype(np.float64)
    if mode == "F":
        top = 1.0 if array.max(initial=0.0) <= 1.0 else 255.0
    elif mode.startswith("I;16") or array.max(initial=0) > 255:
        top = 65535.0 if array.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
    else:
        top = 255.0
    return np.clip(np.round(array / top * 255.0), 0, 255).astype(np.uint8)
