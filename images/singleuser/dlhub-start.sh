#!/bin/bash
# Entry point of the dlhub user images (installed as /usr/local/bin/dlhub-start): runs the
# given command (jupyterhub-singleuser) in this process. The starter notebooks are brought
# into the home by the server itself at each start (dlhub-lab's server extension, from
# $DLHUB_STARTER_DIR): new ones appear, the user's edits are never overwritten.
set -euo pipefail

exec "$@"
