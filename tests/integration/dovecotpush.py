"""The Dovecot side of push mode for a private instance: contrib/dovecot as shipped, with the
instance's paths, URL and token, plus a master-user passdb. Shared by the tests and bench/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "dovecot"
PUSH_PLUGINS = ("lib01_mail_lua_plugin.so", "lib22_push_notification_lua_plugin.so")
MODULES = Path("/usr/lib/dovecot/modules")
#: A Dovecot master user: logs in as any user, as `user*MASTER_USER` or with AUTHENTICATE PLAIN
#: and the user as authorization identity.
MASTER_USER = "awayd-master"
MASTER_PASSWORD = "master-pw"


def push_unavailable_reason() -> str | None:
    """Why Dovecot cannot run the push_notification Lua driver here, or None."""
    missing = [m for m in PUSH_PLUGINS if not (MODULES / m).exists()]
    if missing:
        return f"Dovecot's Lua push plugins are missing ({', '.join(missing)}; dovecot-core)"
    return None


def master_config(directory: Path) -> str:
    """A master passdb (MASTER_USER) in `directory`; writes DIR/master.pass for awayd."""
    secret = directory / "master.pass"
    secret.write_text(MASTER_PASSWORD + "\n", encoding="utf-8")
    os.chmod(secret, 0o600)
    users = directory / "master-users"
    users.write_text(f"{MASTER_USER}:{{PLAIN}}{MASTER_PASSWORD}\n", encoding="utf-8")
    os.chmod(users, 0o644)  # read by the auth process (user dovecot)
    return f"""
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
  master = yes
}}
"""


def push_config(directory: Path, url: str, token: str) -> str:
    """contrib/dovecot/awayd-push.conf with the Lua script and token file copied to
    `directory` and the events sent to `url`."""
    lua = directory / "awayd-push.lua"
    shutil.copyfile(CONTRIB / "awayd-push.lua", lua)
    os.chmod(lua, 0o644)
    secret = directory / "awayd-push-token.conf"
    secret.write_text(f"plugin {{\n  awayd_push_token = {token}\n}}\n", encoding="utf-8")
    os.chmod(secret, 0o600)
    text = (CONTRIB / "awayd-push.conf").read_text(encoding="utf-8")
    for old, new in (("/etc/dovecot/awayd-push.lua", str(lua)),
                     ("http://127.0.0.1:8787/events", url),
                     ("/etc/dovecot/awayd-push-token.conf", str(secret))):
        if old not in text:
            raise RuntimeError(f"{CONTRIB / 'awayd-push.conf'} no longer names {old}")
        text = text.replace(old, new)
    return "\n" + text
