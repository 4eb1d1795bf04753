/**
 * @file One synthetic product: a full set of attributes drawn per category, the knowledge pairs
 * (a subset of the attributes, always with 颜色 and, where the category has it, 形状) and a
 * Chinese title assembled from the same attributes, so title, knowledge and image agree.
 */
import {
  COLOUR_PROPERTY,
  SHAPE_PROPERTY,
  propertiesOf,
  shapeFor,
  type Category,
  type ColourName,
  type Shape,
} from './catalogue.ts';
import type { Rng } from '@k3m-kit/core';

/** Fewest and most knowledge pairs a clean item carries. */
export const MIN_PAIRS = 3;
export const MAX_PAIRS = 15;

export type Pair = readonly [property: string, value: string];

export interface SampleItem {
  category: Category;
  /** Every attribute the item has (one value per property). */
  attributes: ReadonlyMap<string, string>;
  /** The knowledge pairs written to the KG field, in order. */
  pairs: Pair[];
  title: string;
  colour: ColourName;
  shape: Shape;
}

const MARKETING_TAILS = ['包邮', '热卖', '百搭', '现货', '爆款', '特价'];
/** Properties too dry for a title (sizes, numbers, service terms). */
const NOT_IN_TITLE = new Set([COLOUR_PROPERTY, '品牌', '产地', '上市时间', '售后服务', '是否商场同款', '包装方式', '尺码', '材质', '风格']);

/**
 * Draws one item of `category` from `rng`.
 * @param maxPairs upper bound on the pair count (fault planting needs room for one more pair)
 */
export function makeItem(rng: Rng, category: Category, maxPairs = MAX_PAIRS): SampleItem {
  const props = propertiesOf(category);
  const attributes = new Map<string, string>();
  for (const prop of props) attributes.set(prop.name, rng.pick(prop.values));

  const required = [COLOUR_PROPERTY, ...(attributes.has(SHAPE_PROPERTY) ? [SHAPE_PROPERTY] : [])];
  const optional = props.map((x) => x.name).filter((n) => !required.includes(n));
  const k = rng.intIn(MIN_PAIRS, Math.min(maxPairs, props.length));
  const chosen = rng.shuffle([...required, ...rng.sample(optional, k - required.length)]);
  const pairs: Pair[] = chosen.map((name) => [name, attributes.get(name)!]);

  const colour = attributes.get(COLOUR_PROPERTY) as ColourName;
  return {
    category,
    attributes,
    pairs,
    title: makeTitle(rng, category, attributes),
    colour,
    shape: shapeFor(category, attributes.get(SHAPE_PROPERTY)),
  };
}

/**
 * A seller's title from the attributes: brand, launch season, style, a feature, material, colour,
 * product word, target group, tail; each part drawn, so two titles of one product differ.
 */
export function makeTitle(rng: Rng, category: Category, attrs: ReadonlyMap<string, string>): string {
  const parts: string[] = [];
  const brand = attrs.get('品牌');
  if (brand && rng.chance(0.8)) parts.push(brand + (rng.chance(0.3) ? ' ' : ''));
  const launch = attrs.get('上市时间');
  if (launch && rng.chance(0.4)) parts.push(launch.replace('年', '') + '新款');
  else if (rng.chance(0.3)) parts.push('新款');
  const style = attrs.get('风格');
  if (style && rng.chance(0.7)) parts.push(style);
  const features = category.properties.map((x) => x.name).filter((n) => !NOT_IN_TITLE.has(n) && attrs.has(n));
  for (const f of rng.sample(features, rng.intIn(0, 2))) parts.push(attrs.get(f)!);
  const colourFirst = rng.chance(0.5);
  const colour = attrs.get(COLOUR_PROPERTY)!;
  const withColour = rng.chance(0.85);
  if (withColour && colourFirst) parts.push(colour);
  const material = attrs.get('材质');
  if (material && rng.chance(0.7)) parts.push(material);
  parts.push(rng.pick(category.titleWords));
  if (rng.chance(0.5)) parts.push(rng.pick(category.suffixes));
  if (withColour && !colourFirst) parts.push(rng.chance(0.5) ? ` ${colour}` : colour);
  if (rng.chance(0.3)) parts.push(' ' + rng.pick(MARKETING_TAILS));
  return parts.join('').trim();
}
