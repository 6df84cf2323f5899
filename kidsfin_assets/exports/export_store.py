"""Where the export files go: a local folder or an object store, and a file is whole or absent.

`exports.export_dir` is a local path (relative to the project) or a URL: `s3://bucket/prefix`
(s3fs), `gs://bucket/prefix` (gcsfs, extra `gcs`), `az://container/prefix` (adlfs, extra
`azure`), through fsspec. Credentials come from each store's own conventions (the
environment, a profile, the instance's role), never from the URL: a URL holding a password
or options is refused, so nothing secret reaches the resource config, metadata or logs.

A reader sees a file whole or not at all:

- local: a temporary file in the same folder, renamed over the old one (`os.replace`);
- object stores: the fsspec file opened with `autocommit=False`. On S3 every part is
  uploaded to a multipart upload completed only by `commit()` and aborted on failure
  (`discard()`); gcsfs finalises its resumable upload in `commit()` and cancels it in
  `discard()`; adlfs stages blocks and commits the block list only when the file is
  closed, which a failed export never does. The old object stays readable until then.

A leaf module (paths only): settings validate the setting with it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kidsfin_assets.config.paths import check_folder, resolve_path

EXPORT_FILE_MODE = 0o644
# An object store's file is uploaded in parts of this size: what an export holds in memory
# for it (S3's smallest part is 5 MiB).
REMOTE_BLOCK_BYTES = 8 * 2**20
LOCAL_BUFFER_BYTES = 2**20
# URL scheme -> (the package fsspec needs for it, the extra that installs it)
STORES: dict[str, tuple[str, str]] = {
    "s3": ("s3fs", ""),
    "s3a": ("s3fs", ""),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}
CREDENTIALS_HINT = (
    "give them in the environment (AWS_ACCESS_KEY_ID / AWS_PROFILE, "
    "GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_CONNECTION_STRING ...)"
)

T = TypeVar("T")


class ExportStorageError(Exception):
    """The export folder could not be written (not the rows read for it)."""


def is_url(location: str) -> bool:
    """A URL with a scheme other than file:// (a local path otherwise)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() != "file"


def redact_location(value: str) -> str:
    """The location for messages: a URL's user part and its options hidden."""
    if not is_url(value):
        return value
    return re.sub(r"[?#].*", "?***", re.sub(r"://[^/@]*@", "://***@", value), flags=re.S)


def check_export_location(value: str) -> str:
    """`export_dir`: a folder, or `<store>://<bucket>[/prefix]` without credentials or
    options in it, whose fsspec package is installed. The value is returned as given."""
    check_folder(value)
    if not is_url(value):
        return value
    parts = urllib.parse.urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in STORES:
        known = ", ".join(f"{s}://" for s in STORES)
        raise ValueError(f"{scheme}:// is not a supported store ({known}, or a local folder)")
    if parts.password is not None or (parts.username is not None and scheme.startswith("s3")):
        # Never echo the URL: it holds the secret.
        raise ValueError(f"must not hold credentials: {CREDENTIALS_HINT}")
    if parts.query or parts.fragment:
        raise ValueError("takes no options ('?' or '#'): set them in the environment")
    if not parts.hostname:
        raise ValueError(f"names no bucket or container ({value.strip()!r})")
    package, extra = STORES[scheme]
    if importlib.util.find_spec(package) is None:
        install = f"pip install 'kidsfin[{extra}]'" if extra else f"pip install {package}"
        raise ValueError(f"{scheme}:// needs the {package} package ({install})")
    return value


class Sink(Protocol):
    """Where an export's bytes go, in order."""

    def write(self, data: bytes, /) -> int: ...


class ExportTarget(Protocol):
    """A folder of export files (local or in an object store)."""

    def location(self, name: str) -> str:
        """Where `name` is, as shown in logs and metadata (a path or a URL)."""
        ...

    def open(self, name: str) -> contextlib.AbstractContextManager[Sink]:
        """A file written whole or not at all: replaced when the block ends, left as it
        was if the block raises."""
        ...

    def remove(self, name: str) -> None:
        """Delete `name` if it is there."""
        ...


def export_target(export_dir: str) -> ExportTarget:
    """The folder `export_dir` names (checked by check_export_location)."""
    if is_url(export_dir):
        return ObjectStoreFolder(export_dir.strip().rstrip("/"))
    return LocalFolder(resolve_path(export_dir.removeprefix("file://")))


def storage_call(what: str, call: Callable[[], T]) -> T:
    """Run one call on the store; its failure, whatever the library raises, becomes an
    ExportStorageError of one line."""
    try:
        return call()
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ExportStorageError(f"{what}: {reason}") from exc


class _StorageWriter:
    """A binary file whose write errors are the store's (ExportStorageError)."""

    def __init__(self, handle: Any, where: str) -> None:
        self._handle, self._where = handle, where

    def write(self, data: bytes) -> int:
        return storage_call(f"cannot write {self._where}", lambda: self._handle.write(data))


@dataclass(frozen=True)
class LocalFolder:
    folder: Path

    def location(self, name: str) -> str:
        return str(self.folder / name)

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Sink]:
        path = self.folder / name
        where = str(path)

        def create() -> tuple[int, str]:
            path.parent.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")

        fd, tmp = storage_call(f"cannot write {where}", create)
        try:
            # mkstemp makes 0600; the files are for whoever reads the export volume (another
            # container runs as another user), so readable by all, as open() would make them.
            os.fchmod(fd, EXPORT_FILE_MODE)
            with os.fdopen(fd, "wb", buffering=LOCAL_BUFFER_BYTES) as handle:
                yield _StorageWriter(handle, where)
                storage_call(f"cannot write {where}", handle.flush)
            storage_call(f"cannot write {where}", lambda: os.replace(tmp, path))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, name: str) -> None:
        where = self.location(name)
        storage_call(f"cannot remove {where}", lambda: (self.folder / name).unlink(missing_ok=True))


@dataclass(frozen=True)
class ObjectStoreFolder:
    url: str

    def location(self, name: str) -> str:
        return f"{self.url}/{name}"

    def _filesystem(self) -> tuple[Any, str]:
        """A filesystem of its own for each export: its client reads the environment's
        credentials and endpoint now, not those of a cached instance made earlier."""
        import fsspec

        return fsspec.core.url_to_fs(self.url, skip_instance_cache=True)

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Sink]:
        where = self.location(name)
        fs, root = storage_call(f"cannot reach {self.url}", self._filesystem)
        handle = storage_call(
            f"cannot write {where}",
            lambda: fs.open(
                f"{root}/{name}", "wb", autocommit=False, block_size=REMOTE_BLOCK_BYTES
            ),
        )
        try:
            yield _StorageWriter(handle, where)
            storage_call(f"cannot write {where}", handle.close)  # the last part, not visible
            storage_call(f"cannot write {where}", handle.commit)  # now it is, whole
        except BaseException:
            _discard(handle)
            raise

    def remove(self, name: str) -> None:
        where = self.location(name)
        fs, root = storage_call(f"cannot reach {self.url}", self._filesystem)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(f"{root}/{name}")

        storage_call(f"cannot remove {where}", remove)


def _discard(handle: Any) -> None:
    """Abort an upload (S3: the multipart upload; GCS: the resumable one) and mark the file
    closed, so that neither this nor its garbage collection ever completes it. An abort
    that fails leaves only parts no reader sees (a bucket's lifecycle rule for incomplete
    multipart uploads removes them)."""
    with contextlib.suppress(Exception):
        handle.discard()
    handle.closed = True
