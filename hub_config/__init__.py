"""dlhub's hub side: the platform config, its mapping onto JupyterHub, and spawners."""

__version__ = "0.1.0"
