# JupyterHub configuration for dlhub.
#
# Thin on purpose: the platform config (YAML, $DLHUB_CONFIG or built-in defaults) is
# validated and mapped onto JupyterHub traits by the hub_config package.
from hub_config import single_hub
from hub_config.hub import configure

# before anything opens the hub's database: one hub per data dir / database
single_hub.hold_for_hub()
c = get_config()  # noqa: F821
configure(c)
