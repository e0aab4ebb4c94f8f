"""The shard folder as a TFDS dataset: `tfds.builder_from_directory(folder)` / `tfds.data_source` read it.

TFDS needs three small files beside the shards: `dataset_info.json` (name, version = the shard format
version, splits with their shard lengths and the file name template), `features.json` (the record
spec, compact.Layout.features) and `metadata.json` (the layout, patch spec and normalisation statistics).
Neither writing nor reading needs TensorFlow: the records are tf.train.Example protos with raw-bytes
tensors.
"""

from __future__ import annotations

from seaice_jax.data import compact

METADATA_FILES = ("dataset_info.json", "features.json", "metadata.json")
VERSION = f"{compact.FORMAT_VERSION}.0.0"
DESCRIPTION = ("AI4Arctic Sentinel-1 training patches in compact form (seaice-jax shard format "
               f"{compact.FORMAT_VERSION}): SAR-grid channels float16 at patch resolution, 2 km channels "
               "as their cells with the patch's offset on the cell grid, charts uint8.")


def write_metadata(folder: str, layout: compact.Layout, split_lengths: dict[str, list[int]],
                   normalisation: dict, spec: dict) -> None:
    """Write the TFDS metadata for the shards `seaice-<split>.array_record-<index>` of `folder`."""
    import tensorflow_datasets as tfds

    from seaice_jax.data.compact import DATASET_NAME, SHARD_TEMPLATE

    identity = tfds.core.DatasetIdentity(name=DATASET_NAME, version=tfds.core.Version(VERSION),
                                         data_dir=folder, module_name=__name__)
    metadata = tfds.core.MetadataDict(layout=layout.as_dict(), spec=spec, normalisation=normalisation)
    info = tfds.core.DatasetInfo(builder=identity, description=DESCRIPTION, features=layout.features(),
                                 metadata=metadata)
    info.set_file_format("array_record")
    info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=split, shard_lengths=list(lengths), num_bytes=0,
                            filename_template=tfds.core.ShardedFileTemplate(
                                data_dir=folder, template=SHARD_TEMPLATE, dataset_name=DATASET_NAME,
                                split=split, filetype_suffix="array_record"))
        for split, lengths in split_lengths.items()]))
    info.write_to_directory(folder)


def data_source(folder: str, split: str = "train"):
    """The split as a random-access `tfds.data_source` (records decoded to numpy dicts)."""
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(folder).as_data_source(split=split)
