"""The attack checklist (docs/security.md): one module per item, each against every
backend where it applies. Fixtures shared by the modules live here; each module starts
its own hub (module scope) with the config it needs."""
