#!/usr/bin/python3
"""Golden fixtures for region-features: an independent PyTorch/torchvision implementation of the
bottom-up-attention Faster R-CNN (ResNet C4, VG variant) at the `small-c4` preset's size.

Regenerate (from the repository root, with Debian's python3-torch and python3-torchvision):

    /usr/bin/python3 tools/golden/make_region_golden.py

Writes into tools/golden/region-features/:
  small-c4-random.pkl          random weights as a detectron2-style pickle ({'model': {name: ndarray}},
                               protocol 4: numpy's _reconstruct + __setstate__)
  golden.safetensors           per image: the resized RGB input and every intermediate
                               (res4 map, RPN proposals, pooled features, class probabilities,
                               selected ids and final boxes for both selection rules)
  k3m-python.tsv (+ .json)     rows written the way K3M's script writes them (str of bytes), and their values
  pickle-protocol-<p>.pkl      a three-array dict in protocols 2-5 (unpickler coverage: protocol 2
                               writes bytes through _codecs.encode, protocol 5 uses _frombuffer)

The network follows detectron2 + py-bottom-up-attention, written from their definitions and not
from the TypeScript port: convolutions then frozen batch norm as x * scale + shift (not folded),
torchvision.ops.roi_pool and torchvision.ops.nms.
"""
import collections
import json
import math
import os
import pickle
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import nms, roi_pool

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'region-features')

# small-c4 (packages/region-features/src/model/presets.ts); the TS test checks they agree.
CFG = dict(
    stemChannels=16, blocks=[1, 1, 1, 1], bottleneck=[8, 16, 32, 32], out=[32, 64, 128, 256],
    rpnChannels=64, numClasses=101, anchorSizes=[64, 128, 256, 512], anchorRatios=[0.5, 1, 2],
    featureStride=16, preNmsTopK=1000, postNmsTopK=100, rpnNmsThresh=0.7, poolSize=14,
)
# Smaller than the preset's 256/416 to keep the fixture small; the TS test uses the same sizes.
MIN_SIZE, MAX_SIZE = 128, 192
PIXEL_MEAN_BGR = [102.98, 115.95, 122.77]
EPS = 1e-5
SCALE_CLAMP = math.log(1000.0 / 16)


def param_shapes(c):
    m = collections.OrderedDict()

    def conv_bn(name, o, i, k):
        m[name + '.weight'] = [o, i, k, k]
        for p in ('weight', 'bias', 'running_mean', 'running_var'):
            m[name + '.norm.' + p] = [o]

    conv_bn('backbone.stem.conv1', c['stemChannels'], 3, 7)
    for s in range(4):
        prefix = 'roi_heads.res5' if s == 3 else 'backbone.res%d' % (s + 2)
        in_c = c['stemChannels'] if s == 0 else c['out'][s - 1]
        for i in range(c['blocks'][s]):
            name = '%s.%d' % (prefix, i)
            ic = in_c if i == 0 else c['out'][s]
            if i == 0 and in_c != c['out'][s]:
                conv_bn(name + '.shortcut', c['out'][s], ic, 1)
            conv_bn(name + '.conv1', c['bottleneck'][s], ic, 1)
            conv_bn(name + '.conv2', c['bottleneck'][s], c['bottleneck'][s], 3)
            conv_bn(name + '.conv3', c['out'][s], c['bottleneck'][s], 1)
    a = len(c['anchorSizes']) * len(c['anchorRatios'])
    rpn = 'proposal_generator.rpn_head'
    m[rpn + '.conv.weight'] = [c['rpnChannels'], c['out'][2], 3, 3]
    m[rpn + '.conv.bias'] = [c['rpnChannels']]
    m[rpn + '.objectness_logits.weight'] = [a, c['rpnChannels'], 1, 1]
    m[rpn + '.objectness_logits.bias'] = [a]
    m[rpn + '.anchor_deltas.weight'] = [4 * a, c['rpnChannels'], 1, 1]
    m[rpn + '.anchor_deltas.bias'] = [4 * a]
    d = c['out'][3]
    m['roi_heads.box_predictor.cls_score.weight'] = [c['numClasses'], d]
    m['roi_heads.box_predictor.cls_score.bias'] = [c['numClasses']]
    m['roi_heads.box_predictor.bbox_pred.weight'] = [(c['numClasses'] - 1) * 4, d]
    m['roi_heads.box_predictor.bbox_pred.bias'] = [(c['numClasses'] - 1) * 4]
    return m


