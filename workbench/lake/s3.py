"""Bronze in an S3 bucket (MinIO or any S3), through the ``minio`` client.

Kept apart from ``storage.py`` so a process with a local lake never imports the S3 client.
"""

from __future__ import annotations

import io
import logging
import os

import certifi
import pyarrow as pa
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from workbench.core.errors import ConfigError, StorageError
from workbench.core.settings import Settings
from workbench.lake.storage import encode_parquet, parse_object_store_root

log = logging.getLogger(__name__)

_S3_FAILURES = (S3Error, ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError)


class S3Storage:
    """Bronze objects in a bucket of an S3 endpoint (MinIO or any S3).

    Args:
        settings: ``lake.root`` gives ``s3a://bucket/prefix``; ``s3`` gives endpoint, credentials
            and timeouts.

    Raises:
        ConfigError: when the root names no bucket or credentials are missing.
    """

    def __init__(self, settings: Settings) -> None:
        s3 = settings.s3
        self.bucket, self.prefix = parse_object_store_root(settings.lake.root)
        self.endpoint = s3.endpoint
        self.url = f"{'https' if s3.secure else 'http'}://{s3.endpoint}"
        if not s3.access_key or not s3.secret_key:
            raise ConfigError(
                f"no credentials for the object store at {self.url} (bucket {self.bucket!r}); "
                "set WORKBENCH__S3__ACCESS_KEY and WORKBENCH__S3__SECRET_KEY",
                setting="s3.access_key",
            )
        timeout = urllib3.Timeout(connect=s3.timeout_seconds, read=s3.timeout_seconds)
        # One quick retry only: a store that is down must make the batch spill within seconds,
        # not after the client's default minutes of retries.
        http = urllib3.PoolManager(
            timeout=timeout,
            maxsize=4,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=[502, 503, 504]),
        )
        self._client = Minio(
            s3.endpoint,
            access_key=s3.access_key.get_secret_value(),
            secret_key=s3.secret_key.get_secret_value(),
            secure=s3.secure,
            region=s3.region,
            http_client=http,
        )
        self._bucket_ready = False

    @property
    def client(self) -> Minio:
        """The configured client; the lake browser reads through it."""
        return self._client

    def object_name(self, relative_path: str) -> str:
        """The object key of a path relative to the lake root."""
        return f"{self.prefix}/{relative_path}" if self.prefix else relative_path

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing.

        Raises:
            StorageError: the store cannot be reached or refuses.
        """
        try:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket)
                log.info("created bucket bucket=%s endpoint=%s", self.bucket, self.url)
        except S3Error as err:
            if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error("cannot create or check the bucket", err) from err
        except _S3_FAILURES as err:
            raise self._error("cannot create or check the bucket", err) from err
        self._bucket_ready = True

    def put_bytes(
        self, relative_path: str, data: bytes, *, metadata: dict[str, str] | None = None
    ) -> int:
        """Upload ``data`` as one object (S3 PUTs are atomic); returns bytes.

        Raises:
            StorageError: the store cannot be reached or refuses the write.
        """
        if not self._bucket_ready:
            self.ensure_bucket()
        name = self.object_name(relative_path)
        try:
            self._client.put_object(
                self.bucket,
                name,
                io.BytesIO(data),
                len(data),
                content_type=_content_type(relative_path),
                metadata=metadata,
            )
        except _S3_FAILURES as err:
            raise self._error(f"cannot write {name}", err) from err
        return len(data)

    def write_parquet(self, relative_path: str, table: pa.Table) -> int:
        """Write ``table`` as one Parquet object; returns bytes."""
        return self.put_bytes(relative_path, encode_parquet(table))

    def write_bytes(self, relative_path: str, data: bytes) -> int:
        """Write ``data`` as one object; returns bytes."""
        return self.put_bytes(relative_path, data)

    def read_bytes(self, relative_path: str) -> bytes | None:
        """The object's bytes; None if there is no such object.

        Raises:
            StorageError: the store cannot be reached or refuses the read.
        """
        name = self.object_name(relative_path)
        try:
            response = self._client.get_object(self.bucket, name)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchBucket"):
                return None
            raise self._error(f"cannot read {name}", err) from err
        except _S3_FAILURES as err:
            raise self._error(f"cannot read {name}", err) from err

    def names(self, relative_dir: str) -> list[str]:
        """The names directly under ``relative_dir`` (objects and prefixes), sorted.

        Raises:
            StorageError: the store cannot be reached or refuses the listing.
        """
        prefix = self.object_name(relative_dir).rstrip("/") + "/"
        try:
            found = self._client.list_objects(self.bucket, prefix=prefix, recursive=False)
            return sorted(
                str(obj.object_name)[len(prefix) :].rstrip("/") for obj in found if obj.object_name
            )
        except S3Error as err:
            if err.code == "NoSuchBucket":
                return []
            raise self._error(f"cannot list {prefix}", err) from err
        except _S3_FAILURES as err:
            raise self._error(f"cannot list {prefix}", err) from err

    def _error(self, what: str, err: Exception) -> StorageError:
        return StorageError(
            f"{what} in bucket {self.bucket!r} at {self.url}: {type(err).__name__}: {err}. "
            "Check that the object store is running and reachable there and that the "
            "credentials (WORKBENCH__S3__ACCESS_KEY/SECRET_KEY) may write to the bucket.",
            endpoint=self.url,
            bucket=self.bucket,
            layer="bronze",
        )


def _content_type(relative_path: str) -> str:
    if relative_path.endswith(".json"):
        return "application/json"
    return "application/vnd.apache.parquet"
