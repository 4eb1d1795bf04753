#!/usr/bin/python3
"""Feeds every record of an LMDB through the original K3M loader and reports the extra fields.

Reads the LMDB as tensorpack 0.9.4's LMDBData does (__keys__, entries - 1), deserialises each
value with the original loader's own `deserialize_lmdb` (vilbert_k3m/datasets/
concept_cap_dataset_struc.py, msgpack_numpy patched by that module) and runs the original
`BertPreprocessBatch.__call__`, which unpacks a datapoint into exactly 10 fields. Before the
loader module is imported (it patches msgpack globally), every value is also read with plain
msgpack to collect the extra keys in the boxes map (domain, instance_labels, caption_source).

Usage: original_loader_check.py --lmdb FILE --k3m-torch DIR
Prints one JSON line: {"records": n, "preprocessed": n, "failures": [...], "extras": [{...}, ...]}.
Exit 0 when every record went through, 1 otherwise; 77 when a Python module is missing.
"""
import argparse
import json
import os
import sys

try:
    import lmdb
    import msgpack
    import numpy  # noqa: F401
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover
    print("SKIP: missing Python module: %s" % e)
    sys.exit(77)

EXTRA_KEYS = {b"domain": "domain", b"instance_labels": "instanceLabels", b"caption_source": "captionSource"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lmdb", required=True)
    ap.add_argument("--k3m-torch", required=True)
    a = ap.parse_args()

    env = lmdb.open(a.lmdb, subdir=os.path.isdir(a.lmdb), readonly=True, lock=False, readahead=True,
                    map_size=1099511627776 * 2, max_readers=100)
    txn = env.begin()
    keys = msgpack.loads(txn.get(b"__keys__"), raw=False)
    values = [(k, txn.get(k)) for k in keys]

    extras = []
    for _, v in values:
        dp = msgpack.loads(v, raw=False, strict_map_key=False)
        boxes = dp[2]
        extras.append({name: boxes[key] for key, name in EXTRA_KEYS.items() if key in boxes})

    sys.path[:0] = [os.path.join(a.k3m_torch, "shims"), os.path.join(a.k3m_torch, "k3m")]
    from pytorch_transformers.tokenization_bert import BertTokenizer
    from vilbert_k3m.datasets.concept_cap_dataset_struc import BertPreprocessBatch, deserialize_lmdb

    tokenizer = BertTokenizer.from_pretrained(os.path.join(a.k3m_torch, "k3m", "bert-base-chinese"))
    data = os.path.join(a.k3m_torch, "k3m", "data")
    preprocess = BertPreprocessBatch(os.path.join(data, "caption_train.json"), os.path.join(data, "pv_train.json"),
                                     tokenizer, "bert-base-uncased", 36, 36, len(values), seq_len_pv=48,
                                     encoding="utf-8", visual_target=0, objective=2)
    done = 0
    failures = []
    for k, v in values:
        try:
            dp = deserialize_lmdb((k, v))
            out = preprocess(dp)
            if out[-1] != dp[6]:
                raise ValueError("image id %r came back as %r" % (dp[6], out[-1]))
            done += 1
        except Exception as e:  # the loader's own failure, reported per record
            failures.append("%s: %s: %s" % (k.decode(), type(e).__name__, e))
    print(json.dumps({"records": len(values), "preprocessed": done, "failures": failures[:5], "extras": extras},
                     ensure_ascii=False))
    sys.exit(0 if done == len(values) else 1)


if __name__ == "__main__":
    main()
