"""The harness of the fuzz suites: run ``spikelm`` in-process on one bad input and judge it.

Every bad input must end with exit code 2 and one line ``spikelm: error: ...`` naming the
file (and the field, where it has one), no traceback, within a time bound, and leave every
file that existed before untouched. :func:`run_cli` runs ``spikelm.cli.main`` in this process
(no interpreter start per case: hundreds of cases take seconds) with stdout and stderr
captured and a SIGALRM bound; an exception escaping ``main`` is reported as a traceback.
"""
from __future__ import annotations

import contextlib
import copy
import faulthandler
import hashlib
import io
import os
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, settings

from spikelm.cli import main

#: Seconds one case may take (a hang is reported as such, not waited for).
TIME_BOUND = 60


def fuzz_settings(n, derandomize=False):
    """Hypothesis settings of a fuzz test: ``n`` examples in the default profile, scaled with
    the loaded profile's ``max_examples`` (``HYPOTHESIS_PROFILE=thorough`` gives 5 n).

    ``derandomize``: the same examples every run. For byte flips in HDF5 files: the HDF5 C
    library itself can crash (SIGSEGV) on damaged metadata, about once in 1,500 random flips
    of a learned.h5, which no Python code can catch; fixed examples keep a run's outcome the
    same on every machine with the same libraries (the files the tests write are identical
    byte for byte)."""
    scale = settings.default.max_examples / 100
    return settings(max_examples=max(1, round(n * scale)), derandomize=derandomize,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Hang(Exception):
    """A case ran past TIME_BOUND."""


@dataclass
class Outcome:
    rc: object            # exit code, "traceback" or "hang"
    out: str
    err: str

    @property
    def lines(self):
        # what a terminal shows: a progress line redrawn or cleared in place ('\r') leaves only
        # what was written after its last carriage return
        shown = [ln.rsplit("\r", 1)[-1] for ln in self.err.split("\n")]
        return [ln for ln in shown if ln.strip()]


def _alarm(signum, frame):
    raise Hang()


def run_cli(argv, bound=TIME_BOUND) -> Outcome:
    """``spikelm ARGV`` in this process: exit code, stdout, stderr (or 'traceback' / 'hang')."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, bound)
    # SIGALRM cannot stop a loop inside C code (HDF5): then end the test process, saying where
    faulthandler.dump_traceback_later(2 * bound + 30, exit=True)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    except Hang:
        rc = "hang"
    except SystemExit as exc:       # argparse: usage errors exit 2 after one "error:" line
        rc = exc.code
    except BaseException as exc:
        rc = "traceback"
        err.write("".join(traceback.format_exception(exc)))
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return Outcome(rc, out.getvalue(), err.getvalue())


def assert_refused(o: Outcome, *needles, what=""):
    """Exit 2, one 'spikelm: error:' line holding every needle, no traceback."""
    assert o.rc == 2, f"{what}: exit {o.rc}, expected 2\n{o.err[-3000:]}"
    assert "Traceback" not in o.err, f"{what}: traceback\n{o.err[-3000:]}"
    assert len(o.lines) == 1 and o.lines[0].startswith("spikelm: error:"), f"{what}: not one error line:\n{o.err}"
    for n in needles:
        assert str(n) in o.lines[0], f"{what}: {n!r} not named in: {o.lines[0]}"


def assert_clean(o: Outcome, what=""):
    """Either success, or a refusal as above: never a traceback, never a hang."""
    assert o.rc in (0, 2), f"{what}: exit {o.rc}\n{o.err[-3000:]}"
    assert "Traceback" not in o.err, f"{what}: traceback\n{o.err[-3000:]}"
    if o.rc == 2:
        assert_refused(o, what=what)


def digest(paths):
    """{path: sha256 of its bytes} of the files that exist (to prove a case changed none)."""
    out = {}
    for p in paths:
        p = Path(p)
        if p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_unchanged(before, what=""):
    for path, h in before.items():
        assert os.path.exists(path), f"{what}: {path} was deleted"
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == h, f"{what}: {path} was changed"


# -- a tally of many cases (a suite's measure: how many fail, and how) ----------------------------


class Tally:
    """The outcome of every case of a test: refused, accepted, traceback, hang; and of the
    failures among them (a refusal not one line naming the file and field, an acceptance where
    a refusal was due, a file changed). :meth:`check` prints the tally and fails listing them."""

    def __init__(self):
        self.counts = {"refused": 0, "accepted": 0, "traceback": 0, "hang": 0, "other exit": 0}
        self.failures = {"not one line naming it": 0, "accepted, refusal due": 0, "file changed": 0}
        self.bad = []

    def judge(self, o, what, path, needles=None, before=None):
        """Record ``o``: refused (exit 2, one line naming ``path`` and every needle) or, where
        ``needles`` is None, accepted (exit 0) too; the files of ``before`` (:func:`digest`) unchanged."""
        kind = {0: "accepted", 2: "refused", "traceback": "traceback", "hang": "hang"}.get(o.rc, "other exit")
        self.counts[kind] += 1
        first = o.lines[0] if o.lines else ""
        if kind == "refused":
            missing = [n for n in (str(path), *(needles or ())) if str(n) not in first]
            if len(o.lines) != 1 or not first.startswith("spikelm: error:") or missing or "Traceback" in o.err:
                self.fail("not one line naming it", f"{what}: not one line naming {missing}: {o.err.strip()[-600:]}")
        elif kind == "accepted" and needles is not None:
            self.fail("accepted, refusal due", f"{what}: accepted (exit 0), expected a refusal naming {needles}")
        elif kind != "accepted":
            self.bad.append(f"{what}: {o.rc}: {o.err.strip()[-1500:]}")
        for p, h in (before or {}).items():
            if digest([p]).get(p) != h:
                self.fail("file changed", f"{what}: {p} changed or deleted")

    def fail(self, kind, text):
        self.failures[kind] += 1
        self.bad.append(text)

    def check(self, at_least):
        n = sum(self.counts.values())
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0].rsplit("::", 1)[-1]
        print(f"\n{test}: {n} cases: " + ", ".join(f"{v} {k}" for k, v in {**self.counts, **self.failures}.items()))
        assert n >= at_least, f"only {n} cases generated"
        assert not self.bad, f"{len(self.bad)} of {n} cases failed:\n" + "\n".join(self.bad[:20])


# -- generated mutations of nested tables (scenarios, model configs) ---------------------------

DELETE = object()


def leaves(tree, prefix=()):
    """(path, value) of every key and list item of a nested dict/list, depth first."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return
    for k, v in items:
        yield prefix + (k,), v
        yield from leaves(v, prefix + (k,))


def replaced(tree, path, value):
    """A deep copy of ``tree`` with ``path`` set to ``value`` (or deleted: :data:`DELETE`)."""
    tree = copy.deepcopy(tree)
    node = tree
    for k in path[:-1]:
        node = node[k]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tree


def dotted(path):
    """``('stimuli', 1, 'times', 0)`` -> ``'stimuli[1].times[0]'``, as error messages write it."""
    text = ""
    for k in path:
        text += f"[{k}]" if isinstance(k, int) else (f".{k}" if text else str(k))
    return text


def kind_of(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "table", list: "list"}[type(value)]


#: Values of the wrong type for each kind of value (none of them is valid where that kind is).
WRONG_TYPES = {
    "number": ["x", True, {"a": 1}],
    "string": [7, ["a"], {"a": "b"}, ""],
    "bool": ["yes", 1, [True]],
    "table": [7, "x", [1]],
    "list": ["x", 7, {"a": 1}],
    "null": ["x", True, [1]],          # JSON null (a model config's n_inner)
}
NON_FINITE = [float("nan"), float("inf"), float("-inf")]
EXTREME = [1e308, -1e308, 2**63 - 1, -(2**63), 1e-300, 0, -1]


# -- generated damage to HDF5 files (run files, checkpoints, NIR graphs) ----------------------


def _objects(path):
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append((name, isinstance(obj, h5py.Group))))
    return names


