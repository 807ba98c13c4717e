"""Tests for awayd.core.templates: the sandbox, the date filter and render failures."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from jinja2 import TemplateSyntaxError

from awayd.config.load import parse_config
from awayd.core.decide import decide
from awayd.core.history import EmptyHistory
from awayd.core.templates import RuleVars, SenderVars, compile_template, render
from awayd.errors import ConfigError, RenderError


def mailbox_yaml(rule: str, *, language: str = "fr", timezone: str = "Europe/Paris") -> str:
    return f"""
mailboxes:
  - name: alice
    address: alice@example.org
    display_name: Alice Smith
    timezone: {timezone}
    language: {language}
    rules:
      - name: r
        interval: 0
{rule}
"""


def reply_text(make_mailbox, run, eml, rule: str, **kwargs) -> str:
    decision = run(eml(**kwargs.pop("message", {})), make_mailbox(mailbox_yaml(rule, **kwargs)))
    assert decision.reply is not None, decision.detail
    return decision.reply.text


VARS = {"rule": RuleVars("r", date(2026, 12, 20), date(2027, 1, 4)), "language": "fr"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{ rule.until | date("long") }}', "4 janvier 2027"),
        ('{{ rule.until | date }}', "4 janvier 2027"),
        ('{{ rule.until | date("full") }}', "lundi 4 janvier 2027"),
        ('{{ rule.until | date("short") }}', "04/01/2027"),
        ('{{ rule.until | date("iso") }}', "2027-01-04"),
        ('{{ rule.until | date("long", "en") }}', "January 4, 2027"),
        ('{{ rule.until | date("full", "en") }}', "Monday, January 4, 2027"),
        ('{{ rule.until | date("short", "en") }}', "1/4/27"),
        ('{{ rule.until | date("long", "en-GB") }}', "4 January 2027"),
        ('{{ rule.until | date("long", "pl") }}', "4 stycznia 2027"),
        ('{{ rule.until | date("long", "de") }}', "4. Januar 2027"),
        ('{{ rule.until | date("full", "de") }}', "Montag, 4. Januar 2027"),
        ('{{ rule.until | date("long", "es") }}', "4 de enero de 2027"),
        ('{{ rule.from | date("long") }}', "20 décembre 2026"),
        ("{{ rule.name }}", "r"),
    ],
)
def test_date_filter_styles_follow_the_reply_language(source: str, expected: str) -> None:
    assert render(compile_template(source), VARS) == expected


def test_date_filter_on_a_missing_date_is_empty() -> None:
    variables = {"rule": RuleVars("r", None, None), "language": "fr"}
    assert render(compile_template('[{{ rule.until | date("long") }}]'), variables) == "[]"


def test_date_filter_with_an_unknown_style_fails_to_render() -> None:
    with pytest.raises(RenderError, match="date style"):
        render(compile_template('{{ rule.until | date("weird") }}'), VARS)


def test_date_filter_refuses_a_string() -> None:
    with pytest.raises(RenderError, match="expects a date"):
        render(compile_template("{{ rule.name | date }}"), VARS)


def test_sandbox_refuses_unsafe_attribute_access() -> None:
    template = compile_template("{{ sender.__class__.__mro__ }}")
    with pytest.raises(RenderError):
        render(template, {"sender": SenderVars("a@b.example", "A", "A")})


def test_undefined_variable_fails_instead_of_printing_nothing() -> None:
    with pytest.raises(RenderError, match=r"undefined|sendr"):
        render(compile_template("{{ sendr.name }}"), {})


def test_syntax_error_surfaces_at_compile_time() -> None:
    with pytest.raises(TemplateSyntaxError):
        compile_template("{% if %}")


def test_html_templates_autoescape_and_text_templates_do_not() -> None:
    variables = {"subject": "<b>&</b>"}
    assert render(compile_template("{{ subject }}", html=True), variables) == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert render(compile_template("{{ subject }}"), variables) == "<b>&</b>"


def test_rule_from_and_until_render_in_the_reply(make_mailbox, run, eml) -> None:
    text = reply_text(make_mailbox, run, eml, """\
        when: {from: 2026-12-20, until: 2027-01-04}
        text: "Absente du {{ rule.from | date('long') }} au {{ rule.until | date('full') }}."
