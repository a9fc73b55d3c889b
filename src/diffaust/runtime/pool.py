"""A native worker pool for a batch's compiled calls: no GIL, no OS wake-up inside a pass.

The PyTorch layer runs a batch as a few compiled calls (one per lane group, `runtime/lanes.py`)
per pass, two passes a step.  On a Python thread pool each pass pays the OS's wake-up of the
worker and then of the caller (~50 µs a pass on 2 threads, measured: `FaustModule._map` of
two empty jobs takes 1 µs on one thread, 50 µs on two) and the GIL's hand-offs between the
threads' Python.  Here the caller prepares every group's call (Python), publishes them as a
table of function pointers and arguments, and runs its share; the workers, spinning with
the GIL released since the caller woke them (at the start of its preparation) or since
their last pass, take the others at once.  All of it native:

    pool_run(desc, jobs, n)         the caller: publish, claim and run, wait for all n done
    pool_work(desc, seen, spins)    a worker: polls for a generation other than *seen, claims
                                    and runs its jobs (*seen updated), polls again, until
                                    `spins` polls in a row bring nothing: returns the passes it
                                    ran (0: the worker sleeps on an Event), or -2 (stop); the
                                    worker never takes the GIL between the passes of a step

The descriptor (int64 words): [0] the claim word, generation << 40 | jobs << 20 | next
(one atomic word, so a claim — a compare-and-swap of next — is of the generation and job
count it read); [1] the job table's address; [2] jobs done; [3] stop; [4] wakes (`wake`
counts them: a worker whose polls ran out while a pass was announced polls again).  The caller
publishes a generation only after every job of the previous one is done, so a worker's
successful claim always reads the table it was made for.  A job (16 int64):

    [0] kind: 0 = fn(state, n, inputs, outputs)  (a compute function)
              1 = fn(compute, state, n, block, n_in, n_out, inputs, outputs)  (the block driver)
    [1] fn, [2..9] its arguments (in order), [10] check fn (0: none): check(ptr, count) != 0
    skips the call (ȳ not finite, `kernels.all_finite`), [11] ptr, [12] count, [13] its result,
    [14] its prologue (0: none): the address of PROLOGUE_WORDS words (P_*), run before the
    job's words are read, by the thread that runs it: the call's pointers laid out on the
    pass's arrays, its instance reset and its parameters written (`runtime.lanes.CallPlan`).

A worker that sleeps through a pass costs nothing but its share: the caller claims every
job left (it never waits for one that nobody took).
"""

from __future__ import annotations

import ctypes
import threading
import weakref

import numpy as np

_LOCK = threading.Lock()
_FUNCS: dict = {}
_RUN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_WORK = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)

JOB_WORDS = 16
KIND, FN, ARGS, CHECK, CHECK_PTR, CHECK_COUNT, RESULT, PROLOGUE = 0, 1, 2, 10, 11, 12, 13, 14  # a job's words
# a job's prologue (int64 words; runtime.lanes.CallPlan builds them): run first, by the thread
# that runs the job
(P_STATE, P_SNAP, P_BYTES, P_NPAR, P_PDST, P_PSRC, P_F64, P_NZERO, P_ZERO, P_NPTR, P_PSLOT, P_POFF, P_PTRS,
 P_BASES, P_VSLOT, P_CSLOT, P_COFF, P_CDST) = range(18)
PROLOGUE_WORDS = 18
MAX_JOBS = (1 << 20) - 1
WAKES = 4  # the descriptor's word counting `NativePool.wake` calls
SPIN_SECONDS = 1e-3  # a worker polls this long after a pass (the next pass of a step comes sooner)