def random_weights(c, seed=1234):
    g = torch.Generator().manual_seed(seed)
    w = collections.OrderedDict()
    for name, shape in param_shapes(c).items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        u = torch.rand(shape, generator=g)
        n = torch.randn(shape, generator=g)
        if name.endswith('norm.weight'):
            t = 0.2 + 0.1 * u if 'conv3' in name else 0.8 + 0.4 * u
        elif name.endswith('norm.bias') or name.endswith('running_mean'):
            t = 0.1 * (u - 0.5)
        elif name.endswith('running_var'):
            t = 0.5 + u
        elif name.endswith('.bias'):
            t = 0.1 * (u - 0.5)
        elif 'objectness_logits' in name or 'cls_score' in name:
            t = 3 * n / math.sqrt(fan_in)
        elif 'anchor_deltas' in name or 'bbox_pred' in name:
            t = 0.2 * n / math.sqrt(fan_in)
        elif name.startswith('backbone.stem'):
            t = n * math.sqrt(2.0 / fan_in) / 64
        else:
            t = n * math.sqrt(2.0 / fan_in)
        w[name] = t.float()
    return w


class Net:
    def __init__(self, c, w):
        self.c, self.w = c, w

    def conv_bn(self, x, name, stride=1, padding=0, dilation=1, relu=True):
        w = self.w
        x = F.conv2d(x, w[name + '.weight'], None, stride, padding, dilation)
        scale = w[name + '.norm.weight'] * (w[name + '.norm.running_var'] + EPS).rsqrt()
        shift = w[name + '.norm.bias'] - w[name + '.norm.running_mean'] * scale
        x = x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        return F.relu(x) if relu else x

    def block(self, x, name, stride, dilation):
        out = self.conv_bn(x, name + '.conv1', stride=stride)  # caffe: stride on the 1x1
        out = self.conv_bn(out, name + '.conv2', padding=dilation, dilation=dilation)
        out = self.conv_bn(out, name + '.conv3', relu=False)
        sc = self.conv_bn(x, name + '.shortcut', stride=stride, relu=False) if name + '.shortcut.weight' in self.w else x
        return F.relu(out + sc)

    def stage(self, x, s):
        prefix = 'roi_heads.res5' if s == 5 else 'backbone.res%d' % s
        # detectron2 RES5_DILATION: 2 (the VG variant, the default here) keeps res5 at stride 1
        # and dilates; 1 is the standard C4 head, stride 2 on res5's first block.
        res5_dilation = self.c.get('res5Dilation', 2)
        for i in range(self.c['blocks'][s - 2]):
            stride = 2 if (i == 0 and (s in (3, 4) or (s == 5 and res5_dilation == 1))) else 1
            x = self.block(x, '%s.%d' % (prefix, i), stride, res5_dilation if s == 5 else 1)
        return x

    def backbone(self, x):
        x = self.conv_bn(x, 'backbone.stem.conv1', stride=2, padding=3)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        for s in (2, 3, 4):
            x = self.stage(x, s)
        return x


def anchors(h, w, c, cell=None):
    """detectron2's anchor grid: the cell anchors (generated size-major, or a checkpoint's buffer
    in its own order) shifted to every cell, in (y, x, anchor) order."""
    if cell is None:
        cell = []
        for size in c['anchorSizes']:
            area = size ** 2.0
            for r in c['anchorRatios']:
                aw = math.sqrt(area / r)
                ah = r * aw
                cell.append([-aw / 2.0, -ah / 2.0, aw / 2.0, ah / 2.0])
    cell = torch.as_tensor(cell, dtype=torch.float32)
    st = c['featureStride']
    sx = torch.arange(0, w * st, step=st, dtype=torch.float32)
    sy = torch.arange(0, h * st, step=st, dtype=torch.float32)
    yy, xx = torch.meshgrid(sy, sx, indexing='ij')
    xx, yy = xx.reshape(-1), yy.reshape(-1)
    shifts = torch.stack((xx, yy, xx, yy), dim=1)
    return (shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4)


def apply_deltas(deltas, boxes, weights):
    wx, wy, ww, wh = weights
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=SCALE_CLAMP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=SCALE_CLAMP)
    pcx = dx * widths[:, None] + ctr_x[:, None]
    pcy = dy * heights[:, None] + ctr_y[:, None]
    pw = torch.exp(dw) * widths[:, None]
    ph = torch.exp(dh) * heights[:, None]
    out = torch.zeros_like(deltas)
    out[:, 0::4] = pcx - 0.5 * pw
    out[:, 1::4] = pcy - 0.5 * ph
    out[:, 2::4] = pcx + 0.5 * pw
    out[:, 3::4] = pcy + 0.5 * ph
    return out


def clip(b, h, w):
    b = b.clone()
    b[:, 0::2] = b[:, 0::2].clamp(min=0, max=w)
    b[:, 1::2] = b[:, 1::2].clamp(min=0, max=h)
    return b


