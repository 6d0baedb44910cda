"""Loading and validating the YAML config: defaults, key-naming errors, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import DEFAULT_MODELS_DIR, load_config, with_server
from router.errors import ConfigError

MINIMAL = """
server:  { address: "127.0.0.1:50051", metrics_port: 9464 }
tiers:
  small: { model: "ollama_chat/llama3:8b", api_base: "http://127.0.0.1:11434" }
  large: { model: "openai/gpt-4o", api_key_env: "OPENAI_API_KEY" }
routing: { threshold: 0.5 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(text)
    return path


def test_shipped_default_config_loads_with_the_documented_tiers() -> None:
    config = load_config(environ={})
    # Embedded SmolLM2 with the [local] extra, else Ollama: both cases in tests/router/test_local_model.py.
    assert config.tiers.small.model in ("hosted_vllm/smollm2-135m", "ollama_chat/llama3:8b")
    assert config.tiers.large.model == "openai/gpt-4o"
    assert config.tiers.large.api_key is None
    assert config.routing.threshold == 0.5 and config.routing.max_prompt_chars == 200_000
    assert config.models.path == DEFAULT_MODELS_DIR / "default"


def test_the_issue_minimal_example_is_valid_and_reads_the_key_from_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={"OPENAI_API_KEY": "sk-secret"})
    assert config.tiers.large.litellm_kwargs()["api_key"] == "sk-secret"
    assert "sk-secret" not in repr(config)  # secrets never reach logs through repr


def test_unknown_tier_keys_pass_through_to_litellm(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'api_base: "http://127.0.0.1:11434" }',
        'api_base: "http://127.0.0.1:11434", num_retries: 2, extra_headers: {X-Team: a} }',
    )
    kwargs = load_config(write(tmp_path, text), environ={}).tiers.small.litellm_kwargs()
    assert kwargs == {
        "model": "ollama_chat/llama3:8b",
        "api_base": "http://127.0.0.1:11434",
        "num_retries": 2,
        "extra_headers": {"X-Team": "a"},
    }


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("threshold: 0.5", "threshold: 1.5", "routing.threshold"),
        ("threshold: 0.5", "treshold: 0.5", "routing.treshold"),
        ("metrics_port: 9464", 'metrics_port: "x"', "server.metrics_port"),
        ('address: "127.0.0.1:50051"', 'address: "nowhere"', "server.address"),
        ('model: "openai/gpt-4o", ', "", "tiers.large.model"),
        ('model: "openai/gpt-4o", ', 'model: "openai/gpt-4o", stream: true, ', "tiers.large"),
        (
            "routing: { threshold: 0.5 }",
            "routing: { overrides: [{metadata: {tenant: a}}] }",
            "routing.overrides.0",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in MINIMAL
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, MINIMAL.replace(old, new)), environ={})
    message = str(raised.value)
    assert f": {key}" in message and str(tmp_path) in message
    assert "\n" not in message


def test_a_missing_tier_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tiers\.small: Field required"):
        load_config(write(tmp_path, "tiers: { large: { model: openai/gpt-4o } }"), environ={})


@pytest.mark.parametrize("text", ["tiers: [", "- a list", ""])
def test_not_a_yaml_mapping_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="router.yaml"):
        load_config(write(tmp_path, text), environ={})


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_relative_models_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "models: { dir: mymodels, active: v2 }\n"), environ={})
    assert config.models.path == tmp_path / "mymodels" / "v2"


def test_command_line_flags_override_the_file() -> None:
    config = with_server(load_config(environ={}), address="0.0.0.0:0", metrics_port=None)
    assert config.server.address == "0.0.0.0:0" and config.server.metrics_port == 9464
    with pytest.raises(ConfigError, match="server.address"):
        with_server(config, address="no-port")