""")
    assert text == "Absente du 20 décembre 2026 au lundi 4 janvier 2027.\n"


def test_date_filter_uses_the_chosen_reply_language(make_mailbox, run, eml) -> None:
    text = reply_text(make_mailbox, run, eml, """\
        when: {until: 2027-01-04}
        text: "jusqu'au {{ rule.until | date }}"
        translations:
          en: {text: "until {{ rule.until | date }}"}
""", message={"extra": ("Content-Language: en",)})
    assert text == "until January 4, 2027\n"


def test_datetime_until_is_written_with_its_time(make_mailbox, run, eml) -> None:
    text = reply_text(make_mailbox, run, eml, """\
        when: {until: "2026-12-23T14:30:00+01:00"}
        text: "{{ rule.until | date('long') }}"
""")
    assert text == "23 décembre 2026 à 14:30\n"


def test_datetime_until_in_another_zone_is_written_in_the_mailbox_zone(make_mailbox, run,
                                                                       eml) -> None:
    text = reply_text(make_mailbox, run, eml, """\
        when: {until: "2026-12-23T13:30:00Z"}
        text: "{{ rule.until | date('long') }}"
""")
    assert text == "23 décembre 2026 à 14:30\n"


def test_next_opening_on_a_friday_evening_is_monday_morning(make_mailbox, eml) -> None:
    mailbox = make_mailbox(mailbox_yaml("""\
        kind: acknowledgement
        when: {weekly: [{days: mon-fri, outside: "09:00-18:00"}, {days: [sat, sun]}]}
        text: "Nous répondons à partir du {{ next_opening }}."
"""))
    friday_evening = datetime(2026, 12, 18, 19, 0, tzinfo=UTC)  # 20:00 in Paris
    decision = decide(eml(), mailbox, now=friday_evening, history=EmptyHistory(),
                      new_message_id=lambda d: f"<awayd.t@{d}>")
    assert decision.reply is not None
    assert decision.reply.text == "Nous répondons à partir du lundi 21 décembre 2026 à 09:00.\n"


def test_next_opening_is_empty_for_a_rule_without_schedule(make_mailbox, run, eml) -> None:
    text = reply_text(make_mailbox, run, eml, '        text: "[{{ next_opening }}]"\n')
    assert text == "[]\n"


def test_every_documented_variable_is_available(make_mailbox, run, eml) -> None:
    text = reply_text(make_mailbox, run, eml, """\
        text: >-
          {{ sender.address }}|{{ sender.name }}|{{ sender.first_name }}|{{ subject }}|
          {{ mailbox.name }}|{{ mailbox.address }}|{{ mailbox.display_name }}|{{ rule.name }}|
          {{ ticket | length }}|{{ language }}|{{ now.year }}
""")
    assert text == ("bob@example.net|Bob Martin|Bob|Lunch| alice|alice@example.org|Alice Smith|r| "
                    "6|fr|2026\n")


def test_undefined_variable_is_a_config_error_at_load() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(mailbox_yaml('        text: "Hello {{ sendr.first_name }}"\n'), "c.yaml")
    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem == ("c.yaml: mailboxes[0].rules[0].text: 'sendr' is undefined; "
                       "did you mean 'sender'? (line 11, column 9)")


def test_undefined_variable_in_a_branch_the_sample_never_takes_is_found() -> None:
    """Static: the name is reported even where rendering the sample would not reach it."""
    with pytest.raises(ConfigError) as caught:
        parse_config(mailbox_yaml('        subject: "{% if false %}{{ ticker }}{% endif %}x"\n'
                                  '        text: "{{ colour }}"\n'), "c.yaml")
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("c.yaml: mailboxes[0].rules[0].subject: 'ticker' is undefined; "
                                  "did you mean 'ticket'?")
    assert problems[1].startswith("c.yaml: mailboxes[0].rules[0].text: 'colour' is undefined; "
                                  "the variables are sender, subject, mailbox")


def test_jinja_globals_and_loop_variables_are_not_undefined() -> None:
    config = parse_config(mailbox_yaml(
        '        text: "{% for i in range(2) %}{{ loop.index }}{% endfor %}'
        '{% set x = 1 %}{{ x }}"\n'))
    assert config.mailboxes[0].rules[0].name == "r"


def test_a_failing_attribute_names_the_template_key_that_fails() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(mailbox_yaml('        subject: "ok"\n        text: "ok"\n'
                                  '        html: "<p>{{ sender.nickname }}</p>"\n'), "c.yaml")
    (problem,) = caught.value.problems
    assert problem.startswith("c.yaml: mailboxes[0].rules[0].html: ")
    assert "nickname" in problem
    assert problem.endswith("(line 13, column 9)")


def test_undefined_variable_in_a_translation_names_the_translation() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(mailbox_yaml("""\
        text: ok
        translations:
          en: {text: "{{ nope }}"}
