"""The image's apt list provides every shared library the native modules link against.

No Docker engine runs here, so the check is made on this machine, which runs the image's base
(Debian 12, bookworm): each ``.so`` of open3d, torch and torchvision is resolved with ``ldd``;
a library found inside site-packages comes with a wheel; any other must belong to a Debian
package that ``scripts/apt-packages.txt`` installs (directly or as a dependency) or that every
Debian base holds (priority ``required``, and their dependencies). The local torch is a CUDA
build; the image's CPU wheels link a subset of its libraries.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SITE = Path(sysconfig.get_paths()["purelib"])
#: Libraries no wheel and no package of the image provides, and why that is right.
OUTSIDE_THE_IMAGE = {
    "libcuda.so.1": "the NVIDIA driver, mounted by the container runtime on a GPU host",
    "libtensorflow_framework.so.2": "open3d.ml.tf, loaded only with TensorFlow (not a dependency)",
    "libtbb.so.12": "open3d.ml.tf, as above",
}

pytestmark = pytest.mark.skipif(not (shutil.which("ldd") and shutil.which("dpkg-query")),
                                reason="needs a Debian system (ldd, dpkg-query) like the image's base")


def apt_list() -> list[str]:
    text = (ROOT / "scripts" / "apt-packages.txt").read_text()
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def installed_packages() -> dict[str, dict]:
    """Installed Debian packages: name -> {priority, depends (names, first installed alternative)}."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Priority}\t${Pre-Depends}, ${Depends}\n"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 2]
    names = {name for name, _, _ in rows}
    packages = {}
    for name, priority, depends in rows:
        wanted = []
        for clause in depends.split(","):
            choices = [re.split(r"[\s(:]", c.strip())[0] for c in clause.split("|") if c.strip()]
            wanted += [c for c in choices if c in names][:1]
        packages[name] = {"priority": priority, "depends": wanted}
    return packages


def closure(roots, packages) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen and name in packages:
            seen.add(name)
            todo += packages[name]["depends"]
    return seen


def package_of(path: str) -> str | None:
    real = Path(path).resolve()
    for candidate in {str(real), re.sub(r"^/usr", "", str(real)), str(path)}:
        found = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.split(":")[0].strip()
    return None


def native_modules() -> list[Path]:
    folders = [SITE / "open3d", SITE / "torch" / "lib", SITE / "torchvision"]
    found = [p for folder in folders for p in folder.rglob("*.so*") if p.is_file()]
    return found + list((SITE / "torch").glob("_C*.so"))


def test_the_apt_list_provides_every_library_the_native_modules_link():
    packages = installed_packages()
    listed = apt_list()
    provided = closure(listed, packages) | closure([n for n, p in packages.items() if p["priority"] == "required"],
                                                   packages)
    wheel_sonames = {p.name for p in SITE.rglob("*.so*")}
    modules = native_modules()
    assert len(modules) >= 10 and any(p.name.startswith("libOpen3D") for p in modules)
    missing, linked = [], set()
    for module in modules:
        ldd = subprocess.run(["ldd", str(module)], capture_output=True, text=True).stdout
        for name, target in re.findall(r"^\s*(\S+) => (.+?) \(", ldd + "\n", re.M) + \
                re.findall(r"^\s*(\S+) => (not found)", ldd, re.M):
            if target.startswith(str(SITE)) or name in wheel_sonames:
                continue  # comes with a wheel
            if target == "not found":
                if name not in OUTSIDE_THE_IMAGE:
                    missing.append(f"{module.name}: {name} not found")
                continue
            package = package_of(target)
            linked.add(package)
            if package not in provided:
                missing.append(f"{module.name}: {name} from Debian package {package}, not in scripts/apt-packages.txt")
    assert not missing, "\n".join(sorted(set(missing)))
    assert {"libegl1", "libgl1", "libx11-6"} <= linked  # what libOpen3D.so needs beyond the base


def test_the_dockerfile_and_setup_install_the_one_list():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY scripts/apt-packages.txt" in dockerfile and "/tmp/apt-packages.txt)" in dockerfile
    assert "scripts/apt-packages.txt" in (ROOT / "setup.sh").read_text()
    assert "scripts" not in (ROOT / ".dockerignore").read_text().split()  # the list is in the build context
