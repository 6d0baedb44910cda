"""The committed stubs in router/_proto are exactly what scripts/gen_proto.py generates from proto/."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from router._proto import router_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_not_stale() -> None:
    stale = load_generator().stale_files()
    assert stale == [], f"regenerate with `python scripts/gen_proto.py`: {stale}"


def test_stale_stubs_are_detected(tmp_path: Path) -> None:
    generator = load_generator()
    for name, text in generator.generate().items():
        (tmp_path / name).write_text(text)
    assert generator.stale_files(tmp_path) == []
    (tmp_path / "router_pb2.pyi").write_text("# edited by hand\n")
    assert generator.stale_files(tmp_path) == ["router_pb2.pyi"]


def test_contract_names_are_the_fixed_ones() -> None:
    service = pb.DESCRIPTOR.services_by_name["Router"]
    assert service.full_name == "rightsize.v1.Router"
    assert {m.name for m in service.methods} == {"Route", "Complete", "CompleteStream", "Feedback"}
    assert service.methods_by_name["CompleteStream"].server_streaming
    assert pb.Rating.Name(0) == "RATING_UNSPECIFIED" and pb.GOOD == 1 and pb.BAD == 2
    fields = {
        name: {field.name for field in message.fields}
        for name, message in pb.DESCRIPTOR.message_types_by_name.items()
    }
    assert fields["Decision"] == {
        "tier",
        "model",
        "score",
        "threshold",
        "reason",
        "classifier_version",
        "mode",
    }
    assert fields["CompleteRequest"] == {
        *("messages", "metadata", "request_id", "params", "force_tier"),
        *("response_format", "tools", "tool_choice"),
    }
    assert fields["CompleteResponse"] == {
        *("text", "decision", "model", "usage", "cost_usd", "fallback", "fallback_reason", "finish_reason"),
        *("request_id", "exemplar_ids", "tool_calls", "schema_valid"),
        *("escalated", "escalation_reason", "verifier_score"),
    }
    assert pb.CompleteResponse.DESCRIPTOR.fields_by_name["exemplar_ids"].number == 10
    assert {"delta", "decision", "usage", "fallback", "finish_reason"} <= fields["CompleteChunk"]
    assert {"tool_calls", "tool_call_deltas", "schema_valid", "escalated", "escalation_reason"} <= fields[
        "CompleteChunk"
    ]
    assert "verifier_score" in fields["CompleteChunk"]
    assert fields["FeedbackRequest"] == {"request_id", "rating", "score", "comment"}
    assert fields["GenerationParams"] == {
        *("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")
    }
    assert fields["Message"] == {"role", "content", "tool_calls", "tool_call_id", "name"}
    assert fields["ResponseFormat"] == {"type", "json_schema", "schema_name", "strict"}
    assert fields["Tool"] == {"name", "description", "parameters_json"}
    assert fields["ToolCall"] == {"id", "name", "arguments_json"}


def test_optional_params_tell_zero_from_unset() -> None:
    params = pb.GenerationParams(presence_penalty=0.0, seed=0)
    assert params.HasField("presence_penalty") and params.HasField("seed")
    assert not params.HasField("frequency_penalty")
