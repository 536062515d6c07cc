"""Streaming multipart uploads: each file part goes straight to disk, held to its own size limit as it arrives.

Starlette's ``request.form()`` spools every file with no per-file limit; a 20 MiB photo limit must stop the
upload at the 20 MiB + 1st byte, not after a gigabyte has landed in a temporary file.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from xp_sdk.errors import InvalidInputError
from xp_sdk.server.limits import too_large

# Only what could leave the folder or confuse a terminal goes: the name reaches audit records and C2PA titles,
# which should read as they do in local mode.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass(frozen=True)
class FilePart:
    max_bytes: int
    max_count: int = 1


@dataclass(frozen=True)
class UploadedFile:
    path: Path
    """Where it was saved: ``<dest>/<n>/<the client's base name>``, so audit records and C2PA ingredient titles
    carry the name the caller used."""
    client_name: str
    """The file name as the client sent it (error messages name it instead of the server's path)."""
    size: int
    sha256: str


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None or not value.strip():
            raise InvalidInputError(f"the form field {name!r} is required")
        return value

    def values(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))

    def file(self, name: str) -> UploadedFile | None:
        files = self.files.get(name)
        return files[0] if files else None

    def require_file(self, name: str) -> UploadedFile:
        found = self.file(name)
        if found is None:
            raise InvalidInputError(f"the file {name!r} is required")
        return found

    def renames(self) -> dict[str, str]:
        """Saved path → the client's name, to take the server's paths out of error messages."""
        return {str(f.path): f.client_name for files in self.files.values() for f in files}


def safe_name(name: str, default: str = "upload") -> str:
    base = _UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip().lstrip(".")
    while len(base.encode()) > 200:  # file systems allow 255 bytes; leave room for nothing else to matter
        base = base[1:]
    return base or default


class _Reader:
    """python-multipart callbacks → fields in memory, files on disk."""

    def __init__(self, dest: Path, parts: dict[str, FilePart], field_bytes: int, max_fields: int) -> None:
        self.dest = dest
        self.parts = parts
        self.field_bytes = field_bytes
        self.max_fields = max_fields
        self.form = Form()
        self.count = 0
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._client_name: str | None = None
        self._handle: IO[bytes] | None = None
        self._path: Path | None = None
        self._size = 0
        self._digest = hashlib.sha256()
        self._value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_name = b""
        self._header_value = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = b""
        self._header_value = b""

    def _headers_finished(self) -> None:
        self.count += 1
        if self.count > self.max_fields + sum(p.max_count for p in self.parts.values()):
            raise InvalidInputError("too many parts in the form")
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._client_name = filename.decode("utf-8", "replace") if filename is not None else None
        self._size = 0
        self._value = bytearray()
        if self._client_name is None:
            return
        part = self.parts.get(self._name)
        if part is None:
            raise InvalidInputError(f"unexpected file field {self._name!r}; this endpoint takes {sorted(self.parts)}")
        saved = self.form.files.setdefault(self._name, [])
        if len(saved) >= part.max_count:
            raise InvalidInputError(f"at most {part.max_count} file(s) in {self._name!r}")
        folder = self.dest / str(self.count)
        folder.mkdir(parents=True)
        self._path = folder / safe_name(self._client_name)
        self._handle = self._path.open("wb")
        self._digest = hashlib.sha256()

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._handle is not None:
            limit = self.parts[self._name].max_bytes
            if self._size > limit:
                raise too_large(f"the file {self._name!r}", limit)
            chunk = data[start:end]
            self._handle.write(chunk)
            self._digest.update(chunk)
        else:
            if self._size > self.field_bytes:
                raise too_large(f"the form field {self._name!r}", self.field_bytes)
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self._handle is not None and self._path is not None and self._client_name is not None:
            self._handle.close()
            self._handle = None
            self.form.files[self._name].append(
                UploadedFile(self._path, self._client_name[:1024], self._size, self._digest.hexdigest())
            )
            self._path = None
        else:
            self.form.fields.setdefault(self._name, []).append(self._value.decode("utf-8", "replace"))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def read_form(
    request: Request, dest: Path, parts: dict[str, FilePart], *, field_bytes: int, max_fields: int
) -> Form:
    """Parse a multipart/form-data body into ``dest`` as it streams in; on any failure ``dest`` is removed."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInputError("send this request as multipart/form-data")
    dest.mkdir(parents=True, mode=0o700)
    reader = _Reader(dest, parts, field_bytes, max_fields)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    try:
        try:
            async for chunk in request.stream():
                # Writing a chunk of at most 64 KiB to a local file is brief; a thread hop per chunk costs more.
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise InvalidInputError(f"the multipart body is malformed: {exc}") from exc
    except BaseException:
        reader.close()
        shutil.rmtree(dest, ignore_errors=True)
        raise
    finally:
        reader.close()
    return reader.form
