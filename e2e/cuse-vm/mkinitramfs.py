#!/usr/bin/env python3
"""Pack a directory tree into a gzip-compressed cpio "newc" archive (an initramfs).

The host has no cpio(1), and the kernel only needs the small subset of the
format written here: the "070701" ASCII header, regular files, directories
and symlinks, every entry owned by root, and the "TRAILER!!!" record. The
layout follows the kernel's own description in
Documentation/driver-api/early-userspace/buffer-format.rst.

usage: mkinitramfs.py SOURCE_DIR OUTPUT.cpio.gz
"""

import gzip
import os
import stat
import sys


def pad4(length: int) -> bytes:
    return b"\0" * ((4 - length % 4) % 4)


def entry(name: str, mode: int, data: bytes, ino: int, mtime: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = [
        ino,  # c_ino
        mode,  # c_mode
        0,  # c_uid: root
        0,  # c_gid: root
        2 if stat.S_ISDIR(mode) else 1,  # c_nlink
        mtime,  # c_mtime
        len(data),  # c_filesize
        0,  # c_devmajor
        0,  # c_devminor
        0,  # c_rdevmajor
        0,  # c_rdevminor
        len(encoded),  # c_namesize
        0,  # c_check (unused for newc)
    ]
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    out = header + encoded
    out += pad4(len(out))
    out += data + pad4(len(data))
    return out


def walk(source: str):
    """Yield (archive name, path) parents first, in a stable order."""
    for root, dirs, files in os.walk(source):
        dirs.sort()
        rel_root = os.path.relpath(root, source)
        if rel_root != ".":
            yield rel_root, root
        for name in sorted(files) + sorted(d for d in dirs if os.path.islink(os.path.join(root, d))):
            path = os.path.join(root, name)
            yield os.path.normpath(os.path.join(rel_root, name)), path


def main() -> None:
    source, output = sys.argv[1], sys.argv[2]
    chunks = []
    for ino, (name, path) in enumerate(walk(source), start=1):
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            data = os.readlink(path).encode()
        elif stat.S_ISREG(info.st_mode):
            with open(path, "rb") as handle:
                data = handle.read()
        elif stat.S_ISDIR(info.st_mode):
            data = b""
        else:
            sys.exit(f"mkinitramfs: unsupported file type: {path}")
        chunks.append(entry(name, info.st_mode, data, ino, int(info.st_mtime)))
    chunks.append(entry("TRAILER!!!", 0, b"", 0, 0))
    with gzip.open(output, "wb", compresslevel=1) as archive:
        archive.write(b"".join(chunks))


if __name__ == "__main__":
    main()
