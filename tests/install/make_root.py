#!/usr/bin/env python3
"""Makes a root directory for `chroot` out of packages installed on this Debian, without the
network: the named packages and everything they depend on (Depends and Pre-Depends, the first
alternative installed here, virtual packages through Provides), their files copied from this
system. With --register, the packages are also written into the root's dpkg database, so
`chroot ROOT dpkg -i PACKAGE.deb` checks a package's dependencies against exactly them.

    make_root.py ROOT [--register] PACKAGE...     prints the packages it put there, one a line

It is how the .deb test gets "a bare Debian with only what the package depends on" in
seconds, where debootstrap would download a whole base system. Run again on the same ROOT to
add more packages (files only, or registered too).
"""

import os
import re
import subprocess
import sys

FIELDS = ["Package", "Architecture", "db:Status-Abbrev", "Provides", "Pre-Depends", "Depends"]


def installed_packages():
    """name -> {arch, provides: [names], needs: [[alternative names]]} for installed packages."""
    form = "\\t".join("${%s}" % f for f in FIELDS) + "\\n"
    out = subprocess.run(["dpkg-query", "-W", "-f=" + form], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    packages = {}
    for row in out.splitlines():
        name, arch, status, provides, predepends, depends = (row.split("\t") + [""] * 6)[:6]
        if not status.startswith("ii"):
            continue
        needs = []
        for group in filter(None, (g.strip() for g in f"{predepends},{depends}".split(","))):
            needs.append([bare_name(a) for a in group.split("|")])
        packages[name] = {"arch": arch, "provides": [bare_name(p) for p in provides.split(",") if p.strip()],
                          "needs": needs}
    return packages


def bare_name(spec):
    """'libc6:any (>= 2.34)' -> 'libc6'."""
    return re.split(r"[\s(:]", spec.strip(), maxsplit=1)[0]


def closure(roots, packages):
    providers = {}
    for name, info in packages.items():
        for virtual in info["provides"]:
            providers.setdefault(virtual, []).append(name)
    chosen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        if name not in packages:
            sys.exit(f"make_root: {name} is not installed here (apt-get install {name})")
        chosen.add(name)
        for alternatives in packages[name]["needs"]:
            pick = next((a for a in alternatives if a in packages), None)
            if pick is None:
                pick = next((providers[a][0] for a in alternatives if a in providers), None)
            if pick is None:
                sys.exit(f"make_root: {name} needs one of {' | '.join(alternatives)}, none installed here")
            todo.append(pick)
    return sorted(chosen)


def files_of(name, arch):
    for query in (f"{name}:{arch}", name):
        done = subprocess.run(["dpkg-query", "-L", query], capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            return done.stdout.splitlines()
    return []


def copy_files(root, paths):
    """Each path as it is here (a symlink stays a symlink); a directory only as a directory,
    and through the root's merged-/usr links (/bin -> usr/bin) as on this system."""
    for path in sorted(set(paths)):
        if not path.startswith("/") or path == "/." or not os.path.lexists(path):
            continue  # excluded here (path-exclude of a container image), or a diverted file
        target = os.path.join(root, path.lstrip("/"))
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        if os.path.isdir(path) and not os.path.islink(path):
            os.makedirs(target, exist_ok=True)
        elif not os.path.lexists(target):
            if os.path.islink(path):
                os.symlink(os.readlink(path), target)
            else:
                with open(path, "rb") as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                os.chmod(target, os.stat(path).st_mode & 0o7777)


def register(root, names, packages):
    admin = os.path.join(root, "var/lib/dpkg")
    os.makedirs(os.path.join(admin, "info"), exist_ok=True)
    os.makedirs(os.path.join(admin, "updates"), exist_ok=True)
    status_file = os.path.join(admin, "status")
    known = set()
    if os.path.exists(status_file):
        known = set(re.findall(r"^Package: (\S+)", open(status_file).read(), re.M))
    with open(status_file, "a") as status:
        for name in names:
            if name in known:
                continue
            arch = packages[name]["arch"]
            record = subprocess.run(["dpkg-query", "-s", f"{name}:{arch}"], capture_output=True,
                                    text=True, timeout=60)
            if record.returncode != 0:
                record = subprocess.run(["dpkg-query", "-s", name], check=True, capture_output=True,
                                        text=True, timeout=60)
            status.write(record.stdout.rstrip("\n") + "\n\n")
            with open(os.path.join(admin, "info", f"{name}.list"), "w") as listing:
                listing.write("\n".join(files_of(name, arch)) + "\n")


def main(argv):
    args = [a for a in argv if a != "--register"]
    if len(args) < 2:
        sys.exit("usage: make_root.py ROOT [--register] PACKAGE...")
    root, wanted = args[0], args[1:]
    packages = installed_packages()
    names = closure(wanted, packages)
    # The same merged-/usr layout as here, before any file goes in.
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        here = os.path.join("/", top)
        there = os.path.join(root, top)
        if os.path.islink(here) and not os.path.lexists(there):
            os.makedirs(os.path.join(root, os.readlink(here).lstrip("/")), exist_ok=True)
            os.symlink(os.readlink(here), there)
    paths = []
    for name in names:
        paths += files_of(name, packages[name]["arch"])
    copy_files(root, paths)
    if "--register" in argv:
        register(root, names, packages)
    print("\n".join(names))


if __name__ == "__main__":
    main(sys.argv[1:])
