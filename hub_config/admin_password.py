"""``dlhub admin``: an admin's account made or its password set from the command line,
straight in the hub database, with the hub's own authenticator and password rules."""

from __future__ import annotations

from jupyterhub.orm import new_session_factory
from traitlets.config import Config

from .auth import DlhubAuthenticator


def set_admin_password(traits: dict, db_url: str, name: str, password: str) -> bool:
    """``dlhub admin``: make the account of the admin ``name`` with ``password`` (True), or
    set the password of the existing one and approve it (False), in the hub database.

    ``traits``: the authenticator's sections (:func:`hub_config.mapping.auth_traits`), so
    the password rules are the hub's. A refused password raises ValueError.
    """
    config = Config()
    for section, values in traits.items():
        for key, value in values.items():
            setattr(config[section], key, value)
    db = new_session_factory(db_url)()
    try:
        auth = DlhubAuthenticator(config=config, db=db)
        refused = ValueError(
            f"the password was refused: use at least {auth.minimum_password_length} "
            "characters and not a common password"
        )
        if auth.get_user(name) is None:
            try:
                info = auth.create_user(name, password)
            except ValueError:
                info = None
            if info is None:
                raise refused
            return True
        try:
            changed = auth.change_password(name, password)
        except ValueError:
            changed = False
        if not changed:
            raise refused
        auth.get_user(name).is_authorized = True
        db.commit()
        return False
    finally:
        db.close()
