"""The compile cache can never give a wrong answer or crash the process (issue 9).

Keys cover the working folder and absolute -I folders; an entry is checked (digest,
key, metadata shape, the files the compile read, the files the library search would
have found first) before use; corrupted, truncated, swapped or foreign-owned entries
are misses; a cache that cannot be written warns once and the compile goes on.
Every corruption case runs in a child process, so a crash would be seen as one.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import diffaust
from diffaust.errors import DiffaustWarning
from diffaust.runtime import cache

pytestmark = pytest.mark.usefixtures("diffaust_compile")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(d))
    monkeypatch.delenv("DIFFAUST_NO_CACHE", raising=False)
    monkeypatch.delenv("DIFFAUST_CACHE_MAX_MB", raising=False)
    return d


def entries(d):
    return sorted((d / "dsp").glob("*.entry")) if (d / "dsp").is_dir() else []


def one(dsp, value=1.0):
    return float(dsp.render(np.full((dsp.inputs, 1), value))[0, 0])


def run_cli(*argv, cwd=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "diffaust", *map(str, argv)], capture_output=True, text=True,
                       cwd=cwd, env=e, timeout=300)
    return p.returncode, p.stdout, p.stderr


# ------------------------------------------------------------------ keys


def test_source_string_imports_from_the_working_folder(cache_dir, tmp_path, monkeypatch):
    src = 'import("mylib.lib"); process = _ : f;'
    for name, k in (("A", 2), ("B", 3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mylib.lib").write_text(f"f = *({k});")
    for name, k in (("A", 2), ("B", 3), ("A", 2), ("B", 3)):
        monkeypatch.chdir(tmp_path / name)
        assert one(diffaust.compile(src)) == k
        assert one(diffaust.compile(src, use_cache=False)) == k


def test_cli_relative_import_dir_from_two_folders(cache_dir, tmp_path):
    prog = tmp_path / "prog.dsp"
    prog.write_text('import("mylib.lib"); process = _ : f;')
    outs = {}
    for name, k in (("A", 2), ("B", 3), ("A", 2)):
        (tmp_path / name / "lib").mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "lib" / "mylib.lib").write_text(f"f = *({k});")
        out = tmp_path / name / "y.npy"
        code, _, err = run_cli("render", prog, "-I", "lib", "--input", "ones", "-n", "2", "-o", out,
                               cwd=tmp_path / name, env={"DIFFAUST_CACHE_DIR": str(cache_dir)})
        assert code == 0, err
        outs[name] = np.load(out)
        assert np.all(outs[name] == k)


def test_library_added_earlier_in_the_search_path(cache_dir, tmp_path):
    prog = tmp_path / "prog.dsp"
    prog.write_text('import("stdfaust.lib"); process = ba.if(1, 5, 6);')
    assert one(diffaust.compile(str(prog))) == 5
    assert one(diffaust.compile(str(prog))) == 5  # warm
    (tmp_path / "stdfaust.lib").write_text("ba = environment { if(c, a, b) = 7; };")
    assert one(diffaust.compile(str(prog))) == 7
    (tmp_path / "stdfaust.lib").unlink()
    assert one(diffaust.compile(str(prog))) == 5


def test_library_changed_with_the_same_size_and_time(cache_dir, tmp_path):
    lib = tmp_path / "mine.lib"
    lib.write_text("k = 2;")
    prog = tmp_path / "p.dsp"
    prog.write_text('import("mine.lib"); process = _ * k;')
    assert one(diffaust.compile(str(prog))) == 2
    st = os.stat(lib)
    lib.write_text("k = 3;")
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert one(diffaust.compile(str(prog))) == 3


def test_sound_file_appearing_later(cache_dir, tmp_path, monkeypatch):
    from diffaust.audio import write_wav

    prog = tmp_path / "p.dsp"
    prog.write_text('process = 0, 0 : soundfile("s [url:{\'s.wav\'}]", 1) : !, !, _;')
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiffaustWarning)
        silent = one(diffaust.compile(str(prog)), 0.0)
    assert silent == 0.0
    write_wav(str(tmp_path / "s.wav"), np.full((1, 8), 0.5, dtype=np.float32), 44100)
    assert one(diffaust.compile(str(prog)), 0.0) == 0.5


def test_sound_file_appearing_earlier_in_its_search(cache_dir, tmp_path, monkeypatch):
    """A sound file's name is looked for in the working folder, then the program's folder."""
    from diffaust.audio import write_wav

    (tmp_path / "prog").mkdir()
    (tmp_path / "work").mkdir()
    prog = tmp_path / "prog" / "p.dsp"
    prog.write_text('process = 0, 0 : soundfile("s [url:{\'s.wav\'}]", 1) : !, !, _;')
    write_wav(str(tmp_path / "prog" / "s.wav"), np.full((1, 8), 0.5, dtype=np.float32), 44100)
    monkeypatch.chdir(tmp_path / "work")
    assert one(diffaust.compile(str(prog)), 0.0) == 0.5
    write_wav(str(tmp_path / "work" / "s.wav"), np.full((1, 8), 0.25, dtype=np.float32), 44100)
    assert one(diffaust.compile(str(prog)), 0.0) == 0.25


# ------------------------------------------------------------------ corruption

CORRUPT_SCRIPT = textwrap.dedent('''
    import os, random, sys, glob, warnings
    import numpy as np
    import diffaust
    warnings.simplefilter("ignore")
    cache_dir = sys.argv[1]
    d = os.path.join(cache_dir, "dsp")
    SRC = {2: "process = _ * hslider(\\"g [diff:1]\\", 2, 0, 9, 0.1);",
           3: "process = _ * hslider(\\"h\\", 3, 0, 9, 0.1) : + ~ *(0);"}

    def check(k):
        y = diffaust.compile(SRC[k]).render(np.ones((1, 4)))
        assert np.all(y == k), (k, y)

    def entry_of(k):
        before = set(glob.glob(os.path.join(d, "*.entry")))
        check(k)
        return [p for p in glob.glob(os.path.join(d, "*.entry")) if p not in before][0]

    paths = {k: entry_of(k) for k in SRC}
    good = {k: open(p, "rb").read() for k, p in paths.items()}
    rng = random.Random(0)
    n = len(good[2])
    hlen = good[2].index(b"{")

    def cases(data, other):
        yield "empty", b""
        for m in (1, 10, len(data) // 2, len(data) - 1):
            yield f"truncated to {m}", data[:m]
        yield "random", bytes(rng.randrange(256) for _ in range(len(data)))
        yield "random, valid magic", data[:30] + bytes(rng.randrange(256) for _ in range(len(data) - 30))
        for pos in (5, 40, hlen + 3, hlen + 50, len(data) // 2, len(data) - 3):
            b = bytearray(data); b[pos] ^= 0x5A
            yield f"byte {pos} flipped", bytes(b)
        yield "swapped with another program's entry", other
        yield "object replaced by random bytes", data[:-200] + bytes(rng.randrange(256) for _ in range(200))
        yield "a directory", None

    import shutil
    for k, other in ((2, 3), (3, 2)):
        for name, data in cases(good[k], good[other]):
            print("case", k, name, flush=True)
            p = paths[k]
            if os.path.isdir(p): shutil.rmtree(p)
            else: os.unlink(p)
            if data is None:
                os.mkdir(p)
            else:
                with open(p, "wb") as f: f.write(data)
                os.chmod(p, 0o600)
            check(k)   # a miss: right answer
            if data is not None:
                assert open(p, "rb").read() == good[k] or len(open(p, "rb").read()) > 100
                check(k)   # and the rewritten entry is good
        if os.path.isdir(paths[k]): os.rmdir(paths[k])
        with open(paths[k], "wb") as f: f.write(good[k])
    print("ok")
''')


def test_corrupted_entries_are_misses_never_crashes(cache_dir, tmp_path):
    script = tmp_path / "corrupt.py"
    script.write_text(CORRUPT_SCRIPT)
    p = subprocess.run([sys.executable, str(script), str(cache_dir)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "DIFFAUST_CACHE_DIR": str(cache_dir)})
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), \
        f"exit {p.returncode}, last case: {p.stdout.strip().splitlines()[-1:]}\n{p.stderr[-2000:]}"


def test_an_entry_with_consistent_digest_but_wrong_metadata_is_a_miss(cache_dir):
    """Defence in depth: the metadata's shape is checked even when the digest matches."""
    src = "process = _ * hslider(\"g\", 2, 0, 9, 0.1);"
    assert one(diffaust.compile(src)) == 2
    (path,) = entries(cache_dir)
    key = path.stem
    meta, obj, deps, libs = cache.unpack(path.read_bytes(), key)
    for bad in ({**meta, "sym": ""}, {**meta, "state_size": -1}, {**meta, "params": [{**meta["params"][0],
                                                                                        "offset": 1 << 20}]},
                {**meta, "outputs": "1"}, {**meta, "primal_outputs": 5}, {k: v for k, v in meta.items()
                                                                           if k != "warnings"}):
        path.write_bytes(cache.pack(key, bad, obj, deps, libs))
        assert cache.load(key) is None
    path.write_bytes(cache.pack("0" * 32, meta, obj, deps, libs))  # another key's entry
    assert cache.load(key) is None
    assert one(diffaust.compile(src)) == 2