"""), "c.yaml")
    assert caught.value.problems[0].startswith(
        "c.yaml: mailboxes[0].rules[0].translations.en.text: 'nope' is undefined")


def test_line_break_rendered_into_the_subject_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="line break"):
        parse_config(mailbox_yaml("""\
        subject: "Auto {{ '\\\\n' }} x"
        text: ok
"""))


def test_template_failing_only_for_some_messages_gives_render_error(make_mailbox, run,
                                                                    eml) -> None:
    mailbox = make_mailbox(mailbox_yaml(
        '        text: "Bonjour {{ sender.name.split()[1] }}"\n'))  # the surname
    assert run(eml(), mailbox).reason == "reply"
    decision = run(eml(from_="bob@example.net"), mailbox)  # no display name at all
    assert (decision.decision, decision.reason) == ("skip", "render-error")
    assert decision.reply is None
    assert decision.rule_name == "r"
    assert "template failed" in decision.detail


def test_subject_with_a_line_break_for_some_messages_gives_render_error(make_mailbox, run,
                                                                         eml) -> None:
    mailbox = make_mailbox(mailbox_yaml("""\
        subject: "Auto: {% if 'urgent' in subject %}{{ '\\\\r\\\\n' }}Bcc: x@example.com{% endif %}"
        text: ok
"""))
    assert run(eml(), mailbox).reason == "reply"
    decision = run(eml(subject="urgent"), mailbox)
    assert decision.reason == "render-error"
    assert "line break" in decision.detail


NAMELESS = {"sender": SenderVars("bob@example.net", "", "")}
NAMED = {"sender": SenderVars("bob@example.net", "Bob Martin", "Bob")}


@pytest.mark.parametrize(
    ("source", "nameless", "named"),
    [
        ("Hello {{ sender.first_name }},", "Hello,", "Hello Bob,"),
        ('Bonjour {{ sender.first_name or "" }},', "Bonjour,", "Bonjour Bob,"),
        ("Bonjour {{ sender.first_name }} !", "Bonjour !", "Bonjour Bob !"),
        ("Hello {{ sender.first_name }}\nThanks.", "Hello\nThanks.", "Hello Bob\nThanks."),
        ("Dear {{ sender.first_name }} {{ sender.first_name }}.", "Dear.", "Dear Bob Bob."),
        ("Hi {{ sender.first_name if sender.first_name }}, ok", "Hi, ok", "Hi Bob, ok"),
        ("Hello {{ sender.first_name }}and more", "Hello and more", "Hello Boband more"),
        ("Literal , stays, {{ sender.first_name }}", "Literal , stays,", "Literal , stays, Bob"),
    ],
)
def test_a_missing_name_leaves_no_space_before_punctuation(source: str, nameless: str, named: str) -> None:
    assert render(compile_template(source), NAMELESS) == nameless
    assert render(compile_template(source), NAMED) == named


def test_a_missing_name_in_html_leaves_no_space_either() -> None:
    assert render(compile_template("<p>Hello {{ sender.first_name }},</p>", html=True),
                  NAMELESS) == "<p>Hello,</p>"


def test_tidying_never_hides_an_undefined_variable() -> None:
    with pytest.raises(RenderError, match="sendr"):
        render(compile_template("Hello {{ sendr }},"), NAMELESS)


def test_a_reply_to_a_sender_without_a_name_greets_without_a_stray_space(make_mailbox, run, eml) -> None:
    text = reply_text(make_mailbox, run, eml, '        text: "Bonjour {{ sender.first_name }},"',
                      message={"from_": "bob@example.net"})
    assert text == "Bonjour,\n"
