#!/usr/bin/python3
"""TPC-H Query 1 with Dask, beside examples/tpch_q1 (the same event, the same
answer fields: "rows" and "lineitems").

    /usr/bin/python3 bench/peers/dask_tpch_q1.py --event '{"paths": ["lineitem.tbl"]}'

Written as a Dask user would: dask.dataframe.read_csv over dbgen's
'|'-separated lineitem files (no header), a filter on l_shipdate and a
groupby-agg, on LocalCluster(n_workers=2, threads_per_worker=1,
processes=True), as every Dask version does (dask_common.py). The input must exist: generate it with the app or its
baseline (same event). Event fields: "paths" (files or directories; default
$TMPDIR/kappa-tpch-q1/lineitem-sf<scale>-seed<seed>.tbl), "scale", "seed",
"chunk_mb" (read_csv's blocksize, default 64), "delta" (default 90).

To print the same digits as the C++ programs, the decimal columns become
integer hundredths (round(x * 100)) and every sum is an exact int64 sum in the
units of its product; sum_charge (up to 1.1e11 a row) is summed in two parts,
the quotient and the remainder by 10^9, so that no int64 sum overflows at any
practical scale. Averages are sum / count rounded half up to 6 decimals,
computed on Python integers.

Prints one JSON line (dask_common.main): the answer, "seconds" (the query,
cluster start excluded) and "cluster_seconds" (starting the cluster).
"""

import os
import sys

import dask_common

COLUMNS = [
    "l_orderkey", "l_partkey", "l_suppkey", "l_linenumber", "l_quantity",
    "l_extendedprice", "l_discount", "l_tax", "l_returnflag", "l_linestatus",
    "l_shipdate", "l_commitdate", "l_receiptdate", "l_shipinstruct",
    "l_shipmode", "l_comment", "trailing",  # dbgen ends each row with '|'
]


def input_files(event):
    paths = event.get("paths")
    if not paths:
        tmp = os.environ.get("TMPDIR") or "/tmp"
        name = "lineitem-sf%g-seed%d.tbl" % (event.get("scale", 1.0), event.get("seed", 1))
        paths = [os.path.join(tmp, "kappa-tpch-q1", name)]
    try:
        return dask_common.list_files(paths)
    except FileNotFoundError as e:
        sys.exit(f"{e} (generate it with build/examples/tpch_q1/tpch_q1 run --event ... first)")


def fixed(value, decimals):
    """A non-negative integer in units of 10^-decimals as a decimal string."""
    unit = 10 ** decimals
    return "%d.%0*d" % (value // unit, decimals, value % unit)


def average(hundredths_sum, count):
    """sum / count (sum in hundredths) rounded half up to 6 decimals."""
    return fixed((2 * hundredths_sum * 10 ** 4 + count) // (2 * count), 6)


def q1(client, event):
    import dask
    import dask.dataframe as dd
    import pandas as pd

    files = input_files(event)
    blocksize = int(float(event.get("chunk_mb", 64)) * 2 ** 20)
    delta = int(event.get("delta", 90))

    df = dd.read_csv(
        files, sep="|", header=None, names=COLUMNS, blocksize=blocksize,
        usecols=["l_quantity", "l_extendedprice", "l_discount", "l_tax",
                 "l_returnflag", "l_linestatus", "l_shipdate"],
        dtype={"l_quantity": "float64", "l_extendedprice": "float64",
               "l_discount": "float64", "l_tax": "float64",
               "l_returnflag": "category", "l_linestatus": "category"},
        parse_dates=["l_shipdate"])
    cutoff = pd.Timestamp("1998-12-01") - pd.Timedelta(days=delta)
    rows = df[df.l_shipdate <= cutoff]

    def cents(column):
        return (column * 100).round().astype("int64")

    price = cents(rows.l_extendedprice)
    disc = cents(rows.l_discount)
    disc_price = price * (100 - disc)
    charge = disc_price * (100 + cents(rows.l_tax))
    rows = rows.assign(qty=cents(rows.l_quantity), price=price, disc=disc,
                       disc_price=disc_price, charge_hi=charge // 10 ** 9,
                       charge_lo=charge % 10 ** 9)
    agg = rows.groupby(["l_returnflag", "l_linestatus"], observed=True).agg({
        "qty": "sum", "price": "sum", "disc_price": "sum", "charge_hi": "sum",
        "charge_lo": "sum", "disc": ["sum", "count"]})
    groups, lineitems = dask.compute(agg, df.shape[0])

    out = []
    for (flag, status), g in sorted(groups.iterrows(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        count = int(g[("disc", "count")])
        qty, price_sum = int(g[("qty", "sum")]), int(g[("price", "sum")])
        disc_sum = int(g[("disc", "sum")])
        charge_sum = int(g[("charge_hi", "sum")]) * 10 ** 9 + int(g[("charge_lo", "sum")])
        out.append({
            "l_returnflag": str(flag), "l_linestatus": str(status),
            "sum_qty": fixed(qty, 2), "sum_base_price": fixed(price_sum, 2),
            "sum_disc_price": fixed(int(g[("disc_price", "sum")]), 4),
            "sum_charge": fixed(charge_sum, 6),
            "avg_qty": average(qty, count), "avg_price": average(price_sum, count),
            "avg_disc": average(disc_sum, count), "count_order": count,
        })
    return {"rows": out, "lineitems": int(lineitems), "files": len(files)}


if __name__ == "__main__":
    dask_common.main(q1, "TPC-H Query 1 with Dask")