RACE_WORKER = textwrap.dedent('''
    import sys, warnings
    import numpy as np
    import diffaust
    warnings.simplefilter("ignore")
    lib, prog, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def version():
        while True:
            try:
                return int(open(lib).read().split("*(")[1].split(")")[0])
            except (IndexError, ValueError):
                continue   # caught mid-write
    for _ in range(n):
        before = version()
        y = float(diffaust.compile(prog).render(np.ones((1, 1)))[0, 0])
        after = version()
        assert before <= y <= after, (before, y, after)
    print("ok")
''')


def test_two_processes_compiling_while_a_library_changes(cache_dir, tmp_path):
    lib = tmp_path / "mylib.lib"
    lib.write_text("f = *(1);")
    prog = tmp_path / "prog.dsp"
    prog.write_text('import("mylib.lib"); process = _ : f;')
    worker = tmp_path / "worker.py"
    worker.write_text(RACE_WORKER)
    env = {**os.environ, "DIFFAUST_CACHE_DIR": str(cache_dir)}
    procs = [subprocess.Popen([sys.executable, str(worker), str(lib), str(prog), "40"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    k, rng = 1, np.random.default_rng(0)
    while any(p.poll() is None for p in procs):
        time.sleep(rng.uniform(0, 0.4))  # some compiles see a stable library, store and hit
        k += 1
        tmp = tmp_path / "mylib.tmp"
        tmp.write_text(f"f = *({k});")
        os.replace(tmp, lib)  # the version only grows
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    lib.write_text(f"f = *({k + 1});")
    assert one(diffaust.compile(str(prog))) == k + 1


# ------------------------------------------------------------------ never fatal


def _compile_warns_once(src="process = _ * 4;"):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert one(diffaust.compile(src)) == 4
        assert one(diffaust.compile(src.replace("4", "4.0"))) == 4
    return [str(x.message) for x in w if issubclass(x.category, DiffaustWarning)]


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(cache, "_WARNED", set())


def test_uncreatable_cache_folder(tmp_path, monkeypatch, fresh_warnings):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DIFFAUST_CACHE_DIR", str(blocker / "cache"))
    msgs = _compile_warns_once()
    assert len(msgs) == 1 and "compile cache off" in msgs[0] and "cannot create" in msgs[0]


def test_unwritable_home(tmp_path, monkeypatch, fresh_warnings):
    home = tmp_path / "home"
    home.write_text("")  # HOME is a file: nothing can be created under it
    monkeypatch.delenv("DIFFAUST_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(home))
    msgs = _compile_warns_once()
    assert len(msgs) == 1 and "compile cache off" in msgs[0]


def test_read_only_file_system(cache_dir, monkeypatch, fresh_warnings):
    import errno
    import tempfile

    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    one(diffaust.compile("process = 1;"))  # the folders exist; writing entries fails from now on
    monkeypatch.setattr(tempfile, "mkstemp", erofs)
    msgs = _compile_warns_once()
    assert len(msgs) == 1 and "Read-only file system" in msgs[0]


def test_cli_warns_in_one_line_and_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    prog = tmp_path / "p.dsp"
    prog.write_text("process = _ * 4;")
    code, out, err = run_cli("render", prog, "--input", "ones", "-n", "3", "--print", "3",
                             env={"DIFFAUST_CACHE_DIR": str(blocker / "c")})
    assert code == 0, err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and "warning: compile cache off" in lines[0], err


def test_folders_are_private(cache_dir):
    one(diffaust.compile("process = 5;"))
    for d in (cache_dir, cache_dir / "dsp"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for e in entries(cache_dir):
        assert stat.S_IMODE(os.stat(e).st_mode) & 0o077 == 0


def test_world_writable_folder_is_not_used(cache_dir, fresh_warnings):
    one(diffaust.compile("process = 6;"))
    os.chmod(cache_dir / "dsp", 0o777)
    (before,) = entries(cache_dir)
    mtime = os.stat(before).st_mtime_ns
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert one(diffaust.compile("process = 6;")) == 6
    assert any("writable by others" in str(x.message) for x in w)
    assert os.stat(before).st_mtime_ns == mtime  # neither read (touched) nor rewritten


def test_group_writable_entry_is_not_loaded(cache_dir):
    src = "process = 7;"
    one(diffaust.compile(src))
    (e,) = entries(cache_dir)
    key = e.stem
    assert cache.load(key) is not None
    os.chmod(e, 0o664)
    assert cache.load(key) is None
    assert one(diffaust.compile(src)) == 7  # rewritten, private again
    assert stat.S_IMODE(os.stat(e).st_mode) & 0o077 == 0
    assert cache.load(key) is not None


def test_symlinked_entry_is_not_followed(cache_dir, tmp_path):
    src = "process = 8;"
    one(diffaust.compile(src))
    (e,) = entries(cache_dir)
    target = tmp_path / "elsewhere"
    target.write_bytes(e.read_bytes())
    os.chmod(target, 0o600)
    e.unlink()
    e.symlink_to(target)
    assert cache.load(e.stem) is None


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown needs root")
def test_entry_owned_by_another_user_is_not_loaded(cache_dir):
    src = "process = 9;"
    one(diffaust.compile(src))
    (e,) = entries(cache_dir)
    os.chown(e, 65534, 65534)
    assert cache.load(e.stem) is None
    assert one(diffaust.compile(src)) == 9


def test_no_cache_everywhere(cache_dir, tmp_path, monkeypatch):
    prog = tmp_path / "p.dsp"
    prog.write_text('import("stdfaust.lib"); process = os.osc(440);')
    diffaust.compile(str(prog), use_cache=False)
    assert not cache_dir.exists()
    code, _, err = run_cli("render", prog, "-n", "4", "--no-cache", env={"DIFFAUST_CACHE_DIR": str(cache_dir)})
    assert code == 0, err
    assert not cache_dir.exists()
    monkeypatch.setenv("DIFFAUST_NO_CACHE", "1")
    diffaust.compile(str(prog))
    code, _, err = run_cli("render", prog, "-n", "4", env={"DIFFAUST_CACHE_DIR": str(cache_dir),
                                                           "DIFFAUST_NO_CACHE": "1"})
    assert code == 0, err
    assert not cache_dir.exists()


def test_old_entries_are_pruned(cache_dir, monkeypatch):
    monkeypatch.setenv("DIFFAUST_CACHE_MAX_MB", "0.004")  # about two entries
    for k in range(6):
        one(diffaust.compile(f"process = _ * {k + 10};"))
        assert len(entries(cache_dir)) >= 1
    total = sum(os.stat(e).st_size for e in entries(cache_dir))
    newest = max(entries(cache_dir), key=lambda e: os.stat(e).st_mtime_ns)
    assert total <= 0.004 * (1 << 20) or len(entries(cache_dir)) == 1
    assert cache.load(newest.stem) is not None


# ------------------------------------------------------------------ foreign shims

HEADER = "static inline float twice(float x) { return 2.0f * x + 0.25f; }\n"
FPROG = 'twice = ffunction(float twice(float), <twice.h>, ""); process = twice;'

CHECK_SCRIPT = textwrap.dedent('''
    import sys, warnings
    import numpy as np
    import diffaust
    warnings.simplefilter("ignore")
    y = diffaust.compile(sys.argv[1], allow_native=True).render(np.ones((1, 2)))
    assert np.all(y == 2.25), y
    print("ok")
''')


def test_corrupted_foreign_shims_are_rebuilt_never_loaded(cache_dir, tmp_path):
    """Each load in a fresh process (a library once loaded stays loaded): the shim looked up
    by its index, then through the program's entry that names it."""
    import random

    (tmp_path / "twice.h").write_text(HEADER)
    prog = tmp_path / "p.dsp"
    prog.write_text(FPROG)
    script = tmp_path / "check.py"
    script.write_text(CHECK_SCRIPT)
    env = {**os.environ, "DIFFAUST_CACHE_DIR": str(cache_dir)}

    def check(what):
        p = subprocess.run([sys.executable, str(script), str(prog)], capture_output=True, text=True, timeout=300,
                           env=env)
        assert p.returncode == 0 and p.stdout.strip() == "ok", f"{what}: exit {p.returncode}\n{p.stderr[-2000:]}"

    check("first build")
    f = cache_dir / "foreign"
    (lib,) = f.glob("*.so")
    (index,) = f.glob("*.json")
    good_lib, good_index = lib.read_bytes(), index.read_bytes()
    rng = random.Random(1)
    mid = len(good_lib) // 2
    cases = [("library empty", lib, b""), ("library truncated", lib, good_lib[:mid]),
             ("library random", lib, bytes(rng.randrange(256) for _ in range(len(good_lib)))),
             ("library byte flipped", lib, good_lib[:mid] + bytes([good_lib[mid] ^ 1]) + good_lib[mid + 1:]),
             ("index empty", index, b""), ("index not json", index, b"{nope"),
             ("index names another file", index, good_index.replace(b".so", b".sx")),
             ("index names a path outside", index, b'{"library": "../../evil.so", "sha256": "00"}')]
    (entry,) = entries(cache_dir)
    good_entry = entry.read_bytes()
    for name, path, data in cases:
        for keep_entry in (False, True):
            for p in list(f.iterdir()) + list((cache_dir / "dsp").iterdir()):
                p.unlink()
            for p, good in ((lib, good_lib), (index, good_index), (entry, good_entry)):
                p.write_bytes(good)
                os.chmod(p, 0o600)
            path.write_bytes(data)
            os.chmod(path, 0o600)
            if not keep_entry:  # the shim looked up by its index; else through the program's entry
                for p in (cache_dir / "dsp").iterdir():
                    p.unlink()
            check(f"{name} ({'program entry' if keep_entry else 'shim index'})")


@pytest.mark.filterwarnings("ignore:--allow-native:diffaust.errors.DiffaustWarning")
def test_program_entry_sees_a_header_change_and_a_shadowing_header(cache_dir, tmp_path, monkeypatch):
    prog = tmp_path / "p.dsp"
    prog.write_text(FPROG)
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "twice.h").write_text(HEADER)
    x = np.ones((1, 1))
    run = lambda: float(diffaust.compile(str(prog), import_dirs=[str(inc)], allow_native=True).render(x)[0, 0])  # noqa: E731
    assert run() == 2.25
    (inc / "twice.h").write_text(HEADER.replace("0.25f", "0.5f"))
    assert run() == 2.5
    # -I comes before the program's folder: a header put there now wins... the other way:
    # a header appearing in -I when the program's folder had it
    (inc / "twice.h").unlink()
    (tmp_path / "twice.h").write_text(HEADER)
    assert run() == 2.25
    (inc / "twice.h").write_text(HEADER.replace("0.25f", "0.75f"))
    assert run() == 2.75


def test_no_cache_builds_no_shim_in_the_cache(cache_dir, tmp_path):
    (tmp_path / "twice.h").write_text(HEADER)
    prog = tmp_path / "p.dsp"
    prog.write_text(FPROG)
    code, out, err = run_cli("render", prog, "--input", "ones", "-n", "2", "--print", "2", "--allow-native",
                             "--no-cache", env={"DIFFAUST_CACHE_DIR": str(cache_dir)})
    assert code == 0, err
    assert "2.25" in out
    assert not cache_dir.exists()
