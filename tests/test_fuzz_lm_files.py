"""Fuzz: damaged LM checkpoints, learned model folders and GGUF files (issue 27).

A small GPT-2 folder learns for two tokens under a plasticity file, writing a checkpoint
(``lm generate --resume`` reads it) and a learned model folder (``lm generate --model`` reads
its ``learned.h5``); a tiny Llama GGUF file is written with gguf's own writer. Each is then
broken in generated ways: every object deleted, made the other kind, linked to itself or to
another file, every attribute deleted or made a string, every stored array given NaN, a
negative, a huge value, floats or strings where integers belong, truncations and flipped bytes
(hypothesis), plus the values the issue found accepted (negative or 2^62 clock, NaN masters and
theta, zero spike units, float token ids, integer rows that are not their masters' rounding,
GGUF metadata that disagrees with its tensors). Every case exits 0 or 2 with one line naming
the file; the damage the issue lists is refused; never a traceback or a hang; the broken file
is never changed. Each test ends with its tally (refused / accepted / tracebacks / hangs).
"""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import Tally, digest, fuzz_settings, lm_model_folder, run_cli, structural_mutations

pytest.importorskip("torch", reason="building the test model needs torch (the lm extra)")
RULES = '[projections."h*.fc".plasticity]\nrule = "braingpt_stdp"\neta_w = 0.01\n'
BOUND = 30      # seconds a case may take: a tiny model resumes or refuses in well under one


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """A model folder, a checkpoint of two learned tokens and the learned model folder."""
    d = tmp_path_factory.mktemp("fuzz_lm_files")
    model = lm_model_folder(d / "model")
    (d / "rules.toml").write_text(RULES)
    o = run_cli(["lm", "generate", "--model", model, "--prompt", "Re", "--tokens", "2", "--plasticity",
                 d / "rules.toml", "--checkpoint", d / "ck.h5", "--save-model", d / "learned"])
    assert o.rc == 0, o.err
    return {"dir": d, "model": model, "ck": d / "ck.h5", "learned": d / "learned"}


# -- checkpoints (lm generate --resume) --------------------------------------------------------


def _resume(lm, ck):
    return run_cli(["lm", "generate", "--model", lm["model"], "--tokens", "1", "--resume", ck], bound=BOUND)


def _broken(src, dst, mutate):
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        mutate(f)
    return digest([dst])


def _datasets(path, group):
    out = []
    with h5py.File(path, "r") as f:
        f[group].visititems(lambda n, o: out.append((f"{group}/{n}", o.dtype.kind, o.shape))
                            if isinstance(o, h5py.Dataset) and o.dtype.kind in "iuf" else None)
    return out


def _set_first(f, name, value):
    data = f[name][()]
    flat = np.array(data, dtype=np.result_type(data, np.asarray(value))).reshape(-1)
    flat[0] = value
    del f[name]
    f[name] = flat.reshape(np.shape(data))


def _retyped(f, name, dtype):
    data = f[name][()]
    del f[name]
    if dtype == "str":
        f.create_dataset(name, data=np.full(np.shape(data), "x", dtype=object), dtype=h5py.string_dtype())
    else:
        f[name] = np.asarray(data).astype(dtype) + (0.5 if dtype is float else 0)


def value_mutations(path, group):
    """(what, mutate) of every numeric dataset under ``group``: its first value NaN, infinite,
    negative or huge; floats where it holds integers; strings."""
    cases = []
    for name, kind, shape in _datasets(path, group):
        if not np.prod(shape):
            continue
        for v in ([np.nan, np.inf] if kind == "f" else []) + [-1, -(2**62), 2**62]:
            cases.append((f"{name}[0] = {v!r}", lambda f, n=name, v=v: _set_first(f, n, v)))
        if kind in "iu":
            cases.append((f"{name} floats", lambda f, n=name: _retyped(f, n, float)))
        cases.append((f"{name} strings", lambda f, n=name: _retyped(f, n, "str")))
    return cases


def _both_clocks(f, value):
    f["lm_checkpoint"].attrs["clock"] = value
    f["lm_checkpoint/learned/clock"][...] = value