def resized_size(h, w):
    scale = MIN_SIZE * 1.0 / min(h, w)
    if h < w:
        nh, nw = MIN_SIZE, scale * w
    else:
        nh, nw = scale * h, MIN_SIZE
    if max(nh, nw) > MAX_SIZE:
        s = MAX_SIZE * 1.0 / max(nh, nw)
        nh, nw = nh * s, nw * s
    return int(nh + 0.5), int(nw + 0.5)


def select_k3m(probs, pred_boxes, topk=36):
    # py-bottom-up-attention's fast_rcnn_inference_single_image, as K3M calls it.
    scores = probs[:, :-1]
    k = pred_boxes.shape[1] // 4
    boxes = pred_boxes.view(-1, k, 4)
    max_scores, max_classes = scores.max(1)
    max_boxes = boxes[torch.arange(boxes.shape[0]), max_classes]
    keep = None
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        keep = nms(max_boxes, max_scores, t)[:topk]
        if len(keep) == topk:
            break
    return keep, max_boxes[keep]


def select_adaptive(probs, rois, conf=0.2, lo=10, hi=100, nms_t=0.3):
    # bottom-up-attention generate_tsv.py, background last as in detectron2.
    max_conf = torch.zeros(rois.shape[0], dtype=torch.float64)
    for j in range(probs.shape[1] - 1):
        s = probs[:, j]
        keep = nms(rois, s, nms_t)
        sk = s[keep].double()
        max_conf[keep] = torch.where(sk > max_conf[keep], sk, max_conf[keep])
    keep = torch.nonzero(max_conf >= conf).view(-1)
    order = np.argsort(-max_conf.numpy(), kind='stable')
    if len(keep) < lo:
        keep = torch.from_numpy(order[:lo].copy())
    elif len(keep) > hi:
        keep = torch.from_numpy(order[:hi].copy())
    return keep


def run(net, rgb, raw_h, raw_w, cell=None):
    c = net.c
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb.astype(np.float32))[:, :, [2, 1, 0]] - torch.tensor(PIXEL_MEAN_BGR)
    x = x.permute(2, 0, 1).unsqueeze(0).contiguous()
    res4 = net.backbone(x)
    _, _, fh, fw = res4.shape
    W = net.w
    rpn = 'proposal_generator.rpn_head'
    t = F.relu(F.conv2d(res4, W[rpn + '.conv.weight'], W[rpn + '.conv.bias'], padding=1))
    logits = F.conv2d(t, W[rpn + '.objectness_logits.weight'], W[rpn + '.objectness_logits.bias'])
    deltas = F.conv2d(t, W[rpn + '.anchor_deltas.weight'], W[rpn + '.anchor_deltas.bias'])
    a = logits.shape[1]
    logits = logits.permute(0, 2, 3, 1).reshape(-1)
    deltas = deltas.view(a, 4, fh, fw).permute(2, 3, 0, 1).reshape(-1, 4)
    anc = anchors(fh, fw, c, cell)
    k = min(c['preNmsTopK'], logits.numel())
    top_scores, top_idx = logits.topk(k)
    props = clip(apply_deltas(deltas[top_idx], anc[top_idx], (1, 1, 1, 1)), h, w)
    ok = ((props[:, 2] - props[:, 0]) > 0) & ((props[:, 3] - props[:, 1]) > 0)
    props, top_scores = props[ok], top_scores[ok]
    keep = nms(props, top_scores, c['rpnNmsThresh'])[: c['postNmsTopK']]
    proposals = props[keep]
    pooled = roi_pool(res4, [proposals], output_size=c['poolSize'], spatial_scale=1.0 / c['featureStride'])
    feats = net.stage(pooled, 5).mean(dim=(2, 3))
    logits_c = F.linear(feats, W['roi_heads.box_predictor.cls_score.weight'], W['roi_heads.box_predictor.cls_score.bias'])
    probs = F.softmax(logits_c, dim=-1)
    bdel = F.linear(feats, W['roi_heads.box_predictor.bbox_pred.weight'], W['roi_heads.box_predictor.bbox_pred.bias'])
    pred = clip(apply_deltas(bdel, proposals, (10.0, 10.0, 5.0, 5.0)), h, w)
    k3m_keep, k3m_boxes = select_k3m(probs, pred)
    # detectron2 detector_postprocess: scale to the raw image, clip.
    sx, sy = raw_w / w, raw_h / h
    k3m_boxes = k3m_boxes * torch.tensor([sx, sy, sx, sy])
    k3m_boxes = clip(k3m_boxes, raw_h, raw_w)
    ad_keep = select_adaptive(probs, proposals)
    return dict(
        res4=res4[0].permute(1, 2, 0).contiguous(), proposals=proposals, features=feats, probs=probs,
        k3m_keep=k3m_keep, k3m_boxes=k3m_boxes, adaptive_keep=ad_keep,
    )


