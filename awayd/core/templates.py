"""Reply templates: a Jinja2 sandbox with a fixed variable set, compiled at config load."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, meta, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from awayd.core.i18n import STYLES, format_date
from awayd.errors import RenderError

VARIABLES = ("sender", "subject", "mailbox", "rule", "next_opening", "ticket", "language", "now")

#: Stands in for an expression that printed nothing, until render() has tidied around it.
_EMPTY = "\ufdd0"  # a Unicode noncharacter; one that came in a subject would just be dropped
#: The space before an empty expression, when punctuation, a space or the line end follows:
#: "Hello {{ sender.first_name }}," is "Hello," without a name, never "Hello ,".
_SPACE_BEFORE_EMPTY = re.compile(r"[ \t]" + _EMPTY + r"(?=[\s,.;:!?)\u00a0]|$)")


def _mark_empty(value: object) -> object:
    """Jinja's finalize hook: mark what prints as nothing; strict errors still raise."""
    if isinstance(value, StrictUndefined):
        return value
    if isinstance(value, Undefined):  # `{{ x if y }}` without an else
        return _EMPTY
    if isinstance(value, str) and not value:
        return _EMPTY
    if value is not None and not isinstance(value, int | float | str) and not str(value):
        return _EMPTY  # a lazy value (next_opening) that came out empty
    return value


def _tidy(text: str) -> str:
    if _EMPTY not in text:
        return text
    return _SPACE_BEFORE_EMPTY.sub("", text).replace(_EMPTY, "")


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
                                        keep_trailing_newline=True, finalize=_mark_empty)

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
    """Compile; raises jinja2.TemplateSyntaxError (awayd.config.load turns it into a ConfigError)."""
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
    """Render with the fixed variable set; any failure becomes a RenderError.

    An expression that prints nothing takes the space before it along when punctuation, a
    space or the end of the line follows ("Hello {{ sender.first_name }}," → "Hello,").
    """
    try:
        return _tidy(template.render(**variables))
    except RenderError:
        raise
    except (TemplateError, TypeError, ValueError, AttributeError, ArithmeticError,
            LookupError, RecursionError) as err:
        raise RenderError(f"template failed: {err}") from err
