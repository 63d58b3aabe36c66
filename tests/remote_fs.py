"""TensorFlow's in-process ram:// filesystem, made visible to TFX's file layer: a stand-in for gs://.

TFX's TensorFlow plugin (`tfx/dsl/io/plugins/tensorflow_gfile.py`) lists the schemes it serves in
SUPPORTED_SCHEMES ('', gs://, hdfs://, s3://) and is also TFX's fallback for other schemes; the
subclass here lists ram:// explicitly, so fileio serves it through tf.io.gfile on purpose rather
than by fallback. Like an object store, and unlike a local disk, renaming a ram:// folder does not
carry its files along: a test that passes here does not rely on a folder rename.
"""

from __future__ import annotations

from tfx.dsl.io import filesystem_registry
from tfx.dsl.io.plugins.tensorflow_gfile import TensorflowFilesystem

RAM = "ram://"


class RamFilesystem(TensorflowFilesystem):
    """tf.io.gfile for ram:// paths."""

    SUPPORTED_SCHEMES = [RAM]


def register_ram_filesystem() -> None:
    """Register RamFilesystem with TFX's default registry (idempotent; priority 0, the most preferred)."""
    registry = filesystem_registry.DEFAULT_FILESYSTEM_REGISTRY
    if registry.get_filesystem_for_scheme(RAM) is not RamFilesystem:
        registry.register(RamFilesystem, priority=0)


def register_ram_for_beam() -> None:
    """Make ram:// known to Beam's own filesystem registry (what Beam's IO writes and reads goes
    through it): defining a FileSystem subclass registers it."""
    _ram_beam_filesystem()


_RAM_BEAM = []


def _ram_beam_filesystem():
    """The Beam FileSystem for ram:// (defined once, on first use: Beam is imported only then)."""
    if _RAM_BEAM:
        return _RAM_BEAM[0]
    import posixpath

    import tensorflow as tf
    from apache_beam.io.filesystem import CompressedFile, CompressionTypes, FileMetadata, FileSystem

    class RamBeamFileSystem(FileSystem):
        """Beam's view of ram:// through tf.io.gfile (in-process: DirectRunner in_memory only)."""

        @classmethod
        def scheme(cls):
            return "ram"

        def join(self, basepath, *paths):
            return posixpath.join(basepath, *paths)

        def split(self, path):
            return posixpath.split(path)

        def mkdirs(self, path):
            tf.io.gfile.makedirs(path)

        def has_dirs(self):
            return True

        def _list(self, dir_or_prefix):
            if not tf.io.gfile.isdir(dir_or_prefix):
                return
            for folder, _, names in tf.io.gfile.walk(dir_or_prefix):
                for name in names:
                    yield self.metadata(posixpath.join(folder, name))

        def _open(self, path, mode, compression_type):
            compression_type = FileSystem._get_compression_type(path, compression_type)
            raw = tf.io.gfile.GFile(path, mode) if "r" in mode else _CountingWriter(tf.io.gfile.GFile(path, mode))
            return (
                raw
                if compression_type == CompressionTypes.UNCOMPRESSED
                else CompressedFile(raw, compression_type=compression_type)
            )

        def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
            tf.io.gfile.makedirs(posixpath.dirname(path))
            return self._open(path, "wb", compression_type)

        def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
            return self._open(path, "rb", compression_type)

        def copy(self, source_file_names, destination_file_names):
            for source, destination in zip(source_file_names, destination_file_names, strict=False):
                tf.io.gfile.makedirs(posixpath.dirname(destination))
                tf.io.gfile.copy(source, destination, overwrite=True)

        def rename(self, source_file_names, destination_file_names):
            for source, destination in zip(source_file_names, destination_file_names, strict=False):
                tf.io.gfile.makedirs(posixpath.dirname(destination))
                tf.io.gfile.rename(source, destination, overwrite=True)

        def exists(self, path):
            return tf.io.gfile.exists(path)

        def size(self, path):
            return tf.io.gfile.stat(path).length

        def last_updated(self, path):
            return tf.io.gfile.stat(path).mtime_nsec / 1e9

        def checksum(self, path):
            return str(self.size(path))

        def metadata(self, path):
            stat = tf.io.gfile.stat(path)
            return FileMetadata(path, stat.length, stat.mtime_nsec / 1e9)

        def delete(self, paths):
            for path in paths:
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                elif tf.io.gfile.exists(path):
                    tf.io.gfile.remove(path)

    class _CountingWriter:
        """A GFile writer that knows its position: ram:// files do not support tell()."""

        mode = "wb"

        def __init__(self, handle):
            self._handle, self._written, self.closed = handle, 0, False
            handle.write(b"")  # GFile creates the file on its first write: an empty shard must exist too

        def write(self, data):
            self._handle.write(data)
            self._written += len(data)

        def tell(self):
            return self._written

        def flush(self):
            self._handle.flush()

        def close(self):
            self._handle.close()
            self.closed = True

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    _RAM_BEAM.append(RamBeamFileSystem)
    return RamBeamFileSystem
