"""Which addresses are the mailbox's own: its address, aliases and their sub-addresses."""

from __future__ import annotations

from awayd.config.model import Mailbox


def match(mailbox: Mailbox, address: str) -> tuple[str, str] | None:
    """(the configured address or alias, `address` as the mailbox writes it), or None."""
    key = address.lower()
    spellings = mailbox.spellings
    found = spellings.get(key)
    if found is not None:
        return found, found
    separator = mailbox.subaddress_separator
    local, at, domain = key.rpartition("@")
    if not separator or not at:
        return None
    sep = separator.lower()
    start = local.find(sep)
    while start > 0:  # alice+x+y@: alice+x@ may be an alias of its own, alice@ the address
        base = spellings.get(f"{local[:start]}@{domain}")
        if base is not None:
            base_local, _, base_domain = base.rpartition("@")
            detail = address.rpartition("@")[0][start:]
            return base, f"{base_local}{detail}@{base_domain}"
        start = local.find(sep, start + 1)
    return None


def own_form(mailbox: Mailbox, address: str) -> str | None:
    """`address` as the mailbox writes it when it is one of its own, else None.

    An address or alias comes back spelt as in the config; a sub-address
    (`Alice+Conference@Example.org` for `alice@example.org` with separator `+`) keeps the
    detail as written on the configured address: `alice+Conference@example.org`.
    """
    found = match(mailbox, address)
    return found[1] if found is not None else None


def owns(mailbox: Mailbox, address: str) -> bool:
    """Whether `address` is the mailbox's address, an alias or a sub-address of one of them."""
    return address.lower() in mailbox.addresses or match(mailbox, address) is not None


def base_key(mailbox: Mailbox, address: str) -> str | None:
    """The lowercased configured address or alias that `address` names (sub-address removed)."""
    found = match(mailbox, address)
    return found[0].lower() if found is not None else None


def answering(mailbox: Mailbox, written: tuple[str, ...], to: frozenset[str]) -> str | None:
    """The first written address that a rule's `match.to` names, as written or by its base."""
    for form in written:
        if form.lower() in to or base_key(mailbox, form) in to:
            return form
    return None
