#!/usr/bin/python3
"""Builds training batches from one of our LMDBs with the ORIGINAL K3M loader code and writes
them as safetensors, for k3m-model's interop test (test/data-interop.test.ts).

What runs, all original code from <k3m-torch>/k3m (YushanZhu/K3M, MIT; see its README):
  * records: read as tensorpack 0.9.4's LMDBSerializer.load does (file opened with
    subdir=False, readonly, lock=False; keys from b'__keys__'; each value through the
    original `deserialize_lmdb`, msgpack_numpy patched);
  * per record: `BertPreprocessBatch.__call__` (DS:491-578) with the shim tokenizer over
    --vocab (the original's bert-base-chinese vocab.txt), title 36, knowledge 48, 36 regions;
  * batches: `ConceptCapLoaderTrain_struc.__iter__` (DS:284-330: global image row, location and
    mask, torch tensors) over a source that stacks --batch-size samples the way tensorpack 0.9.4
    BatchData does (as <k3m-torch>/bench_train.py does).

--masking off: `random.random` returns 0.5 for the whole run, so no title token and no region
is selected (the knowledge masking is deterministic and stays on): every field is
deterministic. --masking seeded: the original's random draws, seeded with --seed.

Output: <out>/batch_<k>.safetensors per batch, tensors under the reference's names
(k3m-reference.md 3.4; ints I64, floats F32), plus `masked_label` ([B, 36], the overlap mask of
each sample, which the loader uses for the global row but does not yield) and the image ids in
the metadata (`image_ids`, JSON). --light leaves out image_feat rows 1..36 and image_target
(keeps `image_feat_global` [B, 2048] and `region_zeroed` [B, 36], 1 where a row of the
preprocessed features is all zero).

Exit 0 with "OK <batches> batches <records> records"; 77 when a module is missing.
"""
import argparse
import json
import os
import struct
import sys

try:
    import lmdb
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover
    print("SKIP: missing Python module: %s" % e)
    sys.exit(77)

NAMES = [
    "input_ids", "input_mask", "segment_ids", "lm_label_ids", "is_next",
    "input_ids_pv", "input_mask_pv", "segment_ids_pv", "lm_label_ids_pv", "is_next_pv_v", "is_next_pv_t",
    "image_feat", "image_loc", "image_target", "image_label", "image_mask",
]


def write_safetensors(path, tensors, metadata):
    """safetensors: u64 header length, JSON header, little-endian data."""
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, a in tensors.items():
        if a.dtype.kind == "f":
            a, dt = np.ascontiguousarray(a, dtype="<f4"), "F32"
        else:
            a, dt = np.ascontiguousarray(a, dtype="<i8"), "I64"
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lmdb", required=True)
    ap.add_argument("--k3m-torch", required=True, help="the original code's folder (k3m/ and shims/ inside)")
    ap.add_argument("--vocab", required=True, help="vocab.txt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--limit", type=int, default=0, help="records (0 = all); a multiple of --batch-size")
    ap.add_argument("--masking", choices=["off", "seeded"], default="off")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--light", action="store_true")
    a = ap.parse_args()

    sys.path[:0] = [os.path.join(a.k3m_torch, "shims"), os.path.join(a.k3m_torch, "k3m")]
    import random
    from pytorch_transformers.tokenization_bert import BertTokenizer
    from vilbert_k3m.datasets.concept_cap_dataset_struc import (
        BertPreprocessBatch,
        ConceptCapLoaderTrain_struc,
        deserialize_lmdb,
    )

    env = lmdb.open(a.lmdb, subdir=os.path.isdir(a.lmdb), readonly=True, lock=False, readahead=True, map_size=1099511627776 * 2, max_readers=100)
    with env.begin() as txn:
        keys = deserialize_lmdb((b"__keys__", txn.get(b"__keys__")))
        n = len(keys) if a.limit == 0 else min(a.limit, len(keys))
        records = [deserialize_lmdb((k, txn.get(k))) for k in keys[:n]]
    env.close()

    if a.masking == "off":
        random.random = lambda: 0.5
    else:
        random.seed(a.seed)
        np.random.seed(a.seed)
    tokenizer = BertTokenizer(a.vocab)
    preprocess = BertPreprocessBatch(None, None, tokenizer, "bert-base-chinese", 36, 36, n, seq_len_pv=48, encoding="utf-8", visual_target=0, objective=2)

    samples = []
    extras = []
    for r in records:
        s = preprocess(r)
        samples.append(s)
        feat = s[11]
        extras.append({"masked_label": np.asarray(s[16], dtype=np.int64), "region_zeroed": (np.abs(feat).sum(axis=1) == 0).astype(np.int64)})

    bs = a.batch_size
    if n % bs:
        sys.exit("--limit %d is not a multiple of --batch-size %d" % (n, bs))

    class Stacked(object):
        """tensorpack 0.9.4 BatchData.get_data over the preprocessed samples (_batch_numpy dtype rules)."""

        @staticmethod
        def _batch_numpy(data_list):
            d = data_list[0]
            if isinstance(d, bool):
                dtype = "bool"
            elif isinstance(d, int):
                dtype = "int32"
            elif type(d) == float:
                dtype = "float32"
            elif isinstance(d, (bytes, str)):
                dtype = "str"
            else:
                dtype = d.dtype
            return np.asarray(data_list, dtype=dtype)

        def get_data(self):
            for b in range(0, n, bs):
                holder = samples[b:b + bs]
                yield [self._batch_numpy([dp[k] for dp in holder]) for k in range(len(holder[0]))]

    loader = ConceptCapLoaderTrain_struc.__new__(ConceptCapLoaderTrain_struc)
    loader.ds = Stacked()
    loader.batch_size = bs
    loader.num_workers = 0
    os.makedirs(a.out, exist_ok=True)
    count = 0
    for k, batch in enumerate(loader):
        index_p, index_v, image_ids = batch[-3], batch[-2], batch[-1]
        tensors = {name: t.numpy() for name, t in zip(NAMES, batch[:-3])}
        tensors["index_p"] = np.asarray(index_p)
        tensors["index_v"] = np.asarray(index_v)
        ex = extras[k * bs:(k + 1) * bs]
        tensors["masked_label"] = np.stack([e["masked_label"] for e in ex])
        if a.light:
            tensors["image_feat_global"] = tensors["image_feat"][:, 0, :]
            tensors["region_zeroed"] = np.stack([e["region_zeroed"] for e in ex])
            del tensors["image_feat"], tensors["image_target"]
        meta = {"image_ids": json.dumps([str(i) for i in image_ids]), "dtypes": json.dumps({name: str(t.dtype) for name, t in zip(NAMES, batch[:-3])})}
        write_safetensors(os.path.join(a.out, "batch_%03d.safetensors" % k), tensors, meta)
        count += 1
    print("OK %d batches %d records" % (count, n))


if __name__ == "__main__":
    main()
