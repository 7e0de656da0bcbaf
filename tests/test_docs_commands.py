"""Every `defbench matrix`, `paper run` and `train` command the README and docs/ show is one the command line
accepts today: parsed and validated as a real run would be, up to where work starts (the runner, the paper
runner and the trainers are stand-ins, as in test_reliability_cli). A doc that keeps a command a later change
refuses (an option renamed, a flag the run would ignore) fails here, not in a reader's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from test_reliability_cli import no_work, run  # noqa: F401 -- no_work: a fixture

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: the example plugins of docs/PLUGINS.md and docs/API.md, installed by a reader, not here
EXAMPLE_PLUGINS = ("myattack", "mifgsm", "noisyblur", "linear", "mynet")
COMMAND = re.compile(r"(?:^|\s)(defbench\s+(?:matrix|paper\s+run|train)\b[^|;&>#`]*)")


def doc_commands() -> list[tuple[str, str]]:
    """(file name, command) of every matrix / paper run / train command in a code span or block of the docs."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        spans = []
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            spans += re.sub(r"\\\n\s*", " ", block).splitlines()
        spans += [s.replace("\n", " ") for s in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
        for span in spans:
            for m in COMMAND.finditer(span):
                found.append((path.name, " ".join(m.group(1).split())))
    return found


def runnable(command: str) -> list[str] | None:
    """The command's arguments, or None for a pattern rather than a command: placeholders (OUT, TABLE, N),
    '...', optional parts in [brackets], shell brace expansion."""
    try:
        argv = shlex.split(command)[1:]
    except ValueError:  # a quote the line wrap cut
        return None
    if "..." in command or any(a.startswith("[") or "{" in a or re.fullmatch(r"[A-Z]{1,6}", a) for a in argv):
        return None
    if len(argv) < 2 or argv[:2] == ["paper", "run"] and (len(argv) < 3 or argv[2].startswith("-")):
        return None  # "defbench paper run" named in prose
    if argv[0] == "train" and not any(a.startswith("--") for a in argv):
        return None  # "defbench train classifier" named in prose
    return argv


COMMANDS = sorted({(f, c) for f, c in doc_commands() if runnable(c)})


@pytest.fixture
def stand_ins(request, monkeypatch):
    """test_reliability_cli's stand-ins for the runner, the paper runner and the trainers, and no cluster check."""
    from defbench.harness import ray_executor

    request.getfixturevalue("no_work")
    monkeypatch.setattr(ray_executor, "check_reachable", lambda *a, **k: None)  # no cluster here


def test_the_docs_show_commands():
    """The reader sees the commands (a check that the test below looks at something)."""
    files = {f for f, _ in COMMANDS}
    assert len(COMMANDS) > 60 and {"README.md", "RESULTS.md", "CLUSTER.md", "MODELS.md"} <= files
    assert any(c.startswith("defbench paper run") for _, c in COMMANDS)
    assert runnable("defbench paper run TABLE --n N") is None and runnable("defbench matrix --n 5") == [
        "matrix",
        "--n",
        "5",
    ]


@pytest.mark.parametrize("doc, command", COMMANDS)
def test_a_command_of_the_docs_is_accepted(doc, command, stand_ins, tmp_path):
    argv = runnable(command)
    if "--out" in argv:  # nothing is written there, but a doc's path may not exist on this machine
        argv[argv.index("--out") + 1] = str(tmp_path / "out")
    if "--device" in argv and argv[argv.index("--device") + 1] == "cuda" and not torch.cuda.is_available():
        argv[argv.index("--device") + 1] = "cpu"  # a GPU machine's command: the rest of it is checked here
    rc, message = run(argv)
    if rc is not None and any(f"'{p}'" in message for p in EXAMPLE_PLUGINS):
        return  # the docs' own example plugin, not installed here
    # None: work would start; 0: nothing to do (a train command whose model the session's zoo already holds)
    assert rc in (None, 0), f"{doc}: `{command}` is refused: {message.strip()}"


def test_a_refused_command_fails_the_check(stand_ins, tmp_path):
    """The check can fire: a command the line refuses (here --eot without bpda) is not 'accepted'."""
    with pytest.raises(AssertionError, match="is refused: defbench: error: --eot 1: EOT averages"):
        test_a_command_of_the_docs_is_accepted("X.md", "defbench matrix --threat reparam --eot 1", None, tmp_path)
