"""The one settings object: its sections, how a file is loaded, edited in place and reloaded live."""

from router.config.settings import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_MODELS_DIR,
    Override,
    RouterConfig,
    RoutingSettings,
    TargetWindow,
    TierSettings,
    load_config,
    with_server,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_MODELS_DIR",
    "Override",
    "RouterConfig",
    "RoutingSettings",
    "TargetWindow",
    "TierSettings",
    "load_config",
    "with_server",
]
