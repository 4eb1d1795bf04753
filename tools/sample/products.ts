/**
 * @file Product instances, for the Product1M-layout sample (instance-level retrieval): a
 * catalogue of products, listings of one product and pictures of several.
 *
 * - A product (an instance) is a brand, a series name and a category with one value per
 *   property, drawn once: its colour, its shape and an accent band in a second colour make its
 *   look, unique within its category. Its instance label is `<brand> <series><category>`, the
 *   way Product1M names products (`AHC 黄金面霜`).
 * - A listing is one seller's offer of a product: its own title (brand and series, then words
 *   drawn from the product's attributes, so two listings of one product read differently) and
 *   its own picture (the product's colour, shape and accent on another background, size and
 *   position).
 * - A bundle is a picture of several products side by side with a title naming them all; it
 *   carries every product's label.
 */
import type { Rng } from '@k3m-kit/core';
import { BRANDS, CATEGORIES, COLOURS, COLOUR_NAMES, COLOUR_PROPERTY, SHAPE_PROPERTY, propertiesOf, shapeFor, type Category, type ColourName, type Shape } from './catalogue.ts';
import { paintImage, paintScene, type RawImage } from './image.ts';
import { makeTitle } from './item.ts';

/** Series names a brand gives its product lines. */
const SERIES = Object.freeze(['云朵', '极光', '经典', '轻盈', '星河', '暖阳', '山野', '晨曦', '青春', '旗舰', '森林', '海盐', '月光', '琥珀', '初雪', '拾趣']);
const BUNDLE_WORDS = Object.freeze(['组合套装', '套装', '超值组合', '礼盒装', '两件套']);
/** Products a catalogue can hold with distinct labels and looks (well below what the tables allow). */
export const MAX_PRODUCTS = 400;
/** Smallest RGB distance between a product's colour and its accent. */
const MIN_ACCENT_CONTRAST = 90;

/** One product instance. */
export interface Product {
  /** Instance label, `<brand> <series><category>`. */
  label: string;
  category: Category;
  brand: string;
  series: string;
  /** One value per property of the category (品牌 = brand). */
  attributes: ReadonlyMap<string, string>;
  colour: ColourName;
  accent: ColourName;
  shape: Shape;
}

/** A picture with its title and the labels of the products it shows. */
export interface Listing {
  title: string;
  labels: string[];
  picture: RawImage;
}

const dist = (a: ColourName, b: ColourName) => Math.hypot(...COLOURS[a].map((v, i) => v - COLOURS[b][i]!));

/**
 * `n` products, categories in turn (so they stay balanced), labels and looks distinct.
 * @example makeProducts(Rng.from(1, 'products'), 24).map((p) => p.label) // ['暖芯 云朵连衣裙', ...]
 */
export function makeProducts(rng: Rng, n: number): Product[] {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PRODUCTS) throw new RangeError(`products: ${n}, expected an integer in [1, ${MAX_PRODUCTS}]`);
  const products: Product[] = [];
  const labels = new Set<string>();
  const looks = new Set<string>();
  while (products.length < n) {
    const category = CATEGORIES[products.length % CATEGORIES.length]!;
    const brand = rng.pick(BRANDS);
    const series = rng.pick(SERIES);
    const attributes = new Map(propertiesOf(category).map((p) => [p.name, rng.pick(p.values)] as const));
    attributes.set('品牌', brand);
    const colour = attributes.get(COLOUR_PROPERTY) as ColourName;
    const accent = rng.pick(COLOUR_NAMES.filter((c) => dist(c, colour) >= MIN_ACCENT_CONTRAST));
    const label = `${brand} ${series}${category.name}`;
    const look = `${category.name}|${colour}|${accent}`;
    if (labels.has(label) || looks.has(look)) continue;
    labels.add(label);
    looks.add(look);
    products.push({ label, category, brand, series, attributes, colour, accent, shape: shapeFor(category, attributes.get(SHAPE_PROPERTY)) });
  }
  return products;
}

/** A seller's title for `p`: series always, brand mostly, the rest drawn from its attributes. */
export function listingTitle(rng: Rng, p: Product): string {
  const rest = new Map(p.attributes);
  rest.delete('品牌');
  const head = `${rng.chance(0.9) ? p.brand : ''}${p.series}`;
  return `${head}${rng.chance(0.3) ? ' ' : ''}${makeTitle(rng, p.category, rest)}`.trim();
}

/** One listing of `p`: title from `rng`, picture from `pictureRng`. */
export function makeListing(rng: Rng, pictureRng: Rng, p: Product): Listing {
  return { title: listingTitle(rng, p), labels: [p.label], picture: paintImage(pictureRng, p.colour, p.shape, p.accent) };
}

/** A picture of several products with a title naming each of them. */
export function makeBundle(rng: Rng, pictureRng: Rng, products: readonly Product[]): Listing {
  const names = products.map((p) => `${p.brand}${p.series}${rng.pick(p.category.titleWords)}`);
  return {
    title: `${names.join('+')} ${rng.pick(BUNDLE_WORDS)}`,
    labels: products.map((p) => p.label),
    picture: paintScene(pictureRng, products.map((p) => ({ colour: p.colour, shape: p.shape, accent: p.accent }))),
  };
}
