#!/usr/bin/env python3
"""Independent check of a multiple systems estimation fit, with statsmodels' Poisson GLM.

Fits the log-linear model of Chan, Silverman & Vincent (2019), as the R package SparseMSE
does, for a given set of two-list terms, and prints the population estimate. The Rust test
suite calls this script to check `tip estimate` against a fit it did not compute itself.

Usage: python3 mse_glm_check.py HISTORIES.csv TERMS_JSON

HISTORIES.csv: a header of list names and a count column (`count`, `n`, `freq` or
`frequency`, any case); each row one 0/1 flag per list and how many people have that history.
Histories not listed have count 0, duplicate rows are summed, the all-zero history is not a
cell. TERMS_JSON: a JSON array of two-list terms, e.g. '["A:B","C:D"]' or '[]'.

The model: every non-empty history over the lists someone is on is a cell (zeros included);
the design is an intercept, one main effect per list and, for each term A:B in the order
given, the product x_A*x_B. A term whose overlap (people on both A and B, in the table as it
stands) is 0 is not fitted: its parameter is minus infinity, so every cell on both A and B is
deleted, and it still counts as a parameter in the AIC (as in SparseMSE).

Prints one JSON object: estimate (observed + exp(intercept)), unobserved (exp(intercept)),
intercept, intercept_se, deviance, aic. Exits non-zero, with a message on stderr, if the
input cannot be read or the fit fails.
"""
import csv
import itertools
import json
import math
import sys
import warnings

import numpy as np
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning

COUNT_NAMES = {"count", "n", "freq", "frequency"}


class InputError(Exception):
    pass


def read_histories(path):
    """Return (list names, {history tuple: count}), duplicate rows summed."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise InputError("empty file")
    header = rows[0]
    at = [i for i, h in enumerate(header) if h.lower() in COUNT_NAMES]
    if len(at) != 1:
        raise InputError("need exactly one count column (count, n, freq or frequency)")
    at = at[0]
    lists = [h for i, h in enumerate(header) if i != at]
    if len(lists) < 2 or len(set(lists)) != len(lists):
        raise InputError("need at least two lists, with distinct names")
    counts = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"line {line}: {len(row)} fields, expected {len(header)}")
        flags = tuple(row[i] for i in range(len(header)) if i != at)
        if any(v not in ("0", "1") for v in flags):
            raise InputError(f"line {line}: list flags must be 0 or 1")
        if not row[at].isdigit():
            raise InputError(f"line {line}: count must be a whole number")
        history, n = tuple(int(v) for v in flags), int(row[at])
        if not any(history):
            if n > 0:
                raise InputError(f"line {line}: a history on no list cannot be observed")
            continue
        counts[history] = counts.get(history, 0) + n
    return lists, counts


def parse_terms(text, lists):
    try:
        terms = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"terms are not JSON: {e}")
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise InputError("terms must be a JSON array of strings like \"A:B\"")
    pairs = []
    for t in terms:
        pair = t.split(":")
        if len(pair) != 2 or pair[0] == pair[1] or not all(p in lists for p in pair):
            raise InputError(f"term {t!r} is not two different lists of the file joined by ':'")
        pairs.append((t, pair[0], pair[1]))
    return pairs


def fit(lists, counts, terms):
    observed = sum(counts.values())
    if observed == 0:
        raise InputError("nobody is on any list")
    # Drop the lists nobody is on.
    keep = [k for k in range(len(lists)) if any(h[k] and n for h, n in counts.items())]
    names = [lists[k] for k in keep]
    cells = [c for c in itertools.product((0, 1), repeat=len(names)) if any(c)]
    y = {c: 0 for c in cells}
    for h, n in counts.items():
        c = tuple(h[k] for k in keep)
        if any(c):
            y[c] += n
    x = np.array(cells, dtype=float)
    products, dropped = [], []
    for t, a, b in terms:
        if a not in names or b not in names:  # a list nobody is on: overlap 0
            dropped.append(t)
            continue
        ia, ib = names.index(a), names.index(b)
        on_both = (x[:, ia] == 1) & (x[:, ib] == 1)
        if sum(y[c] for c, both in zip(cells, on_both) if both) == 0:
            dropped.append(t)
            cells = [c for c, both in zip(cells, on_both) if not both]
            x = x[~on_both]
            products = [p[~on_both] for p in products]
        else:
            products.append(x[:, ia] * x[:, ib])
    design = np.column_stack([np.ones(len(cells)), x] + products)
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise RuntimeError("the design matrix is not of full rank: the model is not identifiable")
    response = np.array([y[c] for c in cells], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = sm.GLM(response, design, family=sm.families.Poisson()).fit()
    b0, se0 = float(res.params[0]), float(res.bse[0])
    unobserved = math.exp(b0)
    out = {
        "estimate": observed + unobserved,
        "unobserved": unobserved,
        "intercept": b0,
        "intercept_se": se0,
        "deviance": float(res.deviance),
        "aic": float(res.aic) + 2 * len(dropped),
    }
    if not all(math.isfinite(v) for v in out.values()):
        raise RuntimeError(f"the fit gave non-finite values: {out}")
    return out


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    try:
        lists, counts = read_histories(argv[1])
        terms = parse_terms(argv[2], lists)
    except (InputError, OSError, UnicodeDecodeError, csv.Error) as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 2
    try:
        out = fit(lists, counts, terms)
    except InputError as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the fit failed: singular design, no convergence, overflow ...
        print(f"{argv[1]}: the fit failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
