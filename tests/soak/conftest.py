"""The soak test borrows the router tests' fixtures: stand-ins, configs, classifier, in-process servers."""

from tests.router.conftest import backends, make_config  # noqa: F401
