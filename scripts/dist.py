#!/usr/bin/python3
"""Packages a built litestream.so three ways (`make dist`, docs/install.md):

  litestream-<version>-linux-<arch>.tar.gz   litestream.so, README.md,
                                             LICENSE, SHA256SUMS
  litestream_ext-<version>-py3-none-manylinux_<glibc>_<arch>.whl
                                             Python: litestream_ext.load(conn)
  litestream-ext-<version>.tgz               npm: require('litestream-ext')

The version is meson.build's project version (the one place it is written),
read from the build directory, and must be the one the .so reports through
litestream_version(): a stale .so is refused.  The .so is stripped; the
wheel's platform tag names the newest glibc symbol version it needs (read
from its dynamic symbols, as `objdump -T` shows them).  Python's standard
library and binutils (strip, objdump) are all it uses.

Usage: scripts/dist.py BUILD_DIR OUT_DIR [--so PATH]
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import zipfile

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(SRC, "packaging")
NPM_CPU = {"x86_64": "x64", "aarch64": "arm64"}
# Fixed timestamps, so that the same .so gives the same archives.
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def project_version(build):
    out = subprocess.run(["meson", "introspect", "--projectinfo", build],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["version"]


def so_version(so):
    """litestream_version() of the .so, loaded into this Python."""
    c = sqlite3.connect(":memory:")
    if not hasattr(c, "enable_load_extension"):
        sys.exit(f"dist: this Python ({sys.executable}) cannot load SQLite "
                 f"extensions, so cannot check the .so's version: run "
                 f"scripts/dist.py with /usr/bin/python3")
    c.enable_load_extension(True)
    try:
        # The entry point named: the file may have another name here.
        c.execute("SELECT load_extension(?, 'sqlite3_litestream_init')",
                  (so,)).fetchall()
        return c.execute("SELECT litestream_version()").fetchone()[0]
    except sqlite3.Error as e:
        sys.exit(f"dist: cannot load {so}: {e}")


def glibc_needed(so):
    """The newest GLIBC_x.y among the .so's dynamic symbol versions."""
    out = subprocess.run(["objdump", "-T", so], check=True,
                         capture_output=True, text=True).stdout
    vers = {tuple(int(x) for x in m.split("."))
            for m in re.findall(r"GLIBC_([0-9]+(?:\.[0-9]+)+)", out)}
    return max(vers)[:2] if vers else (2, 17)


def tar_add(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = EPOCH
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def write_tgz(path, members):
    """members: (name, bytes, mode); a gzip'd tar with fixed metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode in members:
            tar_add(t, name, data, mode)
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f,
                           mtime=EPOCH) as g:
            g.write(buf.getvalue())


def release_tarball(out, so, version, arch, glibc):
    top = f"litestream-{version}-linux-{arch}"
    readme = read(os.path.join(PKG, "README.release.md")).decode()
    readme = (readme.replace("@VERSION@", version).replace("@ARCH@", arch)
              .replace("@GLIBC@", "%d.%d" % glibc)).encode()
    files = [("litestream.so", read(so), 0o755), ("README.md", readme, 0o644),
             ("LICENSE", read(os.path.join(SRC, "LICENSE")), 0o644)]
    sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n"
                   for n, d, _ in files).encode()
    files.append(("SHA256SUMS", sums, 0o644))
    path = os.path.join(out, top + ".tar.gz")
    write_tgz(path, [(f"{top}/{n}", d, m) for n, d, m in files])
    return path


def wheel(out, so, version, arch, glibc):
    name = "litestream_ext"
    tag = "py3-none-manylinux_%d_%d_%s" % (glibc + (arch,))
    info = f"{name}-{version}.dist-info"
    init = read(os.path.join(PKG, "python", name, "__init__.py")).decode()
    readme = read(os.path.join(PKG, "python", "README.md")).decode()
    meta = (f"Metadata-Version: 2.1\nName: litestream-ext\n"
            f"Version: {version}\n"
            f"Summary: The litestream SQLite extension: replicates a SQLite "
            f"database to object storage from inside the process\n"
            f"License: Apache-2.0\nRequires-Python: >=3.8\n"
            f"Classifier: Operating System :: POSIX :: Linux\n"
            f"Classifier: License :: OSI Approved :: Apache Software License\n"
            f"Description-Content-Type: text/markdown\n\n{readme}")
    whl = (f"Wheel-Version: 1.0\nGenerator: litestream scripts/dist.py\n"
           f"Root-Is-Purelib: false\nTag: {tag}\n")
    files = [(f"{name}/__init__.py", init.replace("@VERSION@", version)
              .encode(), 0o644),
             (f"{name}/litestream.so", read(so), 0o755),
             (f"{info}/METADATA", meta.encode(), 0o644),
             (f"{info}/WHEEL", whl.encode(), 0o644),
             (f"{info}/LICENSE", read(os.path.join(SRC, "LICENSE")), 0o644)]
    record = ""
    for n, d, _ in files:
        h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=")
        record += f"{n},sha256={h.decode()},{len(d)}\n"
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode(),
                  0o644))
    path = os.path.join(out, f"{name}-{version}-{tag}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d, mode in files:
            zi = zipfile.ZipInfo(n, ZIP_TIME)
            zi.external_attr = (0o100000 | mode) << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, d)
    return path


def npm_package(out, so, version, arch):
    if arch not in NPM_CPU:
        sys.exit(f"dist: no npm CPU name for {arch}")
    d = os.path.join(PKG, "npm")
    pj = read(os.path.join(d, "package.json.in")).decode()
    pj = pj.replace("@VERSION@", version).replace("@CPU@", NPM_CPU[arch])
    json.loads(pj)  # a template that no longer parses fails here
    members = [("package/package.json", pj.encode(), 0o644)]
    for f in ("index.js", "index.d.ts", "README.md"):
        members.append((f"package/{f}", read(os.path.join(d, f)), 0o644))
    members += [("package/LICENSE", read(os.path.join(SRC, "LICENSE")), 0o644),
                ("package/lib/litestream.so", read(so), 0o755)]
    path = os.path.join(out, f"litestream-ext-{version}.tgz")
    write_tgz(path, members)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("out")
    ap.add_argument("--so", help="default: BUILD/litestream.so")
    a = ap.parse_args()
    so = a.so or os.path.join(a.build, "litestream.so")
    version = project_version(a.build)
    got = so_version(os.path.abspath(so))
    if got != version:
        sys.exit(f"dist: {so} reports version {got}, meson.build says "
                 f"{version}: rebuild it (ninja -C {a.build})")
    arch = platform.machine()
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, "litestream.so")
        subprocess.run(["strip", "--strip-unneeded", "-o", stripped, so],
                       check=True)
        glibc = glibc_needed(stripped)
        made = [release_tarball(a.out, stripped, version, arch, glibc),
                wheel(a.out, stripped, version, arch, glibc),
                npm_package(a.out, stripped, version, arch)]
        print(f"dist: litestream.so {version}, stripped "
              f"{os.path.getsize(stripped) / 1024:.0f} KiB, needs glibc "
              f">= %d.%d" % glibc)
    for p in made:
        print(f"dist: {p} ({os.path.getsize(p) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
