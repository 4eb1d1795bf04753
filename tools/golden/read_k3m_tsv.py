#!/usr/bin/python3
"""Reads a region-feature TSV the way K3M's loaders do (P2:223-225, P3:90-96): each base64
cell loses two characters in front and one behind, unconditionally, then np.frombuffer float32.
Prints one JSON object per row (id, sizes, shapes, sums) for the TS interop test.

    /usr/bin/python3 tools/golden/read_k3m_tsv.py FILE FEATURE_DIM NUM_CLASSES
"""
import base64
import csv
import json
import sys

import numpy as np

FIELDNAMES = ['image_id', 'image_w', 'image_h', 'num_boxes', 'boxes', 'features', 'cls_prob']


def main(path, feature_dim, num_classes):
    csv.field_size_limit(sys.maxsize)
    with open(path) as f:
        for item in csv.DictReader(f, delimiter='\t', fieldnames=FIELDNAMES):
            n = int(item['num_boxes'])
            boxes = np.frombuffer(base64.b64decode(item['boxes'][2:-1]), dtype=np.float32).reshape(n, 4)
            feats = np.frombuffer(base64.b64decode(item['features'][2:-1]), dtype=np.float32).reshape(n, feature_dim)
            probs = np.frombuffer(base64.b64decode(item['cls_prob'][2:-1]), dtype=np.float32).reshape(n, num_classes)
            print(json.dumps({'imageId': item['image_id'], 'imageW': int(item['image_w']), 'imageH': int(item['image_h']),
                              'numBoxes': n, 'boxes': boxes.reshape(-1).tolist(), 'featureSum': float(feats.astype(np.float64).sum()),
                              'clsProbSum': float(probs.astype(np.float64).sum())}))


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
