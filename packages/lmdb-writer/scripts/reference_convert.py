#!/usr/bin/python3
"""The reference's step 3 core (3_generate_lmdb_ali.py + tensorpack LMDBSerializer.save), for
benchmarks: parse the region-feature TSV, strip b'...', base64-decode, reshape, build the
10-field datapoint, msgpack + msgpack_numpy, LMDB put (commit every 5000), __keys__.
The metadata join is a dict lookup in the reference; here text fields are constants.

Usage: reference_convert.py TSV OUT.lmdb [--feature-dim 2048] [--num-classes 1601]
Prints "<records> <seconds> <peak RSS MB>". Exit 77 when a module is missing.
"""
import argparse
import base64
import resource
import sys
import time

try:
    import lmdb
    import msgpack
    import msgpack_numpy
    import numpy as np
except ImportError as e:  # pragma: no cover
    print("SKIP: missing Python module: %s" % e)
    sys.exit(77)

msgpack_numpy.patch()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("out")
    ap.add_argument("--feature-dim", type=int, default=2048)
    ap.add_argument("--num-classes", type=int, default=1601)
    a = ap.parse_args()
    t0 = time.time()
    db = lmdb.open(a.out, subdir=False, map_size=1099511627776 * 2, readonly=False, meminit=False, map_async=True)
    txn = db.begin(write=True)
    idx = -1
    with open(a.tsv) as f:
        for idx, line in enumerate(f):
            c = line.rstrip("\n").split("\t")
            n = int(c[3])
            boxes = np.frombuffer(base64.b64decode(c[4][2:-1]), dtype=np.float32).reshape(n, 4)
            feats = np.frombuffer(base64.b64decode(c[5][2:-1]), dtype=np.float32).reshape(n, a.feature_dim)
            cls = np.frombuffer(base64.b64decode(c[6][2:-1]), dtype=np.float32).reshape(n, a.num_classes)
            dp = [feats, cls, boxes, c[3], c[2], c[1], c[0], "title", "p:v;p:v", "cat"]
            txn.put(u"{:08}".format(idx).encode("ascii"), msgpack.dumps(dp, use_bin_type=True))
            if (idx + 1) % 5000 == 0:
                txn.commit()
                txn = db.begin(write=True)
    txn.commit()
    keys = [u"{:08}".format(k).encode("ascii") for k in range(idx + 1)]
    with db.begin(write=True) as txn:
        txn.put(b"__keys__", msgpack.dumps(keys, use_bin_type=True))
    db.sync()
    db.close()
    print("%d %.3f %.1f" % (idx + 1, time.time() - t0, peak_rss_mb()))


def peak_rss_mb():
    """VmHWM of this address space (ru_maxrss carries the parent's high-water mark across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