def _ir() -> str:
    # no `pause` in the polls: under KVM a loop of them exits to the host (pause-loop
    # exiting), ~25 µs a poll measured here; a load-only poll of a shared line is cheap
    # the job's words 2..9: the call's arguments, %a0i .. %a7i
    args = "\n".join(f"  %a{k}p = getelementptr i64, ptr %jp, i64 {k + 2}\n  %a{k}i = load i64, ptr %a{k}p"
                     for k in range(8))
    return f"""

declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)

define internal i64 @word(ptr %p, i64 %k) {{
  %a = getelementptr i64, ptr %p, i64 %k
  %v = load i64, ptr %a
  ret i64 %v
}}

define internal ptr @wptr(ptr %p, i64 %k) {{
  %a = getelementptr i64, ptr %p, i64 %k
  %v = load i64, ptr %a
  %q = inttoptr i64 %v to ptr
  ret ptr %q
}}

; a job's prologue (words P_*): its pointers laid out on the pass's arrays (dst[i] =
; bases[slot[i]] + off[i]), the address its check reads, its instance reset (the state copied
; from the snapshot), its parameters written (values[src[j]], 0 where src[j] < 0, cast to the
; state's float type), the regions to zero (bases[slot] + off, bytes)
define internal void @prologue(ptr %p) {{
entry:
  %bases = call ptr @wptr(ptr %p, i64 {P_BASES})
  %np = call i64 @word(ptr %p, i64 {P_NPTR})
  %slots = call ptr @wptr(ptr %p, i64 {P_PSLOT})
  %offs = call ptr @wptr(ptr %p, i64 {P_POFF})
  %dsts = call ptr @wptr(ptr %p, i64 {P_PTRS})
  br label %ph
ph:
  %i = phi i64 [0, %entry], [%i1, %pb]
  %pc = icmp slt i64 %i, %np
  br i1 %pc, label %pb, label %chk
pb:
  %s = call i64 @word(ptr %slots, i64 %i)
  %b = call i64 @word(ptr %bases, i64 %s)
  %o = call i64 @word(ptr %offs, i64 %i)
  %v = add i64 %b, %o
  %da = getelementptr i64, ptr %dsts, i64 %i
  store i64 %v, ptr %da
  %i1 = add i64 %i, 1
  br label %ph
chk:
  %cs = call i64 @word(ptr %p, i64 {P_CSLOT})
  %hasc = icmp sge i64 %cs, 0
  br i1 %hasc, label %setc, label %reset
setc:
  %cb = call i64 @word(ptr %bases, i64 %cs)
  %co = call i64 @word(ptr %p, i64 {P_COFF})
  %cv = add i64 %cb, %co
  %cd = call ptr @wptr(ptr %p, i64 {P_CDST})
  store i64 %cv, ptr %cd
  br label %reset
reset:
  %nb = call i64 @word(ptr %p, i64 {P_BYTES})
  %state = call ptr @wptr(ptr %p, i64 {P_STATE})
  %hasr = icmp sgt i64 %nb, 0
  br i1 %hasr, label %copy, label %params
copy:
  %snap = call ptr @wptr(ptr %p, i64 {P_SNAP})
  call void @llvm.memcpy.p0.p0.i64(ptr %state, ptr %snap, i64 %nb, i1 false)
  br label %params
params:
  %nq = call i64 @word(ptr %p, i64 {P_NPAR})
  %pdst = call ptr @wptr(ptr %p, i64 {P_PDST})
  %psrc = call ptr @wptr(ptr %p, i64 {P_PSRC})
  %f64 = call i64 @word(ptr %p, i64 {P_F64})
  %vs = call i64 @word(ptr %p, i64 {P_VSLOT})
  %vals = call ptr @wptr(ptr %bases, i64 %vs)
  %isd = icmp ne i64 %f64, 0
  br label %qh
qh:
  %j = phi i64 [0, %params], [%j1, %qst]
  %qc = icmp slt i64 %j, %nq
  br i1 %qc, label %qb, label %zeros
qb:
  %off = call i64 @word(ptr %pdst, i64 %j)
  %src = call i64 @word(ptr %psrc, i64 %j)
  %neg = icmp slt i64 %src, 0
  %srcz = select i1 %neg, i64 0, i64 %src
  %va = getelementptr double, ptr %vals, i64 %srcz
  %vl = load double, ptr %va
  %val = select i1 %neg, double 0.0, double %vl
  %at = getelementptr i8, ptr %state, i64 %off
  br i1 %isd, label %qd, label %qf
qd:
  store double %val, ptr %at
  br label %qst
qf:
  %vf = fptrunc double %val to float
  store float %vf, ptr %at
  br label %qst
qst:
  %j1 = add i64 %j, 1
  br label %qh
zeros:
  %nz = call i64 @word(ptr %p, i64 {P_NZERO})
  %zl = call ptr @wptr(ptr %p, i64 {P_ZERO})
  br label %zh
zh:
  %k = phi i64 [0, %zeros], [%k1, %zb]
  %zc = icmp slt i64 %k, %nz
  br i1 %zc, label %zb, label %done
zb:
  %k3 = mul i64 %k, 3
  %zs = call i64 @word(ptr %zl, i64 %k3)
  %k3o = add i64 %k3, 1
  %zo = call i64 @word(ptr %zl, i64 %k3o)
  %k3b = add i64 %k3, 2
  %zn = call i64 @word(ptr %zl, i64 %k3b)
  %zb0 = call i64 @word(ptr %bases, i64 %zs)
  %za = add i64 %zb0, %zo
  %zp = inttoptr i64 %za to ptr
  call void @llvm.memset.p0.i64(ptr %zp, i8 0, i64 %zn, i1 false)
  %k1 = add i64 %k, 1
  br label %zh
done:
  ret void
}}

define internal void @claim_run(ptr %d, i64 %gen) {{
entry:
  br label %loop
loop:
  %w = load atomic i64, ptr %d acquire, align 8
  %g = lshr i64 %w, 40
  %same = icmp eq i64 %g, %gen
  br i1 %same, label %count, label %exit
count:
  %nj0 = lshr i64 %w, 20
  %nj = and i64 %nj0, 1048575
  %i = and i64 %w, 1048575
  %more = icmp ult i64 %i, %nj
  br i1 %more, label %cas, label %exit
cas:
  %w1 = add i64 %w, 1
  %pair = cmpxchg ptr %d, i64 %w, i64 %w1 acq_rel acquire
  %ok = extractvalue {{i64, i1}} %pair, 1
  br i1 %ok, label %job, label %loop
job:
  %tp = getelementptr i64, ptr %d, i64 1
  %ti = load atomic i64, ptr %tp acquire, align 8
  %table = inttoptr i64 %ti to ptr
  %off = mul i64 %i, {JOB_WORDS}
  %jp = getelementptr i64, ptr %table, i64 %off
  %prp = getelementptr i64, ptr %jp, i64 {PROLOGUE}
  %pri = load i64, ptr %prp
  %haspro = icmp ne i64 %pri, 0
  br i1 %haspro, label %pro, label %words
pro:
  %prl = inttoptr i64 %pri to ptr
  call void @prologue(ptr %prl)
  br label %words
words:
  %kind = load i64, ptr %jp
  %fp1 = getelementptr i64, ptr %jp, i64 1
  %fni = load i64, ptr %fp1
  %fn = inttoptr i64 %fni to ptr
{args}
  %cfp = getelementptr i64, ptr %jp, i64 10
  %cfi = load i64, ptr %cfp
  %hascheck = icmp ne i64 %cfi, 0
  br i1 %hascheck, label %check, label %call
check:
  %cf = inttoptr i64 %cfi to ptr
  %cpp = getelementptr i64, ptr %jp, i64 11
  %cpi = load i64, ptr %cpp
  %cptr = inttoptr i64 %cpi to ptr
  %cnp = getelementptr i64, ptr %jp, i64 12
  %cn = load i64, ptr %cnp
  %bad = call i64 %cf(ptr %cptr, i64 %cn)
  %rp = getelementptr i64, ptr %jp, i64 13
  store i64 %bad, ptr %rp
  %isbad = icmp ne i64 %bad, 0
  br i1 %isbad, label %done, label %call
call:
  %k0 = icmp eq i64 %kind, 0
  %a0 = inttoptr i64 %a0i to ptr
  br i1 %k0, label %compute, label %blocks
compute:
  %n32 = trunc i64 %a1i to i32
  %ip = inttoptr i64 %a2i to ptr
  %op = inttoptr i64 %a3i to ptr
  call void %fn(ptr %a0, i32 %n32, ptr %ip, ptr %op)
  br label %done
blocks:
  %b1 = inttoptr i64 %a1i to ptr
  %b2 = trunc i64 %a2i to i32
  %b3 = trunc i64 %a3i to i32
  %b4 = trunc i64 %a4i to i32
  %b5 = trunc i64 %a5i to i32
  %b6 = inttoptr i64 %a6i to ptr
  %b7 = inttoptr i64 %a7i to ptr
  call void %fn(ptr %a0, ptr %b1, i32 %b2, i32 %b3, i32 %b4, i32 %b5, ptr %b6, ptr %b7)
  br label %done
done:
  %dp = getelementptr i64, ptr %d, i64 2
  %old = atomicrmw add ptr %dp, i64 1 release
  br label %loop
exit:
  ret void
}}

define void @diffaust_pool_run(ptr %d, ptr %jobs, i64 %n) {{
entry:
  %w = load atomic i64, ptr %d acquire, align 8
  %g = lshr i64 %w, 40
  %g1 = add i64 %g, 1
  %gen = and i64 %g1, 16777215
  %tp = getelementptr i64, ptr %d, i64 1
  %ti = ptrtoint ptr %jobs to i64
  store atomic i64 %ti, ptr %tp release, align 8
  %dp = getelementptr i64, ptr %d, i64 2
  store atomic i64 0, ptr %dp release, align 8
  %hi = shl i64 %gen, 40
  %mid = shl i64 %n, 20
  %nw = or i64 %hi, %mid
  store atomic i64 %nw, ptr %d release, align 8
  call void @claim_run(ptr %d, i64 %gen)
  br label %wait
wait:
  %dn = load atomic i64, ptr %dp acquire, align 8
  %fin = icmp uge i64 %dn, %n
  br i1 %fin, label %out, label %spin
spin:
  br label %wait
out:
  ret void
}}

define i64 @diffaust_pool_work(ptr %d, ptr %seenp, i64 %spins) {{
entry:
  %sp = getelementptr i64, ptr %d, i64 3
  br label %loop
loop:
  %k = phi i64 [0, %entry], [%k1, %next], [0, %work]
  %ran = phi i64 [0, %entry], [%ran, %next], [%ran1, %work]
  %stop = load atomic i64, ptr %sp acquire, align 8
  %stopped = icmp ne i64 %stop, 0
  br i1 %stopped, label %bye, label %look
look:
  %w = load atomic i64, ptr %d acquire, align 8
  %g = lshr i64 %w, 40
  %seen = load i64, ptr %seenp
  %new = icmp ne i64 %g, %seen
  br i1 %new, label %work, label %next
work:
  store i64 %g, ptr %seenp
  call void @claim_run(ptr %d, i64 %g)
  %ran1 = add i64 %ran, 1
  br label %loop
next:
  %k1 = add i64 %k, 1
  %more = icmp slt i64 %k1, %spins
  br i1 %more, label %loop, label %idle
idle:
  ret i64 %ran
bye:
  ret i64 -2
}}
"""


