"""Checkers over a fault-suite history (docs/faults.md). Python 3 standard library only.

A history is a list of operations, each a dict (one JSON line of history.jsonl):

    {"id": 17, "client": 3, "node": 2, "workload": "register", "f": "write", "key": "r1",
     "value": 42, "invoke_ns": ..., "complete_ns": ... or null,
     "outcome": "ok" | "fail" | "unknown", "result": ..., "error": "..."}

outcome "ok": the reply is the command's own; "fail": a reply that guarantees the command
had no effect; "unknown": no such guarantee (a timeout, a lost connection, -TIMEOUT, ...).
An unknown operation may take effect at any time after its invocation, or never: it is
given a completion time of +infinity and no constraint on its result.

Every checker returns a Verdict: ok (bool, or None when it could not decide within its
budget), a one-line summary and up to a few detail lines naming the operations involved.
"""

import collections

INF = float("inf")


class Verdict:
    def __init__(self, name, ok, summary, details=()):
        self.name = name
        self.ok = ok  # True, False, or None (inconclusive)
        self.summary = summary
        self.details = list(details)

    def __repr__(self):
        state = {True: "valid", False: "INVALID", None: "INCONCLUSIVE"}[self.ok]
        return "%s: %s: %s" % (self.name, state, self.summary)


def describe(op):
    res = op.get("result")
    if isinstance(res, list) and len(res) > 4:
        res = "[%d entries: %s ... %s]" % (len(res), res[0], res[-1])
    if op.get("outcome") != "ok":
        res = op.get("outcome") + ((" " + op["error"]) if op.get("error") else "")
    return "#%d client %s node %s %s %s%s -> %s [%.3f s, %s]" % (
        op["id"], op.get("client"), op.get("node"), op["f"], op.get("key", ""),
        "" if op.get("value") is None else " " + str(op["value"]), res,
        op["invoke_ns"] / 1e9,
        "pending" if op.get("complete_ns") is None else "%.3f s" % (op["complete_ns"] / 1e9))


# ---- registers: linearizability per key ------------------------------------------------------
#
# The model: a register holding None (no key) or an integer. write v sets it; read returns it;
# incr adds one (None counts as 0) and returns the new value.

def register_step(state, op):
    """(allowed, new state) of applying op to state."""
    f = op["f"]
    if f == "write":
        return True, op["value"]
    if f == "read":
        return op["result"] == state, state
    if f == "incr":
        new = (state or 0) + 1
        if op["outcome"] == "ok":
            return op["result"] == new, new
        return True, new
    raise ValueError("unknown register op %r" % f)


class _Entry:
    __slots__ = ("op", "index", "is_call", "match", "prev", "next", "time")

    def __init__(self, op, index, is_call, time):
        self.op = op
        self.index = index
        self.is_call = is_call
        self.time = time
        self.match = None
        self.prev = None
        self.next = None


