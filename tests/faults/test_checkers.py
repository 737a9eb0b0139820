#!/usr/bin/env python3
"""The checkers' own tests (no processes): hand-built histories with a known bug must be
flagged, valid ones (including ones whose unknown operations must, or must not, have taken
effect) must pass. Also random histories of a simulated linearizable register (valid) and
the same with one read corrupted (flagged). Run by `make faults-check` and `make test`.

    python3 tests/faults/test_checkers.py [-v]
"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers  # noqa: E402

_next_id = [0]


def op(f, key, inv, comp, outcome="ok", value=None, result=None, workload="register",
       final=False, client=0):
    """An operation invoked at inv and completed at comp (seconds; None: never answered)."""
    _next_id[0] += 1
    return {"id": _next_id[0], "client": client, "node": 1, "workload": workload, "f": f,
            "key": key, "value": value, "invoke_ns": int(inv * 1e9),
            "complete_ns": None if comp is None else int(comp * 1e9), "outcome": outcome,
            "result": result, "final": final}


def w(key, v, inv, comp, outcome="ok"):
    return op("write", key, inv, comp, outcome, value=v, result="OK" if outcome == "ok" else None)


def r(key, res, inv, comp, outcome="ok"):
    return op("read", key, inv, comp, outcome, result=res)


def inc(key, res, inv, comp, outcome="ok", workload="register"):
    return op("incr", key, inv, comp, outcome, result=res, workload=workload)


def xadd(key, value, sid, inv, comp, outcome="ok"):
    return op("xadd", key, inv, comp, outcome, value=value, result=sid, workload="stream")


def xrange(key, entries, inv, comp, final=False):
    return op("xrange", key, inv, comp, "ok", result=[list(e) for e in entries],
              workload="stream", final=final)


class RegisterTests(unittest.TestCase):
    def check(self, hist):
        return checkers.check_registers(hist)

    def test_sequential_valid(self):
        v = self.check([w("a", 1, 0, 1), r("a", 1, 2, 3), w("a", 2, 4, 5), r("a", 2, 6, 7),
                        inc("a", 3, 8, 9), r("a", 3, 10, 11)])
        self.assertTrue(v.ok, v)

    def test_initial_read_is_nil(self):
        self.assertTrue(self.check([r("a", None, 0, 1), w("a", 1, 2, 3)]).ok)
        self.assertFalse(self.check([r("a", 7, 0, 1)]).ok)

    def test_concurrent_writes_either_order(self):
        # w1 and w2 overlap: reads after both may see either, but then must agree.
        hist = [w("a", 1, 0, 5), w("a", 2, 1, 4), r("a", 1, 6, 7), r("a", 1, 8, 9)]
        self.assertTrue(self.check(hist).ok)

    def test_non_linearizable_interleaving(self):
        # Both writes complete before the reads, yet the reads see 2 then 1: no order of the
        # writes explains both.
        hist = [w("a", 1, 0, 5), w("a", 2, 1, 4), r("a", 2, 6, 7), r("a", 1, 8, 9)]
        v = self.check(hist)
        self.assertFalse(v.ok, v)
        self.assertIn("NOT linearizable", v.summary)

    def test_stale_read(self):
        # The write of 2 was acknowledged before the read began; the read returns 1.
        hist = [w("a", 1, 0, 1), w("a", 2, 2, 3), r("a", 1, 4, 5)]
        v = self.check(hist)
        self.assertFalse(v.ok, v)

    def test_lost_write(self):
        # An acknowledged write vanishes: every later read returns the value before it.
        hist = [w("a", 1, 0, 1), w("a", 2, 2, 3), r("a", 2, 4, 5), r("a", 1, 20, 21)]
        self.assertFalse(self.check(hist).ok)

    def test_unknown_write_that_must_have_happened(self):
        # The write of 2 timed out (unknown), but a later read sees 2: valid only if it took
        # effect, which an unknown outcome allows.
        hist = [w("a", 1, 0, 1), w("a", 2, 2, 3, outcome="unknown"), r("a", 2, 4, 5)]
        self.assertTrue(self.check(hist).ok)

    def test_unknown_write_that_must_not_have_happened(self):
        # The write of 2 timed out and every later read sees 1: valid only if it never took
        # effect, which an unknown outcome also allows.
        hist = [w("a", 1, 0, 1), w("a", 2, 2, 3, outcome="unknown"), r("a", 1, 4, 5),
                r("a", 1, 30, 31)]
        self.assertTrue(self.check(hist).ok)

    def test_unknown_write_taking_effect_late(self):
        # An unknown write may take effect long after its timeout (a new leader commits it).
        hist = [w("a", 1, 0, 1), w("a", 2, 2, 3, outcome="unknown"), r("a", 1, 4, 5),
                r("a", 2, 30, 31)]
        self.assertTrue(self.check(hist).ok)

    def test_unknown_write_cannot_flip_back(self):
        # Seen, then unseen, then seen again: one write takes effect once.
        hist = [w("a", 1, 0, 1), w("a", 2, 2, 3, outcome="unknown"), r("a", 2, 4, 5),
                r("a", 1, 6, 7), r("a", 2, 8, 9)]
        self.assertFalse(self.check(hist).ok)

    def test_failed_write_must_not_take_effect(self):
        hist = [w("a", 1, 0, 1), w("a", 2, 2, 3, outcome="fail"), r("a", 2, 4, 5)]
        self.assertFalse(self.check(hist).ok)

    def test_unknown_read_constrains_nothing(self):
        hist = [w("a", 1, 0, 1), r("a", 99, 2, 3, outcome="unknown")]
        self.assertTrue(self.check(hist).ok)

    def test_incr_unknown_counts_once(self):
        hist = [w("a", 5, 0, 1), inc("a", None, 2, 3, outcome="unknown"), r("a", 6, 4, 5),
                inc("a", 7, 6, 7), r("a", 7, 8, 9)]
        self.assertTrue(self.check(hist).ok)
        hist = [w("a", 5, 0, 1), inc("a", None, 2, 3, outcome="unknown"), r("a", 7, 4, 5)]
        self.assertFalse(self.check(hist).ok)

    def test_incr_result_must_match(self):
        self.assertFalse(self.check([w("a", 5, 0, 1), inc("a", 5, 2, 3)]).ok)

    def test_keys_are_independent(self):
        hist = [w("a", 1, 0, 1), w("b", 2, 0, 1), r("a", 1, 2, 3), r("b", 2, 2, 3)]
        self.assertTrue(self.check(hist).ok)
        hist.append(r("b", 1, 4, 5))
        v = self.check(hist)
        self.assertFalse(v.ok)
        self.assertIn("key(s) b", v.summary)


def simulate_register(seed, clients=4, ops=300, keys=("k",), unknown_rate=0.1):
    """A random history of a truly linearizable register: each operation takes effect at a
    random instant inside its [invoke, complete] window (or, if unknown, maybe never)."""
    rnd = random.Random(seed)
    state = {k: None for k in keys}
    events = []  # (linearization time, op)
    hist = []
    t = [0.0] * clients
    value = 0
    for _ in range(ops):
        c = rnd.randrange(clients)
        inv = t[c] + rnd.random()
        comp = inv + rnd.random() * 3
        lin = inv + (comp - inv) * rnd.random()
        t[c] = comp
        key = rnd.choice(keys)
        kind = rnd.random()
        if kind < 0.4:
            value += 1
            o = w(key, value, inv, comp)
        elif kind < 0.55:
            o = inc(key, None, inv, comp)
        else:
            o = r(key, None, inv, comp)
        o["client"] = c
        events.append((lin, o))
    events.sort(key=lambda e: e[0])
    for lin, o in events:
        unknown = o["f"] != "read" and rnd.random() < unknown_rate
        took_effect = not unknown or rnd.random() < 0.5
        k = o["key"]
        if took_effect:
            if o["f"] == "write":
                state[k] = o["value"]
            elif o["f"] == "incr":
                state[k] = (state[k] or 0) + 1
                o["result"] = state[k]
            else:
                o["result"] = state[k]
        if unknown:
            o["outcome"] = "unknown"
            o["result"] = None
        hist.append(o)
    return hist


class RandomRegisterTests(unittest.TestCase):
    def test_simulated_linearizable_histories_pass(self):
        for seed in range(20):
            hist = simulate_register(seed, keys=("a", "b"))
            v = checkers.check_registers(hist)
            self.assertTrue(v.ok, "seed %d: %s\n%s" % (seed, v, "\n".join(v.details)))

    def test_corrupted_read_is_flagged(self):
        caught = 0
        for seed in range(20):
            hist = simulate_register(seed, keys=("a",), unknown_rate=0.0)
            reads = [o for o in hist if o["f"] == "read" and o["result"] is not None]
            rnd = random.Random(seed)
            victim = rnd.choice(reads)
            victim["result"] = -1  # a value nobody wrote
            v = checkers.check_registers(hist)
            self.assertFalse(v.ok, "seed %d" % seed)
            caught += 1
        self.assertEqual(caught, 20)


class StreamTests(unittest.TestCase):
    def base(self):
        return [xadd("s", "v1", "1-0", 0, 1), xadd("s", "v2", "2-0", 2, 3),
                xrange("s", [("1-0", "v1"), ("2-0", "v2")], 4, 5),
                xrange("s", [("1-0", "v1"), ("2-0", "v2")], 10, 11, final=True)]

    def test_valid(self):
        v = checkers.check_streams(self.base())
        self.assertTrue(v.ok, v)

    def test_lost_acknowledged_entry(self):
        hist = self.base()[:3] + [xrange("s", [("1-0", "v1")], 10, 11, final=True)]
        v = checkers.check_streams(hist)
        self.assertFalse(v.ok)
        self.assertTrue(any("lost" in d for d in v.details), v.details)

    def test_duplicate_entry(self):
        hist = self.base()[:2] + [
            xrange("s", [("1-0", "v1"), ("2-0", "v2"), ("3-0", "v2")], 10, 11, final=True)]
        v = checkers.check_streams(hist)
        self.assertFalse(v.ok)
        self.assertTrue(any("duplicated" in d for d in v.details), v.details)

    def test_reordered_reads(self):
        hist = [xadd("s", "v1", "1-0", 0, 3), xadd("s", "v2", "2-0", 0, 3),
                xrange("s", [("1-0", "v1")], 1, 2),
                xrange("s", [("2-0", "v2")], 1, 2),
                xrange("s", [("1-0", "v1"), ("2-0", "v2")], 10, 11, final=True)]
        v = checkers.check_streams(hist)
        self.assertFalse(v.ok)
        self.assertTrue(any("prefix" in d for d in v.details), v.details)

    def test_ids_must_increase(self):
        hist = [xadd("s", "v1", "5-0", 0, 1), xadd("s", "v2", "4-0", 2, 3, outcome="unknown"),
                xrange("s", [("5-0", "v1"), ("4-0", "v2")], 10, 11, final=True)]
        v = checkers.check_streams(hist)
        self.assertFalse(v.ok)
        self.assertTrue(any("not increasing" in d for d in v.details), v.details)

    def test_stale_read(self):
        hist = self.base()[:2] + [xrange("s", [("1-0", "v1")], 4, 5)] + self.base()[3:]
        v = checkers.check_streams(hist)
        self.assertFalse(v.ok)
        self.assertTrue(any("stale read" in d for d in v.details), v.details)

    def test_unknown_add_present_or_absent(self):
        present = [xadd("s", "v1", "1-0", 0, 1), xadd("s", "v2", None, 2, 3, outcome="unknown"),
                   xrange("s", [("1-0", "v1"), ("2-0", "v2")], 10, 11, final=True)]
        self.assertTrue(checkers.check_streams(present).ok)
        absent = [xadd("s", "v1", "1-0", 0, 1), xadd("s", "v2", None, 2, 3, outcome="unknown"),
                  xrange("s", [("1-0", "v1")], 10, 11, final=True)]
        self.assertTrue(checkers.check_streams(absent).ok)

    def test_failed_add_must_not_appear(self):
        hist = [xadd("s", "v1", "1-0", 0, 1), xadd("s", "v2", None, 2, 3, outcome="fail"),
                xrange("s", [("1-0", "v1"), ("2-0", "v2")], 10, 11, final=True)]
        self.assertFalse(checkers.check_streams(hist).ok)

    def test_no_final_read_is_not_a_pass(self):
        v = checkers.check_streams(self.base()[:3])
        self.assertFalse(v.ok)


class CounterTests(unittest.TestCase):
    def hist(self, final, unknown=1):
        h = [inc("c", 1, 0, 1, workload="counter"), inc("c", 2, 2, 3, workload="counter")]
        h += [inc("c", None, 4, 5, outcome="unknown", workload="counter")] * unknown
        h.append(op("read", "c", 10, 11, result=final, workload="counter", final=True))
        return h

    def test_within_bounds(self):
        self.assertTrue(checkers.check_counters(self.hist(2)).ok)
        self.assertTrue(checkers.check_counters(self.hist(3)).ok)

    def test_lost_increment(self):
        v = checkers.check_counters(self.hist(1))
        self.assertFalse(v.ok)
        self.assertIn("below", v.summary)

    def test_double_increment(self):
        v = checkers.check_counters(self.hist(4))
        self.assertFalse(v.ok)
        self.assertIn("above", v.summary)

    def test_duplicate_results(self):
        h = [inc("c", 1, 0, 1, workload="counter"), inc("c", 1, 2, 3, workload="counter"),
             op("read", "c", 10, 11, result=2, workload="counter", final=True)]
        self.assertFalse(checkers.check_counters(h).ok)


if __name__ == "__main__":
    unittest.main(verbosity=2 if "-v" in sys.argv else 1)
