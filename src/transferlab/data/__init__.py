"""Image folders, robust decoding, preprocessing transforms and offline sample datasets (digits, photos)."""

from .dataset import ImagePathDataset, collate_skipping
from .decode import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageDecodeError, check_image_header, load_rgb, to_rgb
from .folders import DatasetSplit, Sample, load_split, scan_class_folders, scan_images
from .photos import PATCH_CLASSES, read_patch_records, write_photo_patches, write_whole_photos
from .samples import digits_arrays, write_digits_folder
from .transforms import denormalize, image_transform, pil_to_tensor, resize_and_crop

__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "PATCH_CLASSES", "DatasetSplit", "ImageDecodeError", "ImagePathDataset",
    "Sample", "check_image_header", "collate_skipping", "denormalize", "digits_arrays", "image_transform",
    "load_rgb", "load_split", "pil_to_tensor", "read_patch_records", "resize_and_crop", "scan_class_folders",
    "scan_images", "to_rgb", "write_digits_folder", "write_photo_patches", "write_whole_photos",
]