#: What the issue found accepted or crashing, each refused naming the field.
CHECKPOINT_DAMAGE = {
    "negative clock": (lambda f: _both_clocks(f, -5), "clock"),
    "a clock past what a run reaches": (lambda f: _both_clocks(f, 2**63 - 1), "clock"),
    "a clock behind its tokens' steps": (lambda f: _both_clocks(f, 3), "clock"),
    "clock and learned clock differ": (lambda f: f["lm_checkpoint"].attrs.__setitem__("clock", 10**6), "clock"),
    "NaN masters": (lambda f: _set_first(f, "lm_checkpoint/learned/wm", np.nan), "learned/wm"),
    "zero spike unit": (lambda f: _set_first(f, "lm_checkpoint/learned/unit", 0), "learned/unit"),
    "negative spike unit": (lambda f: _set_first(f, "lm_checkpoint/learned/unit", -2), "learned/unit"),
    "NaN theta": (lambda f: _set_first(f, "lm_checkpoint/learned/theta_base", np.nan), "theta_base"),
    "float token ids": (lambda f: _retyped(f, "lm_checkpoint/ids", float), "ids"),
    "token ids past the vocabulary": (lambda f: _set_first(f, "lm_checkpoint/ids", 10**6), "ids"),
    "counts of strings": (lambda f: _retyped(f, "lm_checkpoint/counts", "str"), "counts"),
    "a count outside its code range": (lambda f: _set_first(f, "lm_checkpoint/counts", 30000), "counts"),
    "logits not their accumulators'": (lambda f: _set_first(f, "lm_checkpoint/logits", 2.0**62), "logits"),
    "string clock": (lambda f: f["lm_checkpoint"].attrs.__setitem__("clock", "12"), "clock"),
    "not a checkpoint": (lambda f: f["lm_checkpoint"].attrs.__setitem__("format", "x"), "checkpoint"),
}


def test_the_damage_the_issue_found_in_checkpoints_is_refused(lm):
    tally = Tally()
    for what, (mutate, field) in CHECKPOINT_DAMAGE.items():
        ck = lm["dir"] / "damaged_ck.h5"
        before = _broken(lm["ck"], ck, mutate)
        tally.judge(_resume(lm, ck), what, ck, [field], before)
    tally.check(len(CHECKPOINT_DAMAGE))


def test_a_clock_of_2_62_resumes_at_once_or_is_refused(lm):
    """The trace decay once looped clock times (hours at 2^62): now bounded either way."""
    ck = lm["dir"] / "late_ck.h5"
    before = _broken(lm["ck"], ck, lambda f: _both_clocks(f, 2**62))
    tally = Tally()
    tally.judge(_resume(lm, ck), "clock 2^62", ck, None, before)
    tally.check(1)


def test_every_part_of_a_checkpoint_broken(lm):
    cases = [(w, m) for w, m, _ in structural_mutations(lm["ck"])] + value_mutations(lm["ck"], "lm_checkpoint")
    tally = Tally()
    for what, mutate in cases:
        ck = lm["dir"] / "broken_ck.h5"
        before = _broken(lm["ck"], ck, mutate)
        tally.judge(_resume(lm, ck), what, ck, None, before)
    tally.check(300)


def test_the_unbroken_checkpoint_and_learned_folder_work(lm):
    """The bases the cases break are good: each refusal is the damage's doing."""
    assert _resume(lm, lm["ck"]).rc == 0
    assert _learned_generate(lm["learned"]).rc == 0


@fuzz_settings(20, derandomize=True)
@given(st.data())
def test_truncated_and_flipped_checkpoints(lm, data):
    blob = bytearray(lm["ck"].read_bytes())
    cut = data.draw(st.booleans(), label="truncate")
    if cut:
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            blob[data.draw(st.integers(0, len(blob) - 1), label="offset")] = data.draw(st.integers(0, 255), label="byte")
    ck = lm["dir"] / "cut_ck.h5"
    ck.write_bytes(bytes(blob))
    tally = Tally()
    tally.judge(_resume(lm, ck), "truncated" if cut else "flipped bytes", ck, [] if cut else None, digest([ck]))
    tally.check(1)


# -- learned model folders (lm generate --model LEARNED) ---------------------------------------


def _learned_generate(folder):
    return run_cli(["lm", "generate", "--model", folder, "--prompt", "Re", "--tokens", "1"], bound=BOUND)


def _learned_copy(lm, name="broken_learned"):
    folder = lm["dir"] / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(lm["learned"], folder)
    return folder


def _projection(path):
    with h5py.File(path, "r") as f:
        return "projections/" + next(iter(f["projections"]))


def learned_damage(path):
    p = _projection(path)
    return {
        "NaN masters": (lambda f: _set_first(f, f"{p}/masters", np.nan), f"{p}/masters"),
        "integer rows out of range": (lambda f: _set_first(f, f"{p}/weights", 127), f"{p}/weights"),
        "integer rows not their masters' rounding": (
            lambda f: f[f"{p}/weights"].__setitem__((0, 0), f[f"{p}/weights"][0, 0] ^ 1), f"{p}/weights"),
        "float integer rows": (lambda f: _retyped(f, f"{p}/weights", float), f"{p}/weights"),
        "not a learned model": (lambda f: f.attrs.__setitem__("format", "x"), "learned-model"),
    }


def test_the_damage_the_issue_found_in_learned_folders_is_refused(lm):
    tally = Tally()
    learned = lm["learned"] / "learned.h5"
    for what, (mutate, field) in learned_damage(learned).items():
        folder = _learned_copy(lm)
        before = _broken(learned, folder / "learned.h5", mutate)
        tally.judge(_learned_generate(folder), what, folder / "learned.h5", [field], before)
    folder = _learned_copy(lm)
    (folder / "learned.h5").unlink()
    (folder / "learned.h5").mkdir()
    tally.judge(_learned_generate(folder), "learned.h5 a directory", folder / "learned.h5", ["directory"])
    tally.check(6)


