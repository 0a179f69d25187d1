"""Build and cache the tiny lab guest: a Debian kernel, a busybox initramfs and a raw base image.

Cache layout (kept between labs; delete it freely, the next guest rebuilds it, ~1 min):

    <cache>/kernel/vmlinuz, modules/*.ko, load-order   from Debian's linux-image .deb, not installed
    <cache>/initrd.gz                                   busybox-static + modules + guest/init.sh
    <cache>/base.raw                                    128 MiB raw "image", first 96 MiB random

The kernel package is found with `apt-cache depends linux-image-amd64` (override with
BALANCER_LAB_KERNEL_PACKAGE) and fetched with `apt-get download`, running `apt-get update` once if
apt knows no kernel yet. A lock file serialises builders, so two test runs can start together.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import lzma
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from balancer.lab.command import run
from balancer.lab.cpio import CpioEntry, newc_archive
from balancer.lab.domain import SYSTEM_EMULATOR
from balancer.lab.errors import LabError

KERNEL_META_PACKAGE = "linux-image-amd64"
# virtio_pci is the transport for the other two; virtio_balloon lets libvirt report memory stats.
GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_balloon")
BUSYBOX = Path("/bin/busybox")
SYSTEM_QEMU = Path(SYSTEM_EMULATOR)
TCG_EMULATOR_NAME = "qemu-tcg"
BASE_MIB = 128
BASE_RANDOM_MIB = 96
MIB = 1 << 20


@dataclass(frozen=True)
class GuestImage:
    """Paths of the cached guest artifacts in the root namespace."""

    kernel: Path
    initrd: Path
    base: Path


def ensure_guest_image(cache: Path) -> GuestImage:
    """Return the cached guest artifacts, building whatever is missing or out of date."""
    cache.mkdir(parents=True, exist_ok=True)
    kernel_dir = cache / "kernel"
    image = GuestImage(kernel_dir / "vmlinuz", cache / "initrd.gz", cache / "base.raw")
    with _locked(cache / ".lock"):
        if not image.kernel.exists():
            _fetch_kernel(kernel_dir)
        stamp_file = cache / "initrd.stamp"
        stamp = _initrd_stamp(kernel_dir)
        if not image.initrd.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
            _write_atomic(image.initrd, gzip.compress(newc_archive(_initrd_entries(kernel_dir)), 6))
            stamp_file.write_text(stamp)
        if not image.base.exists():
            _make_base(image.base)
    return image


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _kernel_package() -> str:
    pinned = os.environ.get("BALANCER_LAB_KERNEL_PACKAGE")
    if pinned:
        return pinned
    for attempt in range(2):
        out = run(["apt-cache", "depends", KERNEL_META_PACKAGE], check=False).stdout
        found = re.search(r"Depends: (linux-image-[^\s<>]+)", out)
        if found:
            return found.group(1)
        if attempt == 0:  # a fresh machine has no package lists yet
            run(["apt-get", "update", "-q"], timeout=900)
    raise LabError(f"apt knows no kernel for {KERNEL_META_PACKAGE}; check the Debian sources")


def _fetch_kernel(kernel_dir: Path) -> None:
    package = _kernel_package()
    with tempfile.TemporaryDirectory(dir=kernel_dir.parent, prefix=".kernel-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # lets apt drop to its _apt user for the download
        run(["apt-get", "download", "-q", package], cwd=tmp, timeout=1800)
        debs = sorted(tmp.glob("*.deb"))
        if not debs:
            raise LabError(f"apt-get download {package} produced no .deb in {tmp}")
        tree = tmp / "tree"
        run(["dpkg-deb", "-x", debs[0], tree], timeout=600)
        vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
        module_roots = sorted((tree / "lib" / "modules").iterdir())
        if not vmlinuz or not module_roots:
            raise LabError(f"{debs[0].name} has no /boot/vmlinuz-* or /lib/modules/*")
        staging = tmp / "kernel"
        (staging / "modules").mkdir(parents=True)
        shutil.copyfile(vmlinuz[0], staging / "vmlinuz")
        order = module_load_order(module_roots[0], GUEST_MODULES)
        for name, path in order:
            (staging / "modules" / f"{name}.ko").write_bytes(_read_module(path))
        (staging / "load-order").write_text("".join(f"{name}\n" for name, _ in order))
        shutil.rmtree(kernel_dir, ignore_errors=True)
        os.replace(staging, kernel_dir)


def _module_name(path: Path) -> str:
    return path.name.split(".ko", 1)[0].replace("-", "_")


def _module_depends(data: bytes) -> list[str]:
    """The `depends=` entry of a module's .modinfo section (NUL-separated key=value strings)."""
    found = re.search(rb"\0depends=([^\0]*)\0", data)
    return [dep.replace("-", "_") for dep in found.group(1).decode().split(",") if dep] if found else []


