"""``zolib data``: list, download, verify and import dataset archives.

The main CLI (zolib/cli.py) calls :func:`add_data_parser` on its subparsers and
dispatches to :func:`run_data`; errors are raised as :class:`ZolibError`.
"""
from __future__ import annotations

import argparse

from zolib.data import download as dl
from zolib.data.manifests import datasets, load_manifest


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data {list,download,verify,import}`` to a main parser's subparsers."""
    p = subparsers.add_parser("data", help="list, download, verify or import datasets",
                              description="Manage dataset archives in the data root ($ZOLIB_DATA, "
                                          "default $ZOLIB_CACHE/data, i.e. ~/.cache/zolib/data).")
    p.add_argument("--root", default=None, help="data root (default: $ZOLIB_DATA, else $ZOLIB_CACHE/data, i.e. ~/.cache/zolib/data)")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    names = f"one of: {', '.join(datasets())}"
    sub.add_parser("list", help="datasets, their state in the data root, size and source")
    d = sub.add_parser("download", help="download (or reuse), verify and unpack a dataset")
    d.add_argument("name", metavar="NAME", help=names)
    d.add_argument("--url", default=None, help="a mirror URL of the archive (a URL ending in / is a folder)")
    v = sub.add_parser("verify", help="re-check the md5 of a downloaded archive")
    v.add_argument("name", metavar="NAME", help=names)
    i = sub.add_parser("import", help="verify an archive you downloaded yourself and add it to the data root")
    i.add_argument("name", metavar="NAME", help=names)
    i.add_argument("path", metavar="PATH", help="the archive file")
    p.set_defaults(func=run_data)
    return p


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # unreachable


def run_data(args: argparse.Namespace) -> int:
    """Run one ``zolib data`` action; returns the exit status (0)."""
    root = getattr(args, "root", None)
    cmd = args.data_command
    if cmd == "list":
        rows = [("NAME", "STATE", "SIZE", "SOURCE")]
        for name in datasets():
            m = load_manifest(name)
            rows.append((name, dl.status(m, root=root).state, _size(m.size), m.source))
        widths = [max(len(r[k]) for r in rows) for k in range(3)]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
        print(f"data root: {root or dl.data_root()}")
        return 0
    m = load_manifest(args.name)
    if cmd == "download":
        folder = dl.prepare(m, root=root, download=True, url=args.url)
        print(f"{m.name}: ready in {folder}")
    elif cmd == "verify":
        path = dl.verify(m, root=root)
        print(f"{m.name}: {path} verified (md5 {m.md5})")
    elif cmd == "import":
        path = dl.import_archive(m, args.path, root=root)
        print(f"{m.name}: imported to {path} (md5 {m.md5}); it is unpacked on first load")
    return 0
