"""The template's questionnaire, walked with Copier's own objects for the page.

`copier copy` asks its questions one by one in a terminal; the page shows them all at once
and re-asks on every change. Each walk does what Copier's prompt loop (Worker._ask) does, in
the same order and with the same Question objects, so help texts, choices, the choices a
per-choice validator disables, Jinja defaults that read earlier answers, `when` and the
validators' messages are the terminal's, word for word. Where the terminal stops at the first
refused answer, the walk goes on, so that every refused field shows its message at once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from copier._main import Worker, _operation
from copier._template import Template
from copier._types import MISSING, Phase
from copier._user_data import AnswersMap, Question

# questionary's prompt types, as the page names its controls.
PROMPT_KINDS = {"input": "text", "path": "text", "password": "secret", "checkbox": "multiselect"}


@dataclass
class Field:
    """One question as the page draws it, for the answers given so far."""

    name: str
    kind: str  # text, secret, select, multiselect or confirm: the terminal's prompt type
    message: str
    visible: bool
    value: Any = None  # the given answer, or the default the terminal would offer
    given: bool = False
    choices: list[dict[str, Any]] = field(default_factory=list)
    placeholder: str = ""
    multiline: bool = False
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Walk:
    """Every question for one set of given answers, and what a render would receive."""

    fields: list[Field]
    data: dict[str, Any]  # the given answers of the questions asked, parsed by Copier
    answers: dict[str, Any]  # every answer, given or default, computed ones included

    @property
    def errors(self) -> dict[str, str]:
        return {item.name: item.error for item in self.fields if item.visible and item.error}


class Questionnaire:
    """copier.yml of one template source, read once at start-up.

    The template is snapshotted into a plain folder (a git source is cloned once, at the ref
    a render will use), so a walk builds Copier's Worker without cloning anything.
    """

    def __init__(self, source: str, vcs_ref: str | None = None) -> None:
        self.source = source
        self.vcs_ref = vcs_ref
        self._folder = Path(tempfile.mkdtemp(prefix="copier-ml-deploy-questions-"))
        template = Template(url=source, ref=vcs_ref)
        try:
            shutil.copytree(
                template.local_abspath,
                self._folder / "template",
                ignore=shutil.ignore_patterns(".git"),
                symlinks=True,
            )
            self.version = str(template.version) if template.version else None
        finally:
            template._cleanup()
        # The walk's Worker never writes: its destination is an empty folder kept empty.
        (self._folder / "nowhere").mkdir()
        self.names = list(self._template().questions_data)

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def _template(self) -> Template:
        return Template(url=str(self._folder / "template"))

    @contextmanager
    def _worker(self) -> Iterator[Worker]:
        worker = Worker(
            src_path=str(self._folder / "template"),
            dst_path=self._folder / "nowhere",
            defaults=True,
            unsafe=True,
            quiet=True,
        )
        token = _operation.set("copy")
        try:
            with worker, Phase.use(Phase.PROMPT):
                yield worker
        finally:
            _operation.reset(token)

    def walk(self, given: Mapping[str, Any]) -> Walk:
        """Ask every question as `copier copy --defaults --data <given>` would.

        Answers to unknown questions are dropped; so are answers to questions that `when`
        leaves unasked, as the page no longer shows them.
        """
        with self._worker() as worker:
            answers = AnswersMap(
                user_defaults=worker.user_defaults,
                metadata=worker.template.metadata,
                external=worker._external_data(),
            )
            worker.answers = answers
            fields, data = [], {}
            for name, details in worker.template.questions_data.items():
                question = Question(
                    answers=answers,
                    context=worker._render_context(),
                    jinja_env=worker.jinja_env,
                    settings=worker.settings,
                    var_name=name,
                    **details,
                )
                item = _ask(question, given, data)
                if item.visible:
                    fields.append(item)
                elif details.get("when") is not False:
                    # A question its `when` can show: kept in the page, hidden.
                    fields.append(item)
            combined = {
                name: value
                for name, value in answers.combined.items()
                if name in worker.template.questions_data
            }
            return Walk(fields=fields, data=data, answers=combined)


def _ask(question: Question, given: Mapping[str, Any], data: dict[str, Any]) -> Field:
    """One step of Copier's prompt loop; the answer it records goes into `question.answers`."""
    name, answers = question.var_name, question.answers
    item = Field(name=name, kind="text", message="", visible=True)
    try:
        item.visible = question.get_when() and question.get_ask()
    except Exception as error:  # a `when` that reads a refused answer
        item.visible, item.error = False, str(error)
    if not item.visible:
        # Not asked: the default, if any, is what the answers hold (computed values).
        if not question.get_when():
            answers.hide(name)
        try:
            default = question.get_default()
        except Exception:  # a default reading a refused answer
            default = MISSING
        if default is not MISSING:
            answers.user[name] = default
        item.value = None if default is MISSING else default
        return item

    try:
        structure = question.get_questionary_structure()
    except Exception as error:  # its default reads a refused answer
        item.error = str(error)
        return item
    item.kind = PROMPT_KINDS.get(structure["type"], structure["type"])
    item.message = structure["message"].strip()
    item.placeholder = str(structure.get("placeholder", ""))
    item.multiline = bool(structure.get("multiline", False))
    item.choices = [
        {"label": str(choice.title), "value": choice.value, "disabled": choice.disabled or ""}
        for choice in structure.get("choices", [])
    ]
    default = question.get_default()
    parsed: Any = default
    if name in given:
        item.given = True
        raw = given[name]
        if "validate" in structure and item.kind in {"text", "secret"}:
            # What the terminal runs on what was typed ("Invalid input" included). A ticked
            # choice the terminal offers disabled gets --data's wording below: its reason.
            verdict = structure["validate"](raw)
            item.error = "" if verdict is True else str(verdict)
        try:
            parsed = question.parse_answer(raw)
            # A choice or yes/no prompt runs no validator in the terminal, yet a page answer
            # can go stale when an earlier one changes: --data's checks word the refusal.
            question.validate_answer(parsed)
        except Exception as error:  # Copier refuses with several types
            item.error = item.error or str(error)
        if item.error:
            # Later questions read a refused answer if it has the question's type, as the
            # page still shows it; otherwise the default.
            try:
                parsed = question.cast_answer(raw)
            except Exception:
                parsed = default
        # A typed answer stays as typed; a picked one as Copier parsed it.
        item.value = raw if item.kind in {"text", "secret"} or item.error else parsed
        if not item.error:
            data[name] = parsed
    else:
        item.value = _shown(question, default) if item.kind in {"text", "secret"} else default
    answers.user[name] = parsed
    return item


def _shown(question: Question, value: Any) -> str:
    """The text the terminal pre-fills for a default (Question.get_default_rendered)."""
    if value is None or value is MISSING:
        return ""
    type_name = question.get_type_name()
    if type_name == "json":
        return json.dumps(value, indent=2 if question.get_multiline() else None)
    if type_name == "yaml":
        flow = not question.get_multiline()
        return yaml.safe_dump(value, default_flow_style=flow, width=2147483647).strip()
    return str(value)