def test_every_part_of_a_learned_model_broken(lm):
    learned = lm["learned"] / "learned.h5"
    cases = [(w, m) for w, m, _ in structural_mutations(learned)] + value_mutations(learned, "projections")
    tally = Tally()
    for what, mutate in cases:
        folder = _learned_copy(lm)
        before = _broken(learned, folder / "learned.h5", mutate)
        tally.judge(_learned_generate(folder), what, folder / "learned.h5", None, before)
    tally.check(40)


@fuzz_settings(15, derandomize=True)
@given(st.data())
def test_truncated_and_flipped_learned_models(lm, data):
    blob = bytearray((lm["learned"] / "learned.h5").read_bytes())
    cut = data.draw(st.booleans(), label="truncate")
    if cut:
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            blob[data.draw(st.integers(0, len(blob) - 1), label="offset")] = data.draw(st.integers(0, 255), label="byte")
    folder = _learned_copy(lm, "cut_learned")
    (folder / "learned.h5").write_bytes(bytes(blob))
    tally = Tally()
    tally.judge(_learned_generate(folder), "truncated" if cut else "flipped bytes", folder / "learned.h5",
                [] if cut else None, digest([folder / "learned.h5"]))
    tally.check(1)


# -- GGUF files (lm generate --model FILE.gguf) ------------------------------------------------


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    pytest.importorskip("gguf", reason="GGUF files are written with gguf (the lm extra)")
    pytest.importorskip("transformers", reason="GGUF files are read through transformers (the lm extra)")
    from gguf_files import write_llama

    d = tmp_path_factory.mktemp("fuzz_gguf")
    write_llama(d / "good.gguf")
    return d


def _gguf_generate(path, *extra):
    return run_cli(["lm", "generate", "--model", path, "--prompt", "ab", "--tokens", "1", *extra], bound=BOUND)


def test_gguf_metadata_that_disagrees_with_its_tensors_is_refused(gguf_dir):
    from gguf_files import write_llama

    tally = Tally()
    for what, kw, field in [
        ("block_count short of the tensors", dict(block_count=1), "block_count"),
        ("block_count past the tensors", dict(block_count=5), "block_count"),
        ("block_count 0", dict(block_count=0), "block_count"),
        ("block_count missing", dict(block_count=None), "block_count"),
        ("head_count 0", dict(head_count=0), "head_count"),
        ("head_count not dividing the width", dict(head_count=3), "head_count"),
        ("a layer's tensor missing", dict(skip=("blk.1.attn_q.weight",)), "layers.1"),
        ("the embedding missing", dict(skip=("token_embd.weight",)), "embed"),
    ]:
        path = write_llama(gguf_dir / "bad.gguf", **kw)
        tally.judge(_gguf_generate(path), what, path, [field], digest([path]))
    tally.check(8)


def test_gguf_names_and_context(gguf_dir):
    good = gguf_dir / "good.gguf"
    upper = gguf_dir / "UPPER.GGUF"
    shutil.copy(good, upper)
    o = _gguf_generate(upper)
    assert o.rc == 0, f"a .GGUF name: {o.err[-2000:]}"     # once unpickled by torch
    assert "Traceback" not in o.err
    tally = Tally()
    tally.judge(_gguf_generate(good, "--context", "1"), "--context 1 on a Llama model", "--context", [])
    tally.check(1)


def test_gguf_truncated_at_every_part_is_refused(gguf_dir):
    data = (gguf_dir / "good.gguf").read_bytes()
    tally = Tally()
    for length in [0, 3, 4, 8, 16, 24, 40, 100, 1000, 4000, len(data) // 2, len(data) - 1]:
        path = gguf_dir / "cut.gguf"
        path.write_bytes(data[:length])
        tally.judge(_gguf_generate(path), f"cut to {length} bytes", path, [], digest([path]))
    tally.check(12)


@fuzz_settings(15)
@given(st.data())
def test_flipped_gguf_bytes_never_crash(gguf_dir, data):
    blob = bytearray((gguf_dir / "good.gguf").read_bytes())
    head = data.draw(st.booleans(), label="in the header")   # the metadata is what is read first
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        i = data.draw(st.integers(0, min(len(blob), 6000 if head else len(blob)) - 1), label="offset")
        blob[i] = data.draw(st.integers(0, 255), label="byte")
    path = gguf_dir / "flipped.gguf"
    path.write_bytes(bytes(blob))
    tally = Tally()
    tally.judge(_gguf_generate(path), "flipped bytes", path, None, digest([path]))
    tally.check(1)


def test_the_unbroken_gguf_file_works(gguf_dir):
    o = _gguf_generate(gguf_dir / "good.gguf")
    assert o.rc == 0, o.err

