#!/usr/bin/python3
"""Reads an LMDB the way tensorpack 0.9.4 does and checks every record against its sources.

tensorpack 0.9.4: LMDBData opens the file with subdir=os.path.isdir(path), readonly, lock=False;
the key list comes from b'__keys__' and the size is entries - 1; each value goes through
msgpack.loads(raw=False, max_bin_len=1e9) with msgpack_numpy.patch() applied
(tensorpack/utils/serialize.py). Sources: the work dir's segments.json and segment files
(titles, knowledge, category) and image_features/{train,dev}.tsv.<k> (arrays), read here
with plain Python like the reference's step 3.

Usage: tensorpack_read_check.py --lmdb FILE --work-dir DIR --split train|val
       [--missing-image keep|drop] [--fp16] [--no-cls-prob] [--reject-ids a,b,...]
Exit 0 and "OK <n> records" when every field of every record matches; 1 otherwise;
77 when python3-lmdb / python3-msgpack / python3-msgpack-numpy / numpy are missing.
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


def loads(buf):
    return msgpack.loads(buf, raw=False, max_bin_len=1000000000)


def floats(cell):
    if cell.startswith("b'") and cell.endswith("'"):
        cell = cell[2:-1]
    return np.frombuffer(base64.b64decode(cell), dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lmdb", required=True)
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--split", required=True, choices=["train", "val"])
    ap.add_argument("--missing-image", default="keep", choices=["keep", "drop"])
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--no-cls-prob", action="store_true")
    ap.add_argument("--reject-ids", default="")
    a = ap.parse_args()

    meta = json.load(open(os.path.join(a.work_dir, "image_features", "meta.json")))
    fdim, ncls = meta["featureDim"], meta["numClasses"]
    manifest = json.load(open(os.path.join(a.work_dir, "segments.json")))
    rejected = set(x for x in a.reject_ids.split(",") if x)

    tsv = {}
    k = 0
    base = "train" if a.split == "train" else "dev"
    while os.path.exists(os.path.join(a.work_dir, "image_features", "%s.tsv.%d" % (base, k))):
        for line in open(os.path.join(a.work_dir, "image_features", "%s.tsv.%d" % (base, k))):
            f = line.rstrip("\n").split("\t")
            if len(f) == 7:
                tsv[f[0]] = f
        k += 1

    expected = []
    for seg in manifest["segments"]:
        if seg["split"] != a.split:
            continue
        for line in open(os.path.join(a.work_dir, seg["file"]), encoding="utf-8"):
            f = line.rstrip("\n").split("\t")
            if len(f) != 6 or f[0] in rejected:
                continue
            if f[0] not in tsv and a.missing_image == "drop":
                continue
            expected.append(f)

    env = lmdb.open(a.lmdb, subdir=os.path.isdir(a.lmdb), readonly=True, lock=False,
                    readahead=True, map_size=1099511627776 * 2, max_readers=100)
    txn = env.begin()
    size = txn.stat()["entries"]
    keys = loads(txn.get(b"__keys__"))
    size -= 1
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)

    check(size == len(keys), "entries-1 = %d but %d keys" % (size, len(keys)))
    check(len(keys) == len(expected), "%d records, expected %d" % (len(keys), len(expected)))
    ftype = np.float16 if a.fp16 else np.float32
    for i, key in enumerate(keys):
        check(key == ("%08d" % i).encode("ascii"), "key %d is %r" % (i, key))
        dp = loads(txn.get(key))
        check(isinstance(dp, list) and len(dp) == 10, "record %d is not a 10-field list" % i)
        if i >= len(expected):
            continue
        image_id, title, pic, pv, category, item_id = expected[i]
        features, cls_prob, boxes, num_boxes, image_h, image_w, rid, caption, rpv, rcat = dp
        where = "record %d (%s)" % (i, image_id)
        check(rid == image_id, "%s: image_id %r" % (where, rid))
        check(caption == title, "%s: caption %r != %r" % (where, caption, title))
        want_pv = pv if pv == "" or pv.endswith(";") else pv + ";"
        check(rpv == want_pv, "%s: pv %r != %r" % (where, rpv, want_pv))
        check(rcat == category, "%s: category %r" % (where, rcat))
        for name, v in (("num_boxes", num_boxes), ("image_h", image_h), ("image_w", image_w)):
            check(isinstance(v, str), "%s: %s is %s, not str" % (where, name, type(v).__name__))
        ncls_stored = 0 if a.no_cls_prob else ncls
        if image_id in tsv:
            t = tsv[image_id]
            n = int(t[3])
            check((image_w, image_h, num_boxes) == (t[1], t[2], t[3]), "%s: sizes %r" % (where, (image_w, image_h, num_boxes)))
            want_f = floats(t[5]).reshape(n, fdim).astype(ftype)
            want_c = floats(t[6]).reshape(n, ncls).astype(ftype) if not a.no_cls_prob else np.zeros((n, 0), ftype)
            want_b = floats(t[4]).reshape(n, 4)
        else:
            check((num_boxes, image_h, image_w) == ("0", "0", "0"), "%s: image-missing sizes %r" % (where, (num_boxes, image_h, image_w)))
            want_f = np.zeros((0, fdim), ftype)
            want_c = np.zeros((0, ncls_stored), ftype)
            want_b = np.zeros((0, 4), np.float32)
        for name, got, want in (("features", features, want_f), ("cls_prob", cls_prob, want_c), ("boxes", boxes, want_b)):
            ok = isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
            check(ok, "%s: %s differs (%s %s vs %s %s)" % (where, name, getattr(got, "dtype", type(got)), getattr(got, "shape", ""), want.dtype, want.shape))
    if problems:
        print("\n".join(problems[:20]))
        sys.exit(1)
    print("OK %d records" % len(keys))


if __name__ == "__main__":
    main()
