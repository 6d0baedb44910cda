"""The models directory: promoted versions, the atomic `current` pointer, rollback, pruning, and the watcher.

Layout of `models.dir`:
* `current`: a symbolic link to the served model directory (relative when inside `models.dir`). It is
  replaced with one rename(2), so a reader sees the old or the new target, never a missing or half-written
  pointer. Until the first promotion there is no pointer and `models.active` is served.
* `history.json`: the promoted versions, oldest first; `rollback` steps back one entry.
* `candidates/<version>/`: model directories written by `rightsize retrain`.
Promotion keeps the last `models.keep` promoted versions; older promoted candidates are deleted (never
`models.active`, nor anything outside `candidates/`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.errors import RouterError

log = logging.getLogger(__name__)

POINTER = "current"
HISTORY = "history.json"
CANDIDATES = "candidates"


class RegistryError(RouterError):
    """A promotion, rollback or listing of the models directory failed."""


@dataclass(frozen=True)
class Promotion:
    """One entry of `history.json`: a model directory that was made current, and when (ISO 8601 UTC)."""

    version: str
    path: str  # relative to the models directory when inside it
    promoted_at: str


class ModelRegistry:
    """The models directory `root`; `active` is served while no pointer exists."""

    def __init__(self, root: Path, active: str = "default", keep: int = 5) -> None:
        self.root = Path(root)
        self.active = active
        self.keep = keep

    @property
    def pointer(self) -> Path:
        return self.root / POINTER

    def current_path(self) -> Path:
        """The model directory to serve: the pointer's target, else `root/active` (resolved)."""
        if self.pointer.is_symlink():
            return (self.root / os.readlink(self.pointer)).resolve()
        return (self.root / self.active).resolve()

    def history(self) -> list[Promotion]:
        path = self.root / HISTORY
        if not path.is_file():
            return []
        try:
            return [Promotion(**entry) for entry in json.loads(path.read_text(encoding="utf-8"))]
        except (ValueError, TypeError) as exc:
            raise RegistryError(f"{path} is corrupt: {exc}") from exc

    def promote(self, model_dir: Path) -> Promotion:
        """Make `model_dir` current (verified as loadable first) and prune old versions."""
        model_dir = Path(model_dir).resolve()
        version = _version_of(model_dir)
        with self._locked():
            promoted_at = datetime.now(UTC).isoformat(timespec="seconds")
            entry = Promotion(version, self._relative(model_dir), promoted_at)
            history = [h for h in self.history() if h.path != entry.path] + [entry]
            self._write_history(history)
            self._point_at(model_dir)
            self._prune(history)
        log.info("promoted %s (%s)", version, model_dir)
        return entry

    def rollback(self) -> Path:
        """Point back at the previously promoted version (or `active` before any); returns what is served."""
        with self._locked():
            history = self.history()
            if not self.pointer.is_symlink() or not history:
                raise RegistryError(f"nothing to roll back in {self.root}: no version was promoted")
            history.pop()
            while history and not (self.root / history[-1].path).is_dir():
                history.pop()  # pruned by hand: skip it
            if history:
                self._point_at((self.root / history[-1].path).resolve())
            else:
                self.pointer.unlink()
            self._write_history(history)
        return self.current_path()

    def listing(self) -> list[tuple[str, Path, str, bool]]:
        """(version, directory, promoted_at or "", is current) of `active`, promoted and candidate models."""
        current = self.current_path()
        rows: dict[Path, tuple[str, str]] = {}
        for directory in [self.root / self.active, *sorted((self.root / CANDIDATES).glob("*/"))]:
            if (directory / "manifest.json").is_file():
                rows[directory.resolve()] = (_version_of(directory, strict=False), "")
        for entry in self.history():
            directory = (self.root / entry.path).resolve()
            if directory.is_dir():
                rows[directory] = (entry.version, entry.promoted_at)
        return [(version, path, when, path == current) for path, (version, when) in rows.items()]

    # -- plumbing -------------------------------------------------------------------------------------
    def _point_at(self, model_dir: Path) -> None:
        tmp = self.root / f".{POINTER}.{os.getpid()}.{threading.get_ident()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(self._relative(model_dir), tmp)
        os.replace(tmp, self.pointer)  # atomic: readers see the old or the new target

    def _write_history(self, history: list[Promotion]) -> None:
        tmp = self.root / f".{HISTORY}.tmp"
        tmp.write_text(json.dumps([h.__dict__ for h in history], indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.root / HISTORY)

    def _prune(self, history: list[Promotion]) -> None:
        keep = {(self.root / h.path).resolve() for h in history[-self.keep :]} | {self.current_path()}
        candidates = (self.root / CANDIDATES).resolve()
        for entry in history[: -self.keep]:
            directory = (self.root / entry.path).resolve()
            if directory not in keep and directory.parent == candidates and directory.is_dir():
                shutil.rmtree(directory)
                log.info("pruned model %s (%s)", entry.version, directory)
        if len(history) > self.keep:
            self._write_history(history[-self.keep :])

    def _relative(self, model_dir: Path) -> str:
        root = self.root.resolve()
        return str(model_dir.relative_to(root)) if model_dir.is_relative_to(root) else str(model_dir)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield


def _version_of(model_dir: Path, *, strict: bool = True) -> str:
    from classifier.artifacts import read_manifest
    from classifier.errors import ClassifierError

    try:
        return read_manifest(model_dir).version
    except ClassifierError as exc:
        if strict:
            raise RegistryError(str(exc)) from exc
        return "?"


class ModelWatcher:
    """Polls the registry's pointer; on a change, loads the new model on its own thread, then `swap`s it in.

    The model is fully loaded (and verified) before the swap, so requests never wait for it; a model that
    fails to load is logged once and the old one keeps serving.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        load: Callable[[Path], Any],
        swap: Callable[[Any], object],  # installs the loaded model; its result is ignored
        *,
        interval_s: float = 1.0,
        loaded: Path | None = None,
    ) -> None:
        self.registry = registry
        self.load = load
        self.swap = swap
        self.interval_s = interval_s
        self.loaded = loaded if loaded is not None else registry.current_path()
        self._failed: Path | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """One poll: True when a new model was swapped in."""
        try:
            path = self.registry.current_path()
        except OSError as exc:
            log.warning("cannot read the model pointer: %s", exc)
            return False
        if path == self.loaded or path == self._failed:
            return False
        try:
            scorer = self.load(path)
        except Exception as exc:  # a bad candidate must not take the serving model down
            self._failed = path
            log.error("not switching to model %s: %s", path, exc)
            return False
        self.swap(scorer)
        self.loaded, self._failed = path, None
        log.info("now serving classifier %s from %s", getattr(scorer, "version", "?"), path)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()
