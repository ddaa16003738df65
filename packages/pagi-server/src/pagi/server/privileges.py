"""``--user`` and ``--group``: giving up root once the sockets are bound.

Binding a port below 1024 needs root; serving requests must not. The
server binds first, then calls :func:`drop_privileges` (in the supervisor
before it forks, so workers never run as root).
"""

from __future__ import annotations

import logging
import os

from pagi.server.config import ConfigError

__all__ = ["drop_privileges"]

log = logging.getLogger("pagi.server")


def drop_privileges(user: str | None, group: str | None) -> None:
    """Switch to ``group`` then ``user`` (names or numbers); a no-op when both are None."""
    if user is None and group is None:
        return
    import grp
    import pwd

    uid: int | None = None
    gid: int | None = None
    name = user
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(f"--user {user}: no such user") from None
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group is not None:
        try:
            gid = (grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)).gr_gid
        except KeyError:
            raise ConfigError(f"--group {group}: no such group") from None
    try:
        if gid is not None:
            os.setgroups([gid])
            os.setgid(gid)
        if uid is not None:
            if name is not None and gid is not None:
                os.initgroups(name, gid)
            os.setuid(uid)
    except PermissionError:
        raise ConfigError(
            f"--user/--group: cannot switch to user {user} group {group} (needs root)"
        ) from None
    log.info("running as uid %d gid %d", os.getuid(), os.getgid())
