"""retrain -> promote -> the live server switches classifier between requests; rollback; registry rules."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from router._proto import router_pb2 as pb
from router.cli import main
from router.config import load_config
from router.learning.retrain import RetrainError, in_holdout, labelled_examples, split
from router.model_registry import ModelRegistry, RegistryError
from router.requestlog import open_store
from router.rpc.server import load_scorer
from tests.router.conftest import StartServer
from tests.router.learning.support import (
    embed_into,
    labelled_log,
    synthetic_examples,
    train_tiny,
    write_config,
)
from tests.router.support import Backends, user

LOGGED = 80  # labelled requests in each test's log
FED_BACK = 300  # in the live-swap test: a few hundred fed-back calls (LOGGED's prompts are their first 80)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the module: every prompt the tests train on is embedded once."""
    path = tmp_path_factory.mktemp("cache") / "embeddings.npz"
    texts = [e.text for e in synthetic_examples(60, seed=7) + synthetic_examples(FED_BACK, seed=3)]
    embed_into(path, sorted(set(texts)))
    return path


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    """A deliberately bad champion: trained on inverted labels."""
    out = tmp_path_factory.mktemp("champion") / "model"
    train_tiny(out, synthetic_examples(60, seed=7, invert=True), cache)
    return out


@pytest.fixture
def models_dir(tmp_path: Path, champion_dir: Path, cache: Path) -> Path:
    """A models directory serving the champion as `active`; the module's embedding cache is where `retrain`
    keeps its cache for configs in `tmp_path` (the state directory: `log.spill_dir`'s parent)."""
    root = tmp_path / "models"
    root.mkdir()
    for state in (tmp_path, tmp_path / "var" / "rightsize"):  # spill_dir tmp_path/spill, or the default
        (state / "cache").mkdir(parents=True)
        shutil.copy(cache, state / "cache" / "embeddings.npz")
    os.symlink(champion_dir, root / "champion")
    return root


async def test_retrain_promote_swaps_the_live_classifier_with_no_failed_call_and_rollback_restores_it(
    start_server: StartServer, backends: Backends, tmp_path: Path, models_dir: Path
) -> None:
    models = models_dir
    db = tmp_path / "log" / "requests.db"
    config_path = write_config(
        tmp_path / "rightsize.yaml", backends,
        models={"dir": str(models), "active": "champion", "poll_interval_s": 0.1},
        log={"url": f"sqlite:///{db}", "spill_dir": str(tmp_path / "spill")},
    )  # fmt: skip
    store = open_store(f"sqlite:///{db}")
    labelled_log(store, synthetic_examples(FED_BACK, seed=3))
    store.close()
    config = load_config(config_path)
    running = await start_server(config, with_scorer=load_scorer(config), wait_completion=False)
    old_version = (await running.stub.Route(pb.RouteRequest(messages=user("hi")))).decision.classifier_version

    seen: list[str] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            try:
                response = await running.stub.Route(pb.RouteRequest(messages=user("what is 2+2?")), timeout=5)
                seen.append(response.decision.classifier_version)
            except grpc.aio.AioRpcError as exc:
                failures.append(exc)
            await asyncio.sleep(0.03)

    async def wait_for_version(changed_from: str) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if seen and seen[-1] != changed_from:
                return seen[-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"the server kept serving {changed_from}")

    load = asyncio.get_running_loop().create_task(traffic())
    out = models / "candidates" / "v2"
    status = await asyncio.to_thread(
        main, ["retrain", "--from-logs", "--config", str(config_path), "--out", str(out), "--promote"]
    )
    assert status == 0
    new_version = await wait_for_version(old_version)
    assert (out / "retrain_report.md").is_file() and (out / "retrain_report.png").stat().st_size > 0
    assert os.readlink(models / "current") == "candidates/v2"

    assert await asyncio.to_thread(main, ["models", "rollback", "--config", str(config_path)]) == 0
    assert await wait_for_version(new_version) == old_version
    stop.set()
    await load

    assert failures == []
    # Each switch happens once, between requests: old ... new ... old, never interleaved.
    switches = [v for i, v in enumerate(seen) if i == 0 or seen[i - 1] != v]
    assert switches == [old_version, new_version, old_version]


