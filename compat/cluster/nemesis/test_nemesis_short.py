"""A short nemesis run (nemesis.py) per implementation: ~40 s of faults under load on a
3-node cluster (leader kills and one SIGSTOP of a follower, in a fixed order), then the
checker reads every partition back.

Asserts what must hold whatever the faults: every acknowledged record (idempotent
producers, acks=all, min.insync.replicas=2) is in the log, none twice, in order per
producer and partition, and the checker read each partition up to its high watermark.
Availability (seconds without acks) and the fault timings go to the `observed` summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import nemesis  # noqa: E402

SCHEDULE = "kill-leader,sigstop-follower,kill-leader,kill-leader,kill-leader"


def test_short_nemesis(impl, observe):
    # The cluster goes to nemesis.py's default work dir (/tmp/nemesis-runs), not tmp_path:
    # pytest's /tmp/pytest-of-root is 0700 and the nodes run under their own uids.
    args = nemesis.parse_args([
        "--impl", impl, "--duration", "40", "--schedule", SCHEDULE, "--seed", "7",
        "--rate", "100", "--java-rate", "30", "--warmup", "3", "--drain", "30", "--interval", "1",
        "--quiet"])
    try:
        r = nemesis.run_impl(impl, args)
    finally:
        nemesis.run_cleanups()
    chk = r.get("check") or {}
    p1, java = chk.get("p1") or {}, chk.get("java") or {}
    observe("faults", r.get("faults"))
    observe("acked p1 / java", f"{p1.get('acked')} / {java.get('acked')}")
    observe("seconds without acks p1 / java (longest)",
            f"{p1.get('unavailable_s')} ({p1.get('longest_no_ack_s')}) / "
            f"{java.get('unavailable_s')} ({java.get('longest_no_ack_s')})")
    observe("sigstop ISR shrink / expand s", [(x.get("isr_shrink_s"), x.get("isr_expand_s"))
                                              for x in r.get("fault_records", []) if x["fault"] == "sigstop-follower"])
    observe("heal timeouts", r.get("heal_timeouts"))
    observe("work dir", r.get("workdir"))
    tails = "\n".join(str(t) for t in (r.get("node_log_tails") or {}).values())
    assert r.get("completed"), f"run did not complete: {r.get('error')}\n{tails}"
    assert sum((r.get("faults") or {}).values()) >= 2 and (r.get("faults") or {}).get("kill-leader"), r.get("faults")
    assert p1.get("acked", 0) > 0 and java.get("acked", 0) > 0, (p1, java)
    assert chk["lost"] == 0, "acknowledged records lost: " + "; ".join(
        f"{d['value']} acked at {d['partition']}/{d['acked_offset']} t={d['acked_t']}s, now there: {d['now_at_that_offset']}"
        for d in chk["lost_sample"][:10]) + f" (offset ranges {chk['lost_offset_ranges']}; evidence: {r.get('evidence')})"
    assert chk["duplicated"] == 0, f"records duplicated: {chk['duplicated_sample']} (evidence: {r.get('evidence')})"
    assert chk["order_violations"] == 0, chk["order_detail"]
    assert chk["read_complete"], (chk["read_per_partition"], chk["high_watermarks"], chk["offset_gaps"])
