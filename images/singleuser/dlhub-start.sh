#!/bin/bash
# Entry point of the dlhub user images (installed as /usr/local/bin/dlhub-start): on a
# home's first start, copy the starter notebooks into it, never over a file the user already
# has, then run the given command (jupyterhub-singleuser) in this process. A stamp file marks
# the home as done (as on the local backend, hub_config/starter.py), so a starter notebook
# the user deleted does not come back.
set -euo pipefail

starter="${DLHUB_STARTER_DIR:-/opt/dlhub/starter}"
stamp="$HOME/.dlhub/starter-copied"
if [ ! -e "$stamp" ] && [ -d "$starter" ] && [ -n "$(ls -A "$starter")" ]; then
    if cp -rn "$starter/." "$HOME/" && mkdir -p "$HOME/.dlhub" && touch "$stamp"; then
        :
    else
        echo "dlhub-start: could not copy the starter notebooks from $starter into $HOME" >&2
    fi
fi

exec "$@"
