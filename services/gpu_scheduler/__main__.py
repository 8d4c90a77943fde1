"""``python -m gpu_scheduler``: run the scheduler service (the hub starts it)."""

from .service import main

main()
