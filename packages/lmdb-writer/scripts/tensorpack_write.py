#!/usr/bin/python3
"""Writes an LMDB exactly as tensorpack 0.9.4's LMDBSerializer.save does, with K3M's datapoints.

Records are random (numpy seed), including one image-missing record (0 boxes), one whose
caption is float NaN (an empty pandas cell, as the reference writes it) and one with unicode
text. Next to the LMDB it writes <lmdb>.expected.jsonl: one JSON object per record with the
arrays as base64 float32 bytes, so the TypeScript reader can be checked field for field.

Usage: tensorpack_write.py OUT.lmdb [--records N] [--feature-dim D] [--num-classes C]
Exit 77 when python3-lmdb / python3-msgpack / python3-msgpack-numpy / numpy are missing.
"""
import argparse
import base64
import json
import os
import sys

try:
    import lmdb
    import msgpack
    import msgpack_numpy
    import numpy as np
except ImportError as e:  # pragma: no cover
    print("SKIP: missing Python module: %s" % e)
    sys.exit(77)

msgpack_numpy.patch()


def dumps(obj):
    return msgpack.dumps(obj, use_bin_type=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--records", type=int, default=12)
    ap.add_argument("--feature-dim", type=int, default=2048)
    ap.add_argument("--num-classes", type=int, default=1601)
    a = ap.parse_args()
    rng = np.random.RandomState(0)
    dps = []
    for i in range(a.records):
        n = 0 if i == 2 else int(rng.randint(1, 37))
        feats = rng.rand(n, a.feature_dim).astype(np.float32)
        cls = rng.rand(n, a.num_classes).astype(np.float32)
        boxes = (rng.rand(n, 4) * 600).astype(np.float32)
        caption = float("nan") if i == 4 else ("标题 %d 纯棉" % i)
        pv = "颜色:红色;材质:棉" if i % 3 else "省份:河北省;款式定位:经济型;"
        dps.append([feats, cls, boxes, str(n), str(480 + i), str(640 + i), "%d_s0" % i, caption, pv, "cat%d" % (i % 4)])

    # LMDBSerializer.save (tensorpack 0.9.4), write_frequency lowered to get several commits.
    path = a.out
    isdir = os.path.isdir(path)
    db = lmdb.open(path, subdir=isdir, map_size=1099511627776 * 2, readonly=False, meminit=False, map_async=True)
    write_frequency = 5
    txn = db.begin(write=True)
    idx = -1
    for idx, dp in enumerate(dps):
        txn.put(u"{:08}".format(idx).encode("ascii"), dumps(dp))
        if (idx + 1) % write_frequency == 0:
            txn.commit()
            txn = db.begin(write=True)
    txn.commit()
    keys = [u"{:08}".format(k).encode("ascii") for k in range(idx + 1)]
    with db.begin(write=True) as txn:
        txn.put(b"__keys__", dumps(keys))
    db.sync()
    db.close()

    with open(path + ".expected.jsonl", "w", encoding="utf-8") as f:
        for dp in dps:
            b64 = lambda x: base64.b64encode(np.ascontiguousarray(x, dtype=np.float32).tobytes()).decode("ascii")
            cap = dp[7]
            f.write(json.dumps({
                "features": b64(dp[0]), "featuresShape": list(dp[0].shape),
                "clsProb": b64(dp[1]), "clsProbShape": list(dp[1].shape),
                "boxes": b64(dp[2]), "numBoxes": int(dp[3]), "imageH": int(dp[4]), "imageW": int(dp[5]),
                "imageId": dp[6], "caption": "" if isinstance(cap, float) else cap, "pv": dp[8], "category": dp[9],
            }, ensure_ascii=False) + "\n")
    print("wrote %d records to %s" % (len(dps), path))


if __name__ == "__main__":
    main()