def _attributes(path):
    out = []
    with h5py.File(path, "r") as f:
        out += [("/", k) for k in f.attrs]
        f.visititems(lambda name, obj: out.extend((name, k) for k in obj.attrs))
    return out


def swap_kind(f, name, is_group):
    """Replace ``name`` by the other kind of object (a group by a dataset, a dataset by a group)."""
    del f[name]
    if is_group:
        f[name] = np.arange(3.0)
    else:
        f.create_group(name)


def make_scalar(f, name):
    data = f[name][()]
    del f[name]
    f[name] = np.asarray(data).ravel()[0] if np.asarray(data).size else 0


def structural_mutations(path):
    """(id, mutate(file), expected) for every object and attribute of a good file."""
    cases = []
    for name, is_group in _objects(path):
        cases.append((f"delete {name}", lambda f, n=name: f.__delitem__(n), "either"))
        cases.append((f"swap {name}", lambda f, n=name, g=is_group: swap_kind(f, n, g), "either"))
        cases.append((f"self-link {name}", lambda f, n=name: (f.__delitem__(n), f.__setitem__(n, h5py.SoftLink("/" + n))),
                      "either"))
        cases.append((f"external {name}", lambda f, n=name: (f.__delitem__(n), f.__setitem__(
            n, h5py.ExternalLink("/etc/hostname", "/x"))), "either"))
        if not is_group:
            cases.append((f"scalar {name}", lambda f, n=name: make_scalar(f, n), "either"))
    for owner, key in _attributes(path):
        cases.append((f"delete attr {owner}@{key}", lambda f, o=owner, k=key: f[o].attrs.__delitem__(k), "either"))
        cases.append((f"string attr {owner}@{key}", lambda f, o=owner, k=key: f[o].attrs.__setitem__(k, "x"), "either"))
    return cases


