"""Long phases of the lm commands report progress on stderr, never stdout, and ``--no-progress``
silences it (issue 23)."""

from __future__ import annotations

import time

import pytest

from spikelm import cli
from spikelm.lm import progress


def commands(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("Return the value of the attribute. If the file does not exist, raise an error. " * 3)
    return {
        "generate": ["generate", "--prompt", "Return the", "--tokens", "2"],
        "check": ["check", "--prompts", "1", "--length", "4"],
        "report": ["report", "--out", str(tmp_path / "r.png"), "--length", "4", "--codings", "signed_digit"],
        "evaluate": ["evaluate", "--text", str(text), "--snn-tokens", "4"],
    }


@pytest.mark.parametrize("name", ["generate", "check", "report", "evaluate"])
def test_progress_goes_to_stderr_and_no_progress_silences_it(tmp_path, capsys, monkeypatch, name):
    monkeypatch.setattr(progress, "DELAY", 0.0)  # the demo converts faster than a phase shows
    argv = ["lm", *commands(tmp_path)[name]]
    assert cli.main(argv) == 0
    shown = capsys.readouterr()
    assert "convert (calibrate on" in shown.err and "load " in shown.err
    assert "convert (calibrate on" not in shown.out and "\r" not in shown.out
    assert cli.main([*argv, "--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    assert quiet.out.count("\n") == shown.out.count("\n")  # the same report, only the bars gone


def test_a_phase_prints_its_clock_and_records_its_time_only_when_shown(capsys, monkeypatch):
    with progress.shown(), progress.phase("quick") as t:  # shorter than DELAY: nothing printed
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "DELAY", 0.0)
    with pytest.raises(KeyError), progress.shown(), progress.phase("failing"):
        time.sleep(0.2)
        raise KeyError("x")
    err = capsys.readouterr().err
    assert "failing" in err and "failing" not in err.replace("\r", "\n").split("\n")[-1]  # cleared, not left
    with progress.phase("hidden") as t:
        pass
    assert capsys.readouterr().err == "" and t["seconds"] >= 0
    with progress.shown(), progress.phase("a phase") as t:
        pass
    assert "a phase" in capsys.readouterr().err
    with progress.shown(), progress.shown(False), progress.bar("inner", 3) as b:
        b.update(3)
    assert capsys.readouterr().err == ""


def test_a_phase_clock_counts_from_the_phase_start(monkeypatch, capsys):
    """The running clock of an opaque phase shows the seconds since the phase began (tqdm's own
    clock is wall time: a perf_counter start once made it read 4990 hours)."""
    import re
    import time

    from spikelm.lm import progress

    monkeypatch.setattr(progress, "DELAY", 0.05)
    monkeypatch.setattr(progress, "TICK", 0.05)
    with progress.shown(), progress.phase("loading x"):
        time.sleep(0.3)
    shown = re.findall(r"loading x: ([^\r\n]*)", capsys.readouterr().err)
    assert shown and all(re.fullmatch(r"00:0[0-9]\s*", s) for s in shown), shown
