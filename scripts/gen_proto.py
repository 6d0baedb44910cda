"""Generate the gRPC stubs in router/_proto/ from proto/; `--check` exits 1 when they are stale."""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_FILES = ("rightsize/v1/router.proto",)
OUT_DIR = ROOT / "router" / "_proto"
INIT_TEXT = '"""Generated gRPC stubs (scripts/gen_proto.py); never edit by hand."""\n'


def generate() -> dict[str, str]:
    """Run protoc and return {file name: text} for the flat router/_proto package."""
    from grpc_tools import protoc

    include = str(resources.files("grpc_tools") / "_proto")
    files: dict[str, str] = {"__init__.py": INIT_TEXT}
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *PROTO_FILES,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("gen_proto: protoc failed")
        for proto in PROTO_FILES:
            generated_dir = Path(tmp) / Path(proto).parent
            package = ".".join(Path(proto).parent.parts)
            for path in sorted(generated_dir.glob("*_pb2*.py*")):
                # protoc imports siblings by their proto package; the stubs live in router._proto instead.
                text = path.read_text()
                files[path.name] = text.replace(f"from {package} import", "from router._proto import")
    return files


def stale_files(out_dir: Path = OUT_DIR) -> list[str]:
    """Names of the files in out_dir that differ from a fresh generation (missing ones included)."""
    fresh = generate()
    stale = [name for name, text in fresh.items() if _read(out_dir / name) != text]
    extra = [p.name for p in out_dir.glob("*_pb2*.py*") if p.name not in fresh]
    return sorted(stale + extra)


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the stubs are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            names = ", ".join(stale)
            print(f"stale generated stubs in {OUT_DIR}: {names}; run scripts/gen_proto.py", file=sys.stderr)
            return 1
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (OUT_DIR / name).write_text(text)
    print(f"wrote {OUT_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
