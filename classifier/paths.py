"""Where the shipped artifacts live (import-light: the CLI reads these while building its parser)."""

from pathlib import Path

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"
SHIPPED_EMBEDDERS = SHIPPED_MODELS / "embedder"  # embedders a model directory may reference by id
SHIPPED_EMBEDDER = SHIPPED_EMBEDDERS / "all-MiniLM-L6-v2"
DEFAULT_MODEL_DIR = SHIPPED_MODELS / "default"