def module_load_order(module_root: Path, wanted: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(name, file) for `wanted` and their dependencies under module_root, dependencies first.

    The .deb ships no modules.dep (depmod writes it at install time), so dependencies come from
    each module's own .modinfo. Modules listed in modules.builtin are built in and left out.
    """
    paths = {_module_name(path): path for path in module_root.rglob("*.ko*")}
    builtin_file = module_root / "modules.builtin"
    builtin_lines = builtin_file.read_text().split() if builtin_file.exists() else []
    builtin = {_module_name(Path(line)) for line in builtin_lines}
    order: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin:
            return
        if name not in paths:
            raise LabError(f"kernel module {name} is neither in {module_root} nor built in")
        seen.add(name)
        for dep in _module_depends(_read_module(paths[name])):
            visit(dep)
        order.append((name, paths[name]))

    for name in wanted:
        visit(name)
    return order


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko"):
        return data
    raise LabError(f"cannot unpack kernel module {path.name} (busybox insmod needs a plain .ko)")


def _init_script() -> bytes:
    return (resources.files("balancer.lab") / "guest" / "init.sh").read_bytes()


def _initrd_stamp(kernel_dir: Path) -> str:
    digest = hashlib.sha256(_init_script())
    digest.update((kernel_dir / "load-order").read_bytes())
    digest.update(BUSYBOX.read_bytes())
    return digest.hexdigest()


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit ELF without a PT_INTERP header, i.e. one that needs no dynamic loader."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    pt_interp = 3
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != pt_interp for i in range(phnum))


def _initrd_entries(kernel_dir: Path) -> list[CpioEntry]:
    if not BUSYBOX.exists() or not _is_static_elf(BUSYBOX):
        raise LabError(f"{BUSYBOX} must be a static busybox: apt-get install busybox-static")
    entries = [CpioEntry.directory(d) for d in ("bin", "dev", "proc", "sys", "mnt", "lib", "lib/modules")]
    # the kernel opens /dev/console for PID 1 before init can mount devtmpfs
    entries.append(CpioEntry.char_device("dev/console", 5, 1))
    entries.append(CpioEntry.file("bin/busybox", BUSYBOX.read_bytes(), executable=True))
    entries.append(CpioEntry.file("init", _init_script(), executable=True))
    entries.append(CpioEntry.file("lib/modules/load-order", (kernel_dir / "load-order").read_bytes()))
    for module in sorted((kernel_dir / "modules").glob("*.ko")):
        entries.append(CpioEntry.file(f"lib/modules/{module.name}", module.read_bytes()))
    return entries


def _make_base(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        for _ in range(BASE_RANDOM_MIB):
            out.write(os.urandom(MIB))
        out.truncate(BASE_MIB * MIB)  # the tail stays a hole: reads as zeros, like an unused disk end
    os.replace(tmp, path)


def ensure_tcg_emulator(cache: Path) -> Path:
    """The wrapper TCG lab guests run on (guest/qemu-tcg.sh says why), at a stable path in the
    cache, rewritten only when it or the QEMU binary changed. libvirt caches QEMU capabilities per
    emulator path and ctime (~4 s of probing per host otherwise); a stable file keeps that cache
    valid across labs, and the QEMU binary's ctime in it makes a QEMU upgrade re-probe."""
    cache.mkdir(parents=True, exist_ok=True)
    script = (resources.files("balancer.lab") / "guest" / "qemu-tcg.sh").read_bytes()
    content = script + f"# for {SYSTEM_QEMU} changed at {SYSTEM_QEMU.stat().st_ctime_ns}\n".encode()
    target = cache / TCG_EMULATOR_NAME
    with _locked(cache / ".lock"):
        if not target.exists() or target.read_bytes() != content:
            tmp = target.with_name(f".{TCG_EMULATOR_NAME}.{os.getpid()}.tmp")
            tmp.write_bytes(content)
            tmp.chmod(0o755)
            tmp.replace(target)
    return target
