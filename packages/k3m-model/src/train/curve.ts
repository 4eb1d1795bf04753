/**
 * @file The loss-curve plot of a run (`runs/<name>/loss-curve.svg`): one polyline per loss over
 * optimizer steps, validation means as dots. Plain SVG, no plotting dependency.
 */

const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];

export interface CurveSeries {
  name: string;
  points: [number, number][];
  dots?: [number, number][];
}

export function lossCurveSvg(series: CurveSeries[], title: string): string {
  const W = 720;
  const H = 400;
  const m = { l: 50, r: 150, t: 30, b: 40 };
  const all = series.flatMap((s) => [...s.points, ...(s.dots ?? [])]).filter(([, y]) => Number.isFinite(y));
  const xMax = Math.max(1, ...all.map(([x]) => x));
  const yMax = Math.max(1e-6, ...all.map(([, y]) => y));
  const sx = (x: number) => m.l + (x / xMax) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - (y / yMax) * (H - m.t - m.b);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="18">${title.replace(/[<&>]/g, '')}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${W - m.r}" y="${H - m.b + 28}" text-anchor="end">step (max ${xMax})</text>`,
    `<text x="${m.l - 6}" y="${m.t + 4}" text-anchor="end">${yMax.toPrecision(3)}</text>`,
    `<text x="${m.l - 6}" y="${H - m.b}" text-anchor="end">0</text>`,
  ];
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    if (pts.length) parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of s.dots ?? []) if (Number.isFinite(y)) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${colour}"/>`);
    parts.push(`<text x="${W - m.r + 10}" y="${m.t + 16 * (i + 1)}" fill="${colour}">${s.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