def image(i, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    r = (127 + 120 * np.sin(xx / (7.0 + i) + yy / 11.0)).astype(np.uint8)
    g = ((xx * 3 + yy * (i + 1)) % 256).astype(np.uint8)
    b = np.where(((xx // (9 + i)) + (yy // 13)) % 2 == 0, 40, 220).astype(np.uint8)
    img = np.stack([r, g, b], axis=-1)
    img[h // 4: h // 2, w // 3: w // 2] = [250, 30, 30]
    return img


def resize(rgb, nh, nw):
    t = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
    t = F.interpolate(t, size=(nh, nw), mode='bilinear', align_corners=False)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).numpy().astype(np.uint8)


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = {np.dtype('float32'): 'F32', np.dtype('int64'): 'I64', np.dtype('uint8'): 'U8'}[a.dtype]
        b = a.astype(a.dtype.newbyteorder('<')).tobytes()
        header[name] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def k3m_tsv():
    # The K3M writer (P2:33, 178): csv.DictWriter, TAB, default '\r\n' line ends, and each
    # array cell as base64.b64encode(ndarray), i.e. bytes, which DictWriter writes as str(bytes).
    import base64
    import csv
    fieldnames = ['image_id', 'image_w', 'image_h', 'num_boxes', 'boxes', 'features', 'cls_prob']
    rng = np.random.RandomState(7)
    rows, expect = [], []
    for i, n in enumerate([3, 1, 0]):
        boxes = (rng.rand(n, 4) * 100).astype(np.float32)
        feats = rng.randn(n, 8).astype(np.float32)
        probs = rng.rand(n, 5).astype(np.float32)
        rows.append({'image_id': '%d_s0' % i, 'image_w': 120 + i, 'image_h': 90 + i, 'num_boxes': n,
                     'boxes': base64.b64encode(boxes), 'features': base64.b64encode(feats),
                     'cls_prob': base64.b64encode(probs)})
        expect.append({'imageId': '%d_s0' % i, 'imageW': 120 + i, 'imageH': 90 + i, 'numBoxes': n,
                       'boxes': boxes.reshape(-1).tolist(), 'features': feats.reshape(-1).tolist(),
                       'clsProb': probs.reshape(-1).tolist()})
    with open(os.path.join(OUT, 'k3m-python.tsv'), 'w', newline='') as f:
        w = csv.DictWriter(f, delimiter='\t', fieldnames=fieldnames)
        for r in rows:
            w.writerow(r)
    with open(os.path.join(OUT, 'k3m-python.json'), 'w') as f:
        json.dump({'featureDim': 8, 'numClasses': 5, 'rows': expect}, f)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    w = random_weights(CFG)
    with open(os.path.join(OUT, 'small-c4-random.pkl'), 'wb') as f:
        model = collections.OrderedDict((k, v.numpy()) for k, v in w.items())
        pickle.dump({'model': model, '__author__': 'k3m-kit tools/golden', 'matching_heuristics': False}, f, protocol=4)
    small = {'model': collections.OrderedDict([
        ('a', np.arange(6, dtype=np.float32).reshape(2, 3)),
        ('b', np.array([1.5, -2.25], dtype=np.float64)),
        ('c', np.array([[3, -4]], dtype=np.int64)),
    ])}
    for p in (2, 3, 4, 5):
        with open(os.path.join(OUT, 'pickle-protocol-%d.pkl' % p), 'wb') as f:
            pickle.dump(small, f, protocol=p)
    k3m_tsv()
    net = Net(CFG, w)
    tensors, images = {}, []
    for i, (rh, rw) in enumerate([(100, 150), (140, 96), (120, 120)]):
        raw = image(i, rh, rw)
        nh, nw = resized_size(rh, rw)
        rgb = resize(raw, nh, nw)
        with torch.no_grad():
            out = run(net, rgb, rh, rw)
        tensors['img%d.rgb' % i] = rgb
        for k, v in out.items():
            tensors['img%d.%s' % (i, k)] = v.numpy().astype(np.int64 if 'keep' in k else np.float32)
        images.append({'rawH': rh, 'rawW': rw, 'h': nh, 'w': nw, 'proposals': int(out['proposals'].shape[0]),
                       'k3mBoxes': int(len(out['k3m_keep'])), 'adaptiveBoxes': int(len(out['adaptive_keep']))})
    meta = {'config': json.dumps(CFG), 'minSize': str(MIN_SIZE), 'maxSize': str(MAX_SIZE),
            'images': json.dumps(images), 'torch': torch.__version__}
    write_safetensors(os.path.join(OUT, 'golden.safetensors'), tensors, meta)
    print(json.dumps(images, indent=1))


if __name__ == '__main__':
    main()
