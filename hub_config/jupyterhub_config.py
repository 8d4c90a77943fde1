# JupyterHub configuration for dlhub.
#
# Thin on purpose: the platform config (YAML, $DLHUB_CONFIG or built-in defaults) is
# validated and mapped onto JupyterHub traits by the hub_config package.
from hub_config.hub import configure

c = get_config()  # noqa: F821
configure(c)
