"""``GET <base_url>dlhub/gpu-usage``: this server's GPUs as :mod:`.nvml` reads them."""

from __future__ import annotations

import json
import os

from jupyter_server.base.handlers import APIHandler
from tornado import web

from .nvml import read_gpus, visible


class GpuUsageHandler(APIHandler):
    @web.authenticated
    async def get(self):
        gpus = visible(read_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
        self.finish(json.dumps({"gpus": gpus}))
