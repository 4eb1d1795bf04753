import { describe, expect, it } from 'vitest';
import { Cleaner, DEFAULT_NORMALISE, parsePv, type NormaliseOptions, type StepName } from '../src/index.ts';

function run(text: string, o: Partial<NormaliseOptions> = {}) {
  const c = new Cleaner({ ...DEFAULT_NORMALISE, ...o });
  const r = c.clean(parsePv(text));
  const step = (name: StepName) => c.steps.find((s) => s.step === name)!;
  return { ...r, step, reasons: r.dropped.map((d) => d.reason) };
}

describe('Cleaner', () => {
  it('NFKC turns full-width letters and digits half-width, switchable and counted', () => {
    const on = run('尺寸:ＸＬ１２;颜色:红');
    expect(on.kept).toEqual([
      { p: '尺寸', v: 'XL12' },
      { p: '颜色', v: '红' },
    ]);
    expect(on.step('nfkc')).toMatchObject({ enabled: true, in: 2, changed: 1, out: 2 });
    const off = run('尺寸:ＸＬ１２', { nfkc: false });
    expect(off.kept).toEqual([{ p: '尺寸', v: 'ＸＬ１２' }]);
    expect(off.step('nfkc')).toMatchObject({ enabled: false, changed: 0 });
  });

  it('trims and collapses white space, switchable', () => {
    expect(run(' 风格 : 简约  大气\u3000;').kept).toEqual([{ p: '风格', v: '简约 大气' }]);
    expect(run(' 风格 : 简约  大气', { whitespace: false, nfkc: false }).kept).toEqual([{ p: ' 风格 ', v: ' 简约  大气' }]);
  });

  it('drops empty properties and values with their reason, switchable', () => {
    const r = run(':v;p:;q: ;ok:1');
    expect(r.kept).toEqual([{ p: 'ok', v: '1' }]);
    expect(r.reasons).toEqual(['empty-property', 'empty-value', 'empty-value']);
    expect(r.step('empty')).toMatchObject({ in: 4, dropped: 3, out: 1 });
    expect(run(':v;p:', { dropEmpty: false }).kept).toHaveLength(2);
  });

  it('drops placeholders from a configurable list (compared after normalisation)', () => {
    const r = run('品名:请填写;型号: 请填写 ;颜色:红;备注:TBD');
    expect(r.kept.map((k) => k.p)).toEqual(['颜色', '备注']);
    expect(r.reasons).toEqual(['placeholder', 'placeholder']);
    expect(run('品名:请填写;备注:TBD', { placeholders: ['TBD'] }).kept).toEqual([{ p: '品名', v: '请填写' }]);
    expect(run('品名:请填写', { dropPlaceholders: false }).kept).toHaveLength(1);
  });

  it('rewrites separators to full-width, or drops the pair when the rewrite is off', () => {
    const r = run('时间#:#10:30#;#尺码#:#S;M');
    expect(r.kept).toEqual([
      { p: '时间', v: '10：30' },
      { p: '尺码', v: 'S；M' },
    ]);
    expect(r.step('separators').changed).toBe(2);
    const off = run('时间#:#10:30#;#颜色#:#红', { rewriteSeparators: false });
    expect(off.kept).toEqual([{ p: '颜色', v: '红' }]);
    expect(off.reasons).toEqual(['separator-in-text']);
  });

  it('removes exact duplicate pairs but keeps repeated properties with other values', () => {
    const r = run('适用年龄:3岁;适用年龄:5岁;适用年龄:3岁;适用年龄:４岁');
    expect(r.kept).toEqual([
      { p: '适用年龄', v: '3岁' },
      { p: '适用年龄', v: '5岁' },
      { p: '适用年龄', v: '4岁' },
    ]);
    expect(r.reasons).toEqual(['duplicate-pair']);
    expect(run('a:1;a:1', { dedupe: false }).kept).toHaveLength(2);
  });

  it('rejects pieces without a property separator in the parse step', () => {
    const r = run('orphan;a:1');
    expect(r.reasons).toEqual(['no-separator']);
    expect(r.step('parse')).toMatchObject({ in: 2, dropped: 1, out: 1 });
  });

  it('accumulates counts across items and every step reconciles', () => {
    const c = new Cleaner(DEFAULT_NORMALISE);
    let kept = 0;
    let dropped = 0;
    for (const t of ['a:1;a:1', 'b:请填写;c:', 'd:ＡＢ', '']) {
      const r = c.clean(parsePv(t));
      kept += r.kept.length;
      dropped += r.dropped.length;
    }
    expect(c.steps[0]!.in).toBe(kept + dropped);
    expect(c.steps[c.steps.length - 1]!.out).toBe(kept);
    for (const s of c.steps) expect(s.in - s.dropped).toBe(s.out);
    for (let i = 1; i < c.steps.length; i++) expect(c.steps[i]!.in).toBe(c.steps[i - 1]!.out);
  });
});
