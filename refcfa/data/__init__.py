"""Datasets: the sample record, image IO, one parser per on-disk format, and the synthetic set.

Light on purpose (numpy and OpenCV only): the GUI imports it without torch. The torch-facing
dataset lives in :mod:`refcfa.data.torch_dataset` and is imported explicitly.
"""

from refcfa.data._common import TEST_FRACTION, DatasetFormat, split_normals
from refcfa.data.dagm import list_dagm_categories, make_dagm_samples, read_labels_txt
from refcfa.data.folder import list_folder_categories, make_folder_samples
from refcfa.data.io import IMAGE_EXTENSIONS, image_shape, read_image, read_mask
from refcfa.data.mvtec import list_mvtec_categories, make_mvtec_samples
from refcfa.data.registry import (
    FORMATS,
    check_disjoint,
    check_unique_ids,
    count_samples,
    detect_format,
    get_format,
    inspect_root,
    list_categories,
    make_samples,
)
from refcfa.data.sample import GOOD, Sample
from refcfa.data.synthetic import DEFECT_TYPES, make_synthetic
from refcfa.data.visa import list_visa_categories, make_visa_samples

__all__ = [
    "DEFECT_TYPES",
    "FORMATS",
    "GOOD",
    "IMAGE_EXTENSIONS",
    "TEST_FRACTION",
    "DatasetFormat",
    "Sample",
    "check_disjoint",
    "check_unique_ids",
    "count_samples",
    "detect_format",
    "get_format",
    "image_shape",
    "inspect_root",
    "list_categories",
    "list_dagm_categories",
    "list_folder_categories",
    "list_mvtec_categories",
    "list_visa_categories",
    "make_dagm_samples",
    "make_folder_samples",
    "make_mvtec_samples",
    "make_samples",
    "make_synthetic",
    "make_visa_samples",
    "read_image",
    "read_labels_txt",
    "read_mask",
    "split_normals",
]
