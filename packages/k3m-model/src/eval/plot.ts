/**
 * @file Line plots as hand-written SVG (no plotting dependency): one figure per metric, one panel
 * per corruption kind, the corruption rate on x and one line per model.
 */

export interface Series {
  name: string;
  /** [rate in 0..1, value]; `NaN` values leave a gap. */
  points: readonly (readonly [number, number])[];
}

export interface Panel {
  title: string;
  series: readonly Series[];
}

export interface PlotOptions {
  title: string;
  yLabel: string;
  /** Fixed y range; default [0, 1] for shares, else from the data. */
  yRange?: readonly [number, number];
  /** Panels per row. */
  columns?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e'];
const DASHES = ['', '6 3', '2 2', '8 2 2 2'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/0+$/, '').replace(/\.$/, ''));

/** A `nice` upper bound for an axis: 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * The figure as an SVG document.
 * @example renderPlot([{ title: 'missing title', series: [{ name: 'with knowledge', points: [[0, 0.9], [1, 0.5]] }] }], { title: 'accuracy', yLabel: 'accuracy' })
 */
export function renderPlot(panels: readonly Panel[], opts: PlotOptions): string {
  const cols = Math.max(1, Math.min(opts.columns ?? 4, panels.length));
  const rows = Math.ceil(panels.length / cols);
  const pw = 230;
  const ph = 170;
  const m = { l: 46, r: 10, t: 24, b: 34 };
  const head = 46;
  // Room for the title and the legend even with a single panel.
  const width = Math.max(cols * pw, 460);
  const height = head + rows * ph;
  const all = panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([, y]) => y))).filter((y) => Number.isFinite(y));
  const [y0, y1] = opts.yRange ?? [0, niceMax(Math.max(...all, 0))];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="16" text-anchor="middle" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
  ];
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))];
  let lx = 10;
  names.forEach((n, i) => {
    const c = COLORS[i % COLORS.length]!;
    out.push(
      `<line x1="${lx}" y1="34" x2="${lx + 24}" y2="34" stroke="${c}" stroke-width="2" stroke-dasharray="${DASHES[i % DASHES.length]}"/>`,
      `<text x="${lx + 28}" y="38">${esc(n)}</text>`,
    );
    lx += 40 + n.length * 7;
  });
  panels.forEach((p, k) => {
    const ox = (k % cols) * pw;
    const oy = head + Math.floor(k / cols) * ph;
    const iw = pw - m.l - m.r;
    const ih = ph - m.t - m.b;
    const X = (x: number) => ox + m.l + x * iw;
    const Y = (y: number) => oy + m.t + ih - ((Math.min(Math.max(y, y0), y1) - y0) / (y1 - y0 || 1)) * ih;
    out.push(`<text x="${ox + m.l + iw / 2}" y="${oy + 14}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
    out.push(`<rect x="${X(0)}" y="${Y(y1)}" width="${iw}" height="${ih}" fill="none" stroke="#444"/>`);
    for (const t of [0, 0.2, 0.5, 0.8, 1]) {
      out.push(`<line x1="${X(t)}" y1="${Y(y0)}" x2="${X(t)}" y2="${Y(y0) + 4}" stroke="#444"/>`);
      out.push(`<text x="${X(t)}" y="${Y(y0) + 15}" text-anchor="middle">${Math.round(t * 100)}</text>`);
    }
    for (let i = 0; i <= 4; i++) {
      const v = y0 + ((y1 - y0) * i) / 4;
      out.push(`<line x1="${X(0)}" y1="${Y(v)}" x2="${X(1)}" y2="${Y(v)}" stroke="#ddd"/>`);
      out.push(`<text x="${X(0) - 4}" y="${Y(v) + 4}" text-anchor="end">${fmt(v)}</text>`);
    }
    out.push(`<text x="${ox + m.l + iw / 2}" y="${oy + ph - 4}" text-anchor="middle">corruption %</text>`);
    out.push(`<text transform="translate(${ox + 11} ${oy + m.t + ih / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
    p.series.forEach((s) => {
      const i = names.indexOf(s.name);
      const c = COLORS[i % COLORS.length]!;
      // Split at NaN so an undefined value is a gap, not a drop to zero.
      let run: string[] = [];
      const flush = () => {
        if (run.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" stroke-dasharray="${DASHES[i % DASHES.length]}" points="${run.join(' ')}"/>`);
        run = [];
      };
      for (const [x, y] of s.points) {
        if (!Number.isFinite(y)) {
          flush();
          continue;
        }
        run.push(`${X(x).toFixed(1)},${Y(y).toFixed(1)}`);
        out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="2.5" fill="${c}"/>`);
      }
      flush();
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
