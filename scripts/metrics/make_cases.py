#!/usr/bin/env python3
"""Writes the metric test cases: predictions for the first 300 questions of
hotpotqa-dev-500, varied the ways real models answer (exact, with an article,
extra words, case and punctuation, partial, yes/no, wrong, unicode), then
scores them with the official HotpotQA functions.

    python3 scripts/metrics/make_cases.py ../shared/datasets/hotpotqa-dev-500/questions.jsonl
    python3 scripts/metrics/hotpot_official.py crates/exsearch-agent/tests/data/hotpot_metric_cases.jsonl \
        > crates/exsearch-agent/tests/data/hotpot_metric_expected.jsonl
"""
import json
import sys

VARIANTS = [
    lambda a: a,
    lambda a: "The " + a,
    lambda a: a + " (born 1950)",
    lambda a: a.upper() + ".",
    lambda a: a.split()[0] if a.split() else a,
    lambda a: "no",
    lambda a: "yes",
    lambda a: "It is " + a + ", I think",
    lambda a: "unknown",
    lambda a: "“" + a + "” — an answer",
    lambda a: "",
    lambda a: a.replace(" ", "-"),
]

out = "crates/exsearch-agent/tests/data/hotpot_metric_cases.jsonl"
with open(sys.argv[1], encoding="utf-8") as f, open(out, "w", encoding="utf-8") as w:
    for i, line in enumerate(f):
        if i == 300:
            break
        item = json.loads(line)
        answer = item["answers"][0]
        prediction = VARIANTS[i % len(VARIANTS)](answer)
        w.write(json.dumps({"prediction": prediction, "answers": item["answers"]}, ensure_ascii=False) + "\n")
