#!/usr/bin/env python3
# ---------------------------------------------------------------------------
# Answer-metric functions from the official HotpotQA evaluation script.
#
# Source:  https://github.com/hotpotqa/hotpot  file  hotpot_evaluate_v1.py
#          (read at commit 4c0fa5ea6541391ab86170c2f9c57eb87776ad16)
# License: Apache License, Version 2.0
#          Copyright 2018 Zhilin Yang, Peng Qi, Saizheng Zhang
#          (copyright line as given in LICENSE.txt of hotpotqa/hotpot)
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
#
# The functions normalize_answer, f1_score and exact_match_score below are
# copied UNCHANGED (byte-for-byte) from hotpot_evaluate_v1.py, together with
# the import lines they use (re, string, collections.Counter), also unchanged.
#
# Changes relative to the original file (Apache-2.0 section 4(b) notice):
#   * Only those three functions are kept; update_answer, update_sp, eval and
#     the original __main__ block are omitted.
#   * Of the original imports, `import sys`, `import ujson as json` and
#     `import pickle` are omitted: the three functions do not use them and
#     ujson is not in the Python standard library.
#   * A separate command-line wrapper (below, marked as not part of the
#     official script) was added.
# ---------------------------------------------------------------------------

# ===== BEGIN verbatim excerpt of hotpotqa/hotpot hotpot_evaluate_v1.py =====
import re
import string
from collections import Counter

def normalize_answer(s):

    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    normalized_prediction = normalize_answer(prediction)
    normalized_ground_truth = normalize_answer(ground_truth)

    ZERO_METRIC = (0, 0, 0)

    if normalized_prediction in ['yes', 'no', 'noanswer'] and normalized_prediction != normalized_ground_truth:
        return ZERO_METRIC
    if normalized_ground_truth in ['yes', 'no', 'noanswer'] and normalized_prediction != normalized_ground_truth:
        return ZERO_METRIC

    prediction_tokens = normalized_prediction.split()
    ground_truth_tokens = normalized_ground_truth.split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return ZERO_METRIC
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1, precision, recall


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))
# ===== END verbatim excerpt =====


# ===========================================================================
# Command-line wrapper -- NOT PART OF THE OFFICIAL HOTPOTQA SCRIPT.
# Written for this project; Python 3 standard library only.
#
# Usage:  python3 hotpot_official.py PRED_GOLD.jsonl
#
# Input: one JSON object per line:
#     {"prediction": "<string>", "answers": ["<gold 1>", "<gold 2>", ...]}
# Output (stdout): for each input line, in order, one JSON line
#     {"em": float, "f1": float, "precision": float, "recall": float}
# where em is the max over the gold answers of exact_match_score, f1 is the
# max over the gold answers of f1_score, and precision/recall are those of
# the gold answer that gave that max f1 (the first such gold on ties).
# A line with an empty "answers" list scores all zeros.
# Finally one line {"mean_em": float, "mean_f1": float} (means over all
# input lines; 0.0 when there are none).
# Blank input lines are skipped. Malformed input exits with status 2.
# ===========================================================================

import json as _json
import sys as _sys


def _score_one(prediction, answers):
    best_em = 0.0
    best_f1, best_p, best_r = 0.0, 0.0, 0.0
    have_best = False
    for gold in answers:
        em = float(exact_match_score(prediction, gold))
        f1, p, r = f1_score(prediction, gold)
        if em > best_em:
            best_em = em
        if not have_best or f1 > best_f1:
            best_f1, best_p, best_r = float(f1), float(p), float(r)
            have_best = True
    return {"em": best_em, "f1": best_f1, "precision": best_p, "recall": best_r}


def _main(argv):
    if len(argv) != 2:
        _sys.stderr.write("usage: python3 hotpot_official.py PRED_GOLD.jsonl\n")
        return 2
    path = argv[1]
    sum_em = 0.0
    sum_f1 = 0.0
    n = 0
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = _json.loads(line)
            except ValueError as e:
                _sys.stderr.write("%s:%d: invalid JSON: %s\n" % (path, lineno, e))
                return 2
            if not isinstance(obj, dict):
                _sys.stderr.write("%s:%d: expected a JSON object\n" % (path, lineno))
                return 2
            prediction = obj.get("prediction")
            answers = obj.get("answers")
            if not isinstance(prediction, str):
                _sys.stderr.write("%s:%d: \"prediction\" must be a string\n" % (path, lineno))
                return 2
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                _sys.stderr.write("%s:%d: \"answers\" must be a list of strings\n" % (path, lineno))
                return 2
            scores = _score_one(prediction, answers)
            _sys.stdout.write(_json.dumps(scores) + "\n")
            sum_em += scores["em"]
            sum_f1 += scores["f1"]
            n += 1
    mean_em = sum_em / n if n else 0.0
    mean_f1 = sum_f1 / n if n else 0.0
    _sys.stdout.write(_json.dumps({"mean_em": mean_em, "mean_f1": mean_f1}) + "\n")
    return 0


if __name__ == "__main__":
    _sys.exit(_main(_sys.argv))