def _funcs() -> tuple:
    """(pool_run, pool_work), compiled once per process."""
    with _LOCK:
        f = _FUNCS.get("pool")
    if f is not None:
        return f
    import llvmlite.binding as llvm

    from ..codegen.llvm import jit

    triple = llvm.get_process_triple()
    j = jit()
    obj, _ = j.emit_object(f'target triple = "{triple}"\n' + _ir())
    with j.lock:
        j.engine.add_object_file(j.llvm.ObjectFileRef.from_data(obj))
        j.engine.finalize_object()
        f = (_RUN(j.engine.get_function_address("diffaust_pool_run")),
             _WORK(j.engine.get_function_address("diffaust_pool_work")))
    with _LOCK:
        _FUNCS.setdefault("pool", f)
        return _FUNCS["pool"]


class NativePool:
    """`workers` threads that run published job tables with the caller (one caller at a
    time: `lock`, taken without blocking by the caller, who otherwise runs its calls on
    another way).  `close()` (or garbage collection) stops the threads."""

    def __init__(self, workers: int):
        self._run, self._work = _funcs()
        buf = np.zeros(16, dtype=np.int64)  # the descriptor on its own 64-byte line
        k = (-buf.ctypes.data % 64) // 8
        self._buf = buf
        self.desc = buf[k:k + 8]
        self._addr = self.desc.ctypes.data
        self.lock = threading.Lock()
        self._event = threading.Event()
        self.spins = _spins_per_second(self._work) * SPIN_SECONDS
        self.workers = workers
        self._threads = [threading.Thread(target=_worker, args=(self._work, self._addr, self.desc, self._event,
                                                                int(self.spins)),
                                          name="diffaust-pool", daemon=True) for _ in range(workers)]
        for t in self._threads:
            t.start()
        # the threads hold the descriptor array, not the pool: collecting the pool stops them
        weakref.finalize(self, _stop, self.desc, self._event)

    def wake(self) -> None:
        """Wake sleeping workers (a caller about to prepare a pass: their wake-up overlaps it).
        Counted: a worker whose polls run out after this (the pass comes later than its
        polls last) polls again instead of sleeping through the pass."""
        self.desc[WAKES] += 1  # (under the GIL)
        self._event.set()

    def run(self, jobs: np.ndarray) -> None:
        """Run a job table ((n, JOB_WORDS) int64, C-contiguous) with the workers; returns when
        every job is done.  The caller holds `lock`."""
        n = jobs.shape[0]
        if not 0 < n <= MAX_JOBS or jobs.shape[1] != JOB_WORDS or not jobs.flags.c_contiguous:
            raise ValueError("internal error: a bad job table")
        self._run(self._addr, jobs.ctypes.data, n)

    def run_calls(self, calls: list) -> None:
        """Run prepared lane calls (`runtime.lanes.PreparedCall`) with the workers; UsageError
        where a call's cotangent held NaN or Inf (that call skipped).  The caller holds `lock`."""
        from ..errors import UsageError

        jobs = np.zeros((len(calls), JOB_WORDS), dtype=np.int64)
        used = [c.job(row) for c, row in zip(calls, jobs)]
        if not all(used):
            jobs = np.ascontiguousarray(jobs[np.flatnonzero(used)])
        if len(jobs):
            self.run(jobs)
            if jobs[:, RESULT].any():
                raise UsageError("y_bar holds NaN or Inf")

    def close(self) -> None:
        _stop(self.desc, self._event)


