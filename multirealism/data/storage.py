"""Byte access to local paths, ``s3://`` objects (boto3) and ``https://`` URLs, for shards and manifests.

S3 endpoints and credentials come from ``storage_options`` (keys below) or boto3's usual sources
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``~/.aws``), so tests can point everything at a loopback
S3-compatible server. Clients are created lazily per process: boto3 clients must not cross a fork.
"""

from __future__ import annotations

import glob
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Tuple

from multirealism.checkpoint import atomic_write_bytes
from multirealism.data.errors import DataSourceError

S3_OPTION_KEYS = frozenset(
    {"endpoint_url", "region_name", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "anon"}
)
HTTP_TIMEOUT_S = 60.0
S3_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def is_s3(url: str) -> bool:
    return url.startswith("s3://")


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def is_remote(url: str) -> bool:
    return is_s3(url) or is_http(url)


def split_s3(url: str) -> Tuple[str, str]:
    """``s3://bucket/key/part`` -> ``("bucket", "key/part")``."""
    if not is_s3(url):
        raise DataSourceError(f"not an s3:// URL: {url!r}")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise DataSourceError(f"s3 URL without a bucket: {url!r}")
    return bucket, key


def s3_client(storage_options: Optional[Mapping[str, Any]] = None) -> Any:
    """A boto3 S3 client; ``anon=True`` sends unsigned requests (public buckets such as OpenImages')."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    options = dict(storage_options or {})
    unknown = set(options) - S3_OPTION_KEYS
    if unknown:
        raise DataSourceError(
            f"unknown storage_options {sorted(unknown)}; accepted keys: {sorted(S3_OPTION_KEYS)}"
        )
    anon = bool(options.pop("anon", False))
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"},
        signature_version=UNSIGNED if anon else None,
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", config=config, **options)


class Storage:
    """Reads and writes whole objects or streams under local paths, s3:// and http(s):// URLs.

    The boto3 client is built on first S3 use in each process, under a lock: download threads share
    one client (boto3 clients are thread-safe) instead of racing to build several.
    """

    def __init__(self, storage_options: Optional[Mapping[str, Any]] = None) -> None:
        self.storage_options: Dict[str, Any] = dict(storage_options or {})
        self._client: Any = None
        self._client_pid = -1
        self._client_lock = threading.Lock()

    def __getstate__(self) -> Dict[str, Any]:
        return {"storage_options": self.storage_options}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["storage_options"])

    @property
    def client(self) -> Any:
        """This process's S3 client (a forked loader worker builds its own instead of sharing sockets)."""
        with self._client_lock:
            if self._client is None or self._client_pid != os.getpid():
                self._client = s3_client(self.storage_options)
                self._client_pid = os.getpid()
            return self._client

    def open(self, url: str) -> BinaryIO:
        """A readable binary stream of the object or file, read sequentially."""
        if is_s3(url):
            bucket, key = split_s3(url)
            from botocore.exceptions import ClientError

            try:
                return self.client.get_object(Bucket=bucket, Key=key)["Body"]
            except ClientError as err:  # matched by code: exception classes differ between clients
                code = err.response.get("Error", {}).get("Code", "")
                if code in S3_MISSING_KEY_CODES:
                    raise FileNotFoundError(url) from err
                if code == "NoSuchBucket":
                    raise DataSourceError(f"bucket {bucket!r} does not exist ({url})") from err
                raise
        if is_http(url):
            try:
                return urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S)
            except urllib.error.HTTPError as err:
                if err.code == 404:
                    raise FileNotFoundError(url) from err
                raise
        return open(url, "rb")

    def read_bytes(self, url: str) -> bytes:
        with self.open(url) as stream:
            return stream.read()

    def write_bytes(self, url: str, data: bytes) -> None:
        """Write atomically: a single PUT on S3; locally a synced temp file renamed into place."""
        if is_s3(url):
            bucket, key = split_s3(url)
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
            return
        if is_http(url):
            raise DataSourceError(f"cannot write to an http(s) URL: {url!r}")
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)

    def list_s3(self, url: str, suffix: str) -> List[str]:
        """Sorted s3:// URLs of the objects under a prefix whose key ends with ``suffix``."""
        bucket, prefix = split_s3(url)
        paginator = self.client.get_paginator("list_objects_v2")
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if obj["Key"].endswith(suffix)
        ]
        return [f"s3://{bucket}/{key}" for key in sorted(keys)]


def join(base: str, name: str) -> str:
    """Join a directory path or URL prefix with a file name."""
    if is_remote(base):
        return base.rstrip("/") + "/" + name
    return os.path.join(base, name)


def local_glob(pattern: str) -> List[str]:
    return sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
