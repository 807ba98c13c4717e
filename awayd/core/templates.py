"""Reply templates: a Jinja2 sandbox with a fixed variable set, compiled at config load."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from jinja2 import StrictUndefined, Template, TemplateError, meta, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from awayd.core.i18n import STYLES, format_date
from awayd.errors import RenderError

VARIABLES = ("sender", "subject", "mailbox", "rule", "next_opening", "ticket", "language", "now")


@dataclass(frozen=True)
class SenderVars:
    address: str
    name: str
    first_name: str


@dataclass(frozen=True)
class RuleVars:
    name: str
    start: date | datetime | None
    until: date | datetime | None

    def __getattr__(self, item: str) -> object:
        # `from` is a Python keyword: templates write rule.from, served here.
        if item == "from":
            return self.start
        raise AttributeError(item)


def _make_env(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined,
                                        keep_trailing_newline=True)

    @pass_context
    def date_filter(
        context: Context, value: object, style: str = "long", language: str | None = None
    ) -> str:
        if value is None:
            return ""
        if not isinstance(value, date):
            raise RenderError(f"date filter expects a date, got {type(value).__name__}")
        if style not in STYLES:
            raise RenderError(f"date style must be one of {', '.join(STYLES)}, got {style!r}")
        lang = language or str(context.get("language") or "en")
        return format_date(value, style, lang)

    env.filters["date"] = date_filter
    return env


TEXT_ENV = _make_env(autoescape=False)
HTML_ENV = _make_env(autoescape=True)


#: A mail host's mailboxes share their defaults' rules: each text is compiled once, not once
#: per mailbox (20,000 compilations took a minute). Templates are immutable and thread-safe.
_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_template(source: str, *, html: bool = False) -> Template:
    """Compile; raises jinja2.TemplateSyntaxError (config.py turns it into a ConfigError)."""
    return (HTML_ENV if html else TEXT_ENV).from_string(source)


def undeclared_names(source: str, *, html: bool = False) -> list[str]:
    """Names the template reads that are neither a template variable nor a Jinja global.

    Static, so a name inside a branch the sample message never takes is found too. The
    source must compile (call compile_template first).
    """
    return list(_undeclared(source, html))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _undeclared(source: str, html: bool) -> tuple[str, ...]:
    env = HTML_ENV if html else TEXT_ENV
    names = meta.find_undeclared_variables(env.parse(source))
    return tuple(sorted(n for n in names if n not in VARIABLES and n not in env.globals))


def render(template: Template, variables: dict[str, object]) -> str:
    """Render with the fixed variable set; any failure becomes a RenderError."""
    try:
        return template.render(**variables)
    except RenderError:
        raise
    except (TemplateError, TypeError, ValueError, AttributeError, ArithmeticError,
            LookupError, RecursionError) as err:
        raise RenderError(f"template failed: {err}") from err