def json_mutations(tree):
    """(what, mutated copy) of a JSON value: every key deleted, every value of each wrong type,
    every number non-finite and extreme (the generator that found a Poisson rate of -80 accepted)."""
    cases = []
    for path, value in leaves(tree):
        if any(isinstance(k, int) and k > 0 for k in path):
            continue        # the first item of a list stands for the others (one check covers them)
        cases.append((f"delete {dotted(path)}", replaced(tree, path, DELETE)))
        kind = kind_of(value)
        cases += [(f"{dotted(path)} = {w!r}", replaced(tree, path, w)) for w in WRONG_TYPES[kind]]
        if kind == "number":
            cases += [(f"{dotted(path)} = {w!r}", replaced(tree, path, w)) for w in NON_FINITE + EXTREME + [2**70]]
    return cases


# -- generated output paths ---------------------------------------------------------------------


def bad_outputs(d, inputs):
    """(what, path, needle) of output paths every writing option must refuse before any work:
    a directory, a missing directory, a named pipe, each input of the command (by its name, through
    a link and through ``..``), and an existing result without ``--overwrite``."""
    d = Path(d)
    (d / "adir").mkdir(exist_ok=True)
    fifo = d / "a_pipe"
    if not fifo.exists():
        os.mkfifo(fifo)
    cases = [("a directory", d / "adir", "is a directory"), ("in a missing directory", d / "nope" / "x.out", "does not exist"),
             ("a named pipe", fifo, "not a regular file"), ("an empty name", "", "empty")]
    for k, src in enumerate(inputs):
        src = Path(src)
        link = d / f"link{k}{src.suffix}"
        if not link.exists():
            os.symlink(src, link)
        cases += [(f"the input {src.name}", src, "is also the"), (f"a link to {src.name}", link, "is also the"),
                  (f"{src.name} through ..", d / "adir" / ".." / src.relative_to(d) if src.is_relative_to(d) else src,
                   "is also the")]
    existing = d / "existing.out"
    existing.write_bytes(b"an earlier result")
    cases.append(("an existing result", existing, "--overwrite"))
    return cases


# -- a small language-model folder (the LM fuzz suites break copies of it) ---------------------


def lm_model_folder(path):
    """A 1-layer GPT-2 folder of width 8 (spikelm's character tokenizer, context 16, a calibration
    text) at ``path``: converts in a fraction of a second. Needs torch."""
    import json

    from safetensors.torch import save_file

    from spikelm.lm.tokenizer import CharTokenizer
    from test_lm_helpers import random_tiny_gpt

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = CharTokenizer()
    model = random_tiny_gpt(7, vocab=tok.vocab_size, ctx=16, width=8, layers=1, heads=2, std=0.2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(model.config.to_dict()))
    tok.save(path / "tokenizer.json")
    (path / "calibration.txt").write_text("Return the value of the file.\n" * 8)
    return path