def linearizable(ops, step, init, budget=2_000_000):
    """Decides whether ops (dicts with invoke_ns, complete_ns or None for +infinity) can be
    ordered into a sequence that respects real time and that the model `step` accepts from
    `init`. Wing & Gong's search with Lowe's memoization, as Porcupine implements it: the
    history becomes a list of call and return entries in time order; the search linearizes
    a call whose step is allowed (removing its call and return from the list) and backtracks
    when it meets a return whose call is not yet linearized. A (set of linearized ops, state)
    pair already seen is not explored again.

    Returns (True, None), (False, info) or (None, info) when the budget of steps ran out."""
    n = len(ops)
    if n == 0:
        return True, None
    events = []
    for i, op in enumerate(ops):
        ret = op.get("complete_ns")
        events.append((op["invoke_ns"], 0, i))
        events.append((INF if ret is None else ret, 1, i))
    # Calls before returns at equal times: operations that touch in time are concurrent.
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(None, -1, False, -INF)
    calls = [None] * n
    prev = head
    for t, kind, i in events:
        e = _Entry(ops[i], i, kind == 0, t)
        if kind == 0:
            calls[i] = e
        else:
            calls[i].match = e
            e.match = calls[i]
        prev.next = e
        e.prev = prev
        prev = e

    def lift(e):
        e.prev.next = e.next
        if e.next is not None:
            e.next.prev = e.prev
        r = e.match
        r.prev.next = r.next
        if r.next is not None:
            r.next.prev = r.prev

    def unlift(e):
        r = e.match
        r.prev.next = r
        if r.next is not None:
            r.next.prev = r
        e.prev.next = e
        if e.next is not None:
            e.next.prev = e

    state = init
    linearized = 0
    cache = set()
    stack = []
    entry = head.next
    steps = 0
    best = (0, None, None)  # deepest linearization: (depth, blocking return entry, state)
    while head.next is not None:
        steps += 1
        if steps > budget:
            return None, "search budget of %d steps exhausted after linearizing at most %d of %d " \
                         "operations" % (budget, best[0], n)
        if entry.is_call:
            allowed, new_state = step(state, entry.op)
            if allowed:
                new_lin = linearized | (1 << entry.index)
                key = (new_lin, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = new_lin
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if len(stack) >= best[0]:
                best = (len(stack), entry, state)
            if not stack:
                break
            entry, state = stack.pop()
            linearized &= ~(1 << entry.index)
            unlift(entry)
            entry = entry.next
    if head.next is None:
        return True, None
    depth, blocked, st = best
    info = {"linearized": depth, "total": n, "state": st,
            "blocked": blocked.op if blocked is not None else None}
    return False, info


def check_registers(history, budget=2_000_000):
    """Linearizability of every register key (P-compositionality: keys are independent, so
    each is checked alone). Reads whose outcome is not ok constrain nothing and are dropped;
    definitely failed writes had no effect and are dropped; unknown writes and incrs are
    pending forever (may take effect at any point after their invocation, or never)."""
    by_key = collections.defaultdict(list)
    for op in history:
        if op.get("workload") != "register":
            continue
        if op["outcome"] == "fail":
            continue
        if op["f"] == "read" and op["outcome"] != "ok":
            continue
        if op["outcome"] == "unknown":
            op = dict(op, complete_ns=None)
        by_key[op["key"]].append(op)
    if not by_key:
        return Verdict("registers", True, "no register operations")
    bad, undecided, details = [], [], []
    counts = []
    for key in sorted(by_key):
        ops = by_key[key]
        ok, info = linearizable(ops, register_step, None, budget)
        counts.append("%s:%d" % (key, len(ops)))
        if ok is None:
            undecided.append(key)
            details.append("key %s: %s" % (key, info))
        elif not ok:
            bad.append(key)
            blk = info["blocked"]
            details.append("key %s: not linearizable: %d of %d operations linearize at most; "
                           "then the register holds %r and this operation must complete but "
                           "cannot take effect: %s" % (key, info["linearized"], info["total"],
                                                       info["state"],
                                                       describe(blk) if blk else "?"))
            details.extend("  key %s: %s" % (key, describe(o))
                           for o in _neighbours(ops, blk, 6))
    pending = sum(1 for ops in by_key.values() for o in ops if o.get("complete_ns") is None)
    summary = "%d keys (%s), %d operations of unknown outcome" % (
        len(by_key), " ".join(counts), pending)
    if bad:
        return Verdict("registers", False, "NOT linearizable: key(s) %s; %s"
                       % (", ".join(bad), summary), details)
    if undecided:
        return Verdict("registers", None, "undecided for key(s) %s; %s"
                       % (", ".join(undecided), summary), details)
    return Verdict("registers", True, "linearizable; " + summary)


def _neighbours(ops, op, k):
    """Up to k operations around op in invocation order (for a failure report)."""
    if op is None:
        return []
    order = sorted(ops, key=lambda o: o["invoke_ns"])
    idx = next((i for i, o in enumerate(order) if o["id"] == op["id"]), 0)
    return order[max(0, idx - k):idx + 2]


# ---- streams -----------------------------------------------------------------------------------

def _id_key(sid):
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


def check_streams(history):
    """Stream entries (XADD, read back with XRANGE - +): each value is unique to one XADD.
      - no acknowledged XADD lost: its value is in the final read(s), with the ID it got;
      - no entry duplicated: no value twice in any read;
      - no entry from an XADD that definitely failed, and none nobody added (phantom);
      - IDs strictly increasing within every read;
      - one total order: every read is a prefix of the longest read;
      - no stale read: a read holds every XADD acknowledged before it was invoked, and a read
        that completed before another was invoked is not longer than it.
    The final reads (flag "final") are made after the faults heal, through every node."""
    by_key = collections.defaultdict(lambda: {"adds": [], "reads": []})
    for op in history:
        if op.get("workload") != "stream":
            continue
        if op["f"] == "xadd":
            by_key[op["key"]]["adds"].append(op)
        elif op["f"] == "xrange" and op["outcome"] == "ok":
            by_key[op["key"]]["reads"].append(op)
    if not by_key:
        return Verdict("streams", True, "no stream operations")
    errors = []
    stats = []
    for key in sorted(by_key):
        adds, reads = by_key[key]["adds"], by_key[key]["reads"]
        by_value = {a["value"]: a for a in adds}
        acked = [a for a in adds if a["outcome"] == "ok"]
        unknown = sum(1 for a in adds if a["outcome"] == "unknown")
        finals = [r for r in reads if r.get("final")]
        longest = max(reads, key=lambda r: len(r["result"]), default=None)
        order = [tuple(e) for e in longest["result"]] if longest else []
        for r in reads:
            entries = [tuple(e) for e in r["result"]]
            seen = set()
            prev_id = None
            for sid, value in entries:
                if value in seen:
                    errors.append("stream %s: entry %s duplicated in read %s"
                                  % (key, value, describe(r)))
                seen.add(value)
                if prev_id is not None and _id_key(sid) <= _id_key(prev_id):
                    errors.append("stream %s: IDs not increasing (%s after %s) in read %s"
                                  % (key, sid, prev_id, describe(r)))
                prev_id = sid
                a = by_value.get(value)
                if a is None:
                    errors.append("stream %s: entry %s (%s) was never added, in read %s"
                                  % (key, value, sid, describe(r)))
                elif a["outcome"] == "fail":
                    errors.append("stream %s: entry %s from an XADD that failed (%s), in read %s"
                                  % (key, value, describe(a), describe(r)))
                elif a["outcome"] == "ok" and a["result"] != sid:
                    errors.append("stream %s: entry %s has ID %s but its XADD returned %s"
                                  % (key, value, sid, a["result"]))
            if entries != order[:len(entries)]:
                k = next(i for i, (x, y) in enumerate(zip(entries, order)) if x != y) \
                    if any(x != y for x, y in zip(entries, order)) else len(order)
                errors.append("stream %s: read %s is not a prefix of the longest read: they "
                              "differ at position %d (%s vs %s)"
                              % (key, describe(r), k, entries[k] if k < len(entries) else None,
                                 order[k] if k < len(order) else None))
            for a in acked:
                if a["complete_ns"] < r["invoke_ns"] and a["value"] not in seen:
                    errors.append("stream %s: stale read: %s misses %s, acknowledged before "
                                  "the read began" % (key, describe(r), describe(a)))
                    break
        by_completion = sorted(reads, key=lambda r: r["complete_ns"])
        for r in reads:
            for q in by_completion:
                if q["complete_ns"] >= r["invoke_ns"]:
                    break
                if len(q["result"]) > len(r["result"]):
                    errors.append("stream %s: read %s returned %d entries after read %s had "
                                  "returned %d" % (key, describe(r), len(r["result"]),
                                                   describe(q), len(q["result"])))
                    break
        if not finals:
            errors.append("stream %s: no final read succeeded: losses cannot be judged" % key)
        for fr in finals:
            present = {value for _, value in fr["result"]}
            lost = [a for a in acked if a["value"] not in present]
            for a in lost[:5]:
                errors.append("stream %s: acknowledged entry lost: %s is not in final read %s"
                              % (key, describe(a), describe(fr)))
            if len(lost) > 5:
                errors.append("stream %s: ... %d acknowledged entries lost in all"
                              % (key, len(lost)))
        stats.append("%s: %d adds (%d acknowledged, %d unknown), %d reads, final length %s"
                     % (key, len(adds), len(acked), unknown, len(reads),
                        "/".join(str(len(f["result"])) for f in finals) or "-"))
    summary = "; ".join(stats)
    if errors:
        return Verdict("streams", False, "%d violation(s): %s; %s" % (len(errors), errors[0],
                                                                       summary), errors[:20])
    return Verdict("streams", True, "no loss, duplicate, reordering or stale read; " + summary)


# ---- counters ------------------------------------------------------------------------------------

def check_counters(history):
    """INCR counters: the final value (read after the faults heal, through every node) lies
    in [acknowledged, acknowledged + unknown]; acknowledged INCRs returned distinct values,
    none above that bound; every final read agrees."""
    by_key = collections.defaultdict(lambda: {"incrs": [], "finals": []})
    for op in history:
        if op.get("workload") != "counter":
            continue
        if op["f"] == "incr":
            by_key[op["key"]]["incrs"].append(op)
        elif op["f"] == "read" and op.get("final") and op["outcome"] == "ok":
            by_key[op["key"]]["finals"].append(op)
    if not by_key:
        return Verdict("counters", True, "no counter operations")
    errors, stats = [], []
    for key in sorted(by_key):
        incrs, finals = by_key[key]["incrs"], by_key[key]["finals"]
        acked = [o for o in incrs if o["outcome"] == "ok"]
        unknown = sum(1 for o in incrs if o["outcome"] == "unknown")
        lo, hi = len(acked), len(acked) + unknown
        values = [o["result"] for o in acked]
        dup = [v for v, c in collections.Counter(values).items() if c > 1]
        if dup:
            errors.append("counter %s: acknowledged INCRs returned the same value(s) %s"
                          % (key, dup[:5]))
        over = [o for o in acked if o["result"] > hi or o["result"] < 1]
        if over:
            errors.append("counter %s: an INCR returned %s, outside [1, %d]"
                          % (key, over[0]["result"], hi))
        if not finals:
            errors.append("counter %s: no final read succeeded" % key)
        seen = sorted({f["result"] for f in finals}, key=lambda v: (v is None, v))
        if len(seen) > 1:
            errors.append("counter %s: final reads disagree: %s" % (key, seen))
        for v in seen:
            n = v or 0
            if n < lo:
                errors.append("counter %s: final value %d is below the %d acknowledged INCRs "
                              "(acknowledged increments lost)" % (key, n, lo))
            elif n > hi:
                errors.append("counter %s: final value %d is above acknowledged + unknown = %d "
                              "(an increment applied twice, or from nowhere)" % (key, n, hi))
        stats.append("%s: final %s in [%d, %d]" % (key, "/".join(str(v) for v in seen) or "-",
                                                     lo, hi))
    summary = "; ".join(stats)
    if errors:
        return Verdict("counters", False, "%s; %s" % (errors[0], summary), errors[:20])
    return Verdict("counters", True, summary)


def check_all(history, register_budget=2_000_000):
    return [check_registers(history, register_budget), check_streams(history),
            check_counters(history)]