def test_retrain_refuses_to_promote_a_worse_challenger_unless_forced(
    tmp_path: Path, backends: Backends, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = models_dir
    db = tmp_path / "requests.db"
    config = write_config(
        tmp_path / "rightsize.yaml",
        backends,
        models={"dir": str(models), "active": "champion"},
        log={"url": f"sqlite:///{db}"},
    )
    store = open_store(f"sqlite:///{db}")
    # The training slice teaches the truth, but the held-out slice agrees with the (inverted) champion.
    examples = [
        replace(e, small_ok=1 - e.small_ok) if in_holdout(e.text, 0.2) else e
        for e in synthetic_examples(LOGGED, seed=3)
    ]
    labelled_log(store, examples)
    store.close()
    args = ["retrain", "--from-logs", "--config", str(config), "--promote"]

    assert main([*args, "--out", str(models / "candidates" / "a")]) == 3
    assert "not promoted" in capsys.readouterr().out
    assert not (models / "current").exists()
    assert main([*args, "--out", str(models / "candidates" / "b"), "--force"]) == 0
    assert ModelRegistry(models, "champion").current_path() == (models / "candidates" / "b").resolve()


def test_split_is_stable_and_refuses_a_missing_class() -> None:
    examples = synthetic_examples(200, seed=1)
    train, holdout = split(examples, 0.2)
    assert {e.text for e in holdout} == {e.text for e in examples if in_holdout(e.text, 0.2)}
    assert not {e.text for e in train} & {e.text for e in holdout}
    assert 20 < len(holdout) < 60
    with pytest.raises(RetrainError, match="need at least"):
        split([e for e in examples if e.small_ok == 1], 0.2)


def test_labelled_examples_keep_the_latest_label_per_prompt(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    labelled_log(store, synthetic_examples(4, seed=0))
    records = list(store.iter_records())
    store.close()
    unlabelled = records[0].__class__(**{**records[0].__dict__, "small_ok": None})
    assert len(labelled_examples([*records, unlabelled])) == 4


def test_registry_promotes_atomically_keeps_n_and_rolls_back_to_active(
    tmp_path: Path, champion_dir: Path, models_dir: Path
) -> None:
    models = models_dir
    registry = ModelRegistry(models, "champion", keep=2)
    assert registry.current_path() == champion_dir.resolve()
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback()
    for name in ("a", "b", "c"):
        target = models / "candidates" / name
        shutil.copytree(champion_dir, target)  # any loadable model directory will do
        registry.promote(target)
        assert os.readlink(models / "current") == f"candidates/{name}"
    # keep=2: the oldest promoted candidate is gone, the two newest remain.
    assert not (models / "candidates" / "a").exists()
    assert [h.path for h in registry.history()] == ["candidates/b", "candidates/c"]
    assert registry.rollback() == (models / "candidates" / "b").resolve()
    assert registry.rollback() == champion_dir.resolve()  # back to `active`: no pointer left
    assert not (models / "current").is_symlink()
    with pytest.raises(RegistryError):
        registry.promote(tmp_path)  # not a model directory


def test_the_challenger_is_trained_with_the_champions_recipe(
    tmp_path: Path, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    """A champion trained on the fp32 embedder with C=0.1 gets an fp32, C=0.1 challenger (not the shipped
    recipe), so the two differ only in their data and the served embedder does not change on promotion."""
    import json

    from classifier.training import Recipe

    models = tmp_path / "models"
    recipe = replace(Recipe(), embedder="fp32", C=0.1)
    train_tiny(models / "champion", synthetic_examples(60, seed=7), tmp_path / "cache.npz", recipe)
    db = tmp_path / "requests.db"
    config = write_config(
        tmp_path / "rightsize.yaml",
        backends,
        models={"dir": str(models), "active": "champion"},
        log={"url": f"sqlite:///{db}"},
    )
    store = open_store(f"sqlite:///{db}")
    labelled_log(store, synthetic_examples(LOGGED, seed=3))
    store.close()
    out = models / "candidates" / "a"
    assert main(["retrain", "--from-logs", "--config", str(config), "--out", str(out)]) == 0
    assert "champion's recipe: embedder fp32" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["embedder"]["file"] == "model.onnx"
    assert manifest["recipe"]["embedder"] == "fp32" and manifest["recipe"]["C"] == 0.1