def _stop(desc, event) -> None:
    desc[3] = 1
    event.set()


def _worker(work, addr, desc, event, spins: int) -> None:
    # the generation last seen, a word of the worker's own (pool_work updates it): between the
    # passes of a busy stretch the worker stays in native code, never asking for the GIL (a
    # GIL hand-off after each pass delayed the worker's next claim and interrupted the
    # caller's Python)
    seen = np.array([int(desc[0]) >> 40], dtype=np.int64)
    sp = seen.ctypes.data
    while True:
        wakes = int(desc[WAKES])
        if work(addr, sp, spins) == -2:  # passes run as they come, the GIL released, until
            return                       # `spins` polls bring nothing
        if int(desc[WAKES]) != wakes:
            continue  # a pass was announced while the polls ran: it comes, poll again
        event.clear()  # nothing came: sleep until a caller wakes the pool (looking once more first)
        if int(desc[WAKES]) != wakes:
            continue  # (announced just now: its set() may have come before the clear)
        r = work(addr, sp, 1)
        if r == -2:
            return
        if r == 0:
            event.wait()


_SPINS: list = []


def _spins_per_second(work) -> float:
    """Polls per second of `pool_work` on this machine (measured once: a poll is two loads
    and a compare, a few ns)."""
    if _SPINS:
        return _SPINS[0]
    import time

    desc = np.zeros(8, dtype=np.int64)
    seen = np.zeros(1, dtype=np.int64)
    n = 200000
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        work(desc.ctypes.data, seen.ctypes.data, n)
        best = min(best, time.perf_counter() - t0)
    _SPINS.append(n / max(best, 1e-6))
    return _SPINS[0]
