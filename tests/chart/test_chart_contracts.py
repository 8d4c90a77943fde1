"""The chart keeps the hub's and the GPU scheduler's contract (:mod:`gpu_scheduler.contract`):
both Deployments get the secret they share under the one name both programs read
(:data:`~gpu_scheduler.contract.SECRET_ENV`), from the same key of the chart's Secret.
The programs' side is tests/unit/test_contracts.py."""

from __future__ import annotations

from chartkit import component, containers, env_of, kinds

from gpu_scheduler.contract import SECRET_ENV

#: the key of the chart's Secret (templates/hub/secret.yaml) holding the shared secret
SHARED_KEY = "gpu-shared-secret"


def shared_secret_names(deployment: dict) -> set[str]:
    """The environment names under which a Deployment's containers get the shared secret."""
    names = set()
    for container in containers(deployment["spec"]["template"]["spec"]):
        for name, entry in env_of(container).items():
            ref = entry.get("valueFrom", {}).get("secretKeyRef", {})
            if ref.get("key") == SHARED_KEY:
                names.add(name)
    return names


def test_hub_and_scheduler_get_the_shared_secret_under_the_contracts_name(render_case):
    deployments = {component(d): d for d in kinds(render_case("gpu"), "Deployment")}
    assert shared_secret_names(deployments["hub"]) == {SECRET_ENV}
    assert shared_secret_names(deployments["gpu-scheduler"]) == {SECRET_ENV}
    # and nothing else of the chart gets it
    others = [c for c in deployments if c not in ("hub", "gpu-scheduler")]
    assert others and all(not shared_secret_names(deployments[c]) for c in others)
